"""Vendor side of the platform: the local simulator of the EIA and CFTC sites that tests and demos point the clients at.

Nothing in this package may contact a real vendor or rewrite the shared vendor sample files.

core.py is the site (releases, faults, admin API, HTTP); faults.py the injected faults; eia.py and cftc.py what
each vendor serves and how; simulator.py assembles them (VendorSimulator, build_catalog, serve).
"""
