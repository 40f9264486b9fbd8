"""EIA Weekly Natural Gas Storage Report (working gas by region): macro.eia_gas_storage, one storage week per partition.

Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py without them.
"""
