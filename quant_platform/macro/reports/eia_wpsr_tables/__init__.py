"""EIA Weekly Petroleum Status Report, every table (psw01..psw14 workbooks): macro.eia_wpsr_tables, one week per partition.

Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py without them.
"""
