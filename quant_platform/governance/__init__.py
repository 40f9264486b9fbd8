"""Governance: the audit trail of what was loaded from where (raw file index, load audit, checks).

Never delete a row here: auditors read history, not state.
"""
