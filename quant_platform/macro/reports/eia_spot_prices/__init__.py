"""EIA daily spot prices (Brent, WTI Cushing, Henry Hub) from dnav's history workbooks: macro.eia_spot_prices, one series per partition.

Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py without them.
"""
