"""Marts: tables shaped for one analyst team's questions, built only from checked warehouse tables.

Never read a vendor file here; marts derive from macro.* and core.* only.
"""
