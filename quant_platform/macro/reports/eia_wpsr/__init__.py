"""EIA Weekly Petroleum Status Report, table 1 (U.S. petroleum balance sheet): macro.eia_wpsr, one WPSR week per partition.

Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py without them.
"""
