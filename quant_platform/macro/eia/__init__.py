"""EIA sources of the macro lane: the Weekly Petroleum Status Report and petroleum time series.

Never reach the network from this package's parsers; they turn bytes already archived into frames.
"""
