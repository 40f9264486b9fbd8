"""Pure parsers of the vendor file formats the macro lane downloads (EIA workbooks, storage history, CFTC archives).

Never fetch, write or touch the warehouse here: bytes in, a long pandas frame (or a small fact) out.
"""
