"""Data quality: named, parameterised checks derived from table declarations, and GX 1.x suites.

Never hard-code a passing result: every rule here evaluates the data it is given.
"""
