"""CFTC sources of the macro lane: Commitments of Traders, disaggregated and legacy futures-only.

Never reach the network from this package's parsers; they turn bytes already archived into frames.
"""
