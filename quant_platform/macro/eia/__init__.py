"""EIA file formats of the macro lane: the WPSR table1.csv, the dnav history CSV, API v2 JSON (parsing.py).

Never reach the network from this package's parsers; they turn bytes already archived into frames.
"""
