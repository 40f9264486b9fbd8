"""CFTC Commitments of Traders, disaggregated futures-and-options combined: macro.cftc_cot_disaggregated_combined.

Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py without them.
"""
