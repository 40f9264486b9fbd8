"""The macro lane's reports, one folder each: table.py, routes.py and report.py (see macro/registry.py).

Never import one report folder from another: what reports share lives in macro/ (loading, sensing, columns) or a vendor's package.
"""
