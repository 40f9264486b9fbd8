"""Shared platform services: settings, warehouse, lake, vendor HTTP client, calendars.

Domain code imports from here; nothing here imports domain code.
"""
