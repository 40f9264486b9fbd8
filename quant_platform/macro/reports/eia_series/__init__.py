"""EIA petroleum time series by series id (dnav history or API v2): macro.eia_series, one series per partition.

Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py without them.
"""
