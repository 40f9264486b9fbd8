"""Operations of the platform itself: alerting on failed checks and stale assets (open-source Dagster has
no alerts of its own).

Never put a secret (webhook URL, token) in a log line, a cursor or an exception message from here.
"""

from quant_platform.ops.alerts import alert_sensor

__all__ = ["alert_sensor"]
