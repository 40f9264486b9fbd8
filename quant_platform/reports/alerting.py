"""Findings in the webhook alerts: the alert sensor reads the alert candidates each reports/findings run
recorded (findings at or above QP_FINDING_ALERT_PROBABILITY) and posts each finding once, as a Slack message
linking the asset and the daily report.

Never post a finding twice: posted finding ids stay in the alert cursor (the newest MAX_POSTED of them), and a
finding seen while the sensor is still reading old history is remembered without being posted.
"""

from __future__ import annotations

import dagster as dg

MAX_POSTED = 5000
FINDINGS_KEY = dg.AssetKey(["reports", "findings"])
BATCH = 100


def apply_findings(cursor, instance: dg.DagsterInstance) -> int:
    """Queue a "finding" alert for each new alert candidate since the cursor; returns how many were queued."""
    queued = 0
    posted = set(cursor.posted_findings)
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=FINDINGS_KEY, after_storage_id=cursor.findings_after or None),
            limit=BATCH, ascending=True)
        for rec in result.records:
            md = rec.asset_materialization.metadata if rec.asset_materialization else {}
            candidates = getattr(md.get("alert_findings"), "value", None) or []
            for f in candidates:
                fid = f.get("finding_id")
                if not fid or fid in posted:
                    continue
                posted.add(fid)
                cursor.posted_findings.append(fid)
                if cursor.caught_up:
                    cursor.queue("finding", {**f, "finding_kind": f.get("kind")}, at=rec.timestamp,
                                 partition=rec.asset_materialization.partition)
                    queued += 1
            cursor.findings_after = max(cursor.findings_after, int(rec.storage_id))
        if len(result.records) < BATCH:
            break
    del cursor.posted_findings[:-MAX_POSTED]
    return queued


def finding_payload(alert: dict, dagster_url: str) -> dict:
    """A Slack incoming-webhook message for one finding."""
    from quant_platform.ops.webhook import _esc, asset_url

    kind = {"change_point": "Change point", "outlier": "Outlier", "trend": "Trend"}.get(
        alert.get("finding_kind") or "", "Finding")
    link = asset_url(dagster_url, list(FINDINGS_KEY.path), alert.get("partition"))
    day = (alert.get("occurred_at") or "")[:10]
    size = ""
    if alert.get("estimate_before") is not None and alert.get("estimate_after") is not None:
        size = f"{alert['estimate_before']:,.4g} → {alert['estimate_after']:,.4g} {alert.get('unit', '')}"
    text = (f":mag: {kind} in {_esc(alert['series_id'])} ({alert.get('desk', '')}) at {alert.get('occurred_at')}, "
            f"probability {alert['probability']:.3f}. <{link}|reports/findings>")
    lines = [f"*Series:* `{_esc(alert['series_id'])}`", f"*Probability:* {alert['probability']:.3f}",
             f"*When:* {alert.get('occurred_at')}"]
    if size:
        lines.append(f"*Level:* {_esc(size)}")
    lines.append(f"*From:* {_esc(str(alert.get('source_asset')))} partition {_esc(str(alert.get('source_partition')))}")
    lines.append(f"*Report:* /reports/{day}.html (quant-platform reports serve)")
    return {"text": text, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": f"{kind}: {alert['series_id']}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"quant_platform alert_sensor · finding "
                                          f"{alert['finding_id']}"}]}]}
