"""CFTC Commitments of Traders in the macro lane: the file formats (parsing.py) and what every COT report shares (cot.py).

Never reach the network from this package's parsers; they turn bytes already archived into frames.
"""
