"""Internal lane: clients, employees and suppliers from the operational databases, as SCD2 dimensions.

Never copy a PII column anywhere without its declaration: the declaration drives masking and grants.
"""
