"""Macro lane: US-oil vendor reports (EIA, CFTC) as partitioned, checked warehouse tables.

Never load a vendor file that failed its blocking checks; the previous good data must stay.
"""
