"""The reporting lane: metrics from the market, macro and platform lanes, online Bayesian detectors over them,
ranked findings, a daily report with plots, and a read-only REST API.

Never write to another lane's tables or files from here: the lane only reads what the others publish.
"""
