"""Vendor side of the platform: the local simulator of the EIA and CFTC sites that tests and demos point the clients at.

Nothing in this package may contact a real vendor or rewrite the shared vendor sample files.
"""
