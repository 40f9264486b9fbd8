"""Slack-compatible webhook messages for alert incidents, and their delivery with a timeout and retries.
Never log, raise or return the webhook URL (Slack puts the token in its path), nor follow it to another host.

Every failure is described by its HTTP status or exception type only; the URL and its path are registered
with platform/redaction.py so no log line (urllib3's included) shows them. Delivery goes through
vendor_http.bounded_request: an answer is capped (QP_HTTP_MAX_BYTES_WEBHOOK), a try ends within twice the
timeout however slowly the server answers, and a redirect to another host is not followed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from urllib.parse import quote

from quant_platform.errors import (
    DeadlineExceededError,
    HttpTransportError,
    RedirectRefusedError,
    ResponseTooLargeError,
)
from quant_platform.platform.redaction import register_webhook_url
from quant_platform.platform.vendor_http import bounded_request, hardened_session, webhook_cap

# Slack's limits: a header holds 150 characters, a section 3000; longer text is refused with a 400.
HEADER_MAX = 150
DETAILS_MAX = 1500

SEVERITY_EMOJI = {"ERROR": ":red_circle:", "FAIL": ":red_circle:", "WARN": ":warning:"}
RESOLVED_EMOJI = ":large_green_circle:"


def asset_url(dagster_url: str, path: list[str], partition: str | None) -> str:
    """The asset's page in the Dagster UI: `<base>/assets/<key path joined by '/'>[?partition=<key>]`."""
    url = f"{dagster_url.rstrip('/')}/assets/{'/'.join(quote(p, safe='') for p in path)}"
    return f"{url}?partition={quote(partition, safe='')}" if partition else url


def run_url(dagster_url: str, run_id: str) -> str:
    return f"{dagster_url.rstrip('/')}/runs/{run_id}"


def _esc(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    minutes = int(max(seconds, 0) // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    return " ".join([*parts, f"{minutes}m"])


def _title(alert: dict) -> str:
    kind, severity, is_freshness = alert["kind"], alert["severity"], alert["check"] == "freshness"
    if kind == "resolved":
        return "Resolved: asset is fresh again" if is_freshness else "Resolved: asset check passes again"
    if kind == "escalated":
        return "Freshness escalated to FAIL: asset is stale"
    if is_freshness:
        return f"Freshness {severity}: asset is {'stale' if severity == 'FAIL' else 'close to stale'}"
    return f"Asset check failed ({severity})"


def slack_payload(alert: dict, dagster_url: str) -> dict:
    """A Slack incoming-webhook message ({"text", "blocks"}) for one alert of an incident."""
    if alert["kind"] == "dropped":
        text = (f":warning: {alert['count']} alert(s) were dropped while the webhook was unreachable; "
                f"see the asset checks and freshness in Dagster: {dagster_url.rstrip('/')}/assets")
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}

    asset = "/".join(alert["path"])
    link = asset_url(dagster_url, alert["path"], alert.get("partition"))
    emoji = RESOLVED_EMOJI if alert["kind"] == "resolved" else SEVERITY_EMOJI.get(alert["severity"], ":red_circle:")
    title = _title(alert)
    subject = asset if alert["check"] == "freshness" else f"{asset} · {alert['check']}"
    if alert.get("partition"):
        subject += f" · partition {alert['partition']}"

    lines = [f"*Asset:* <{link}|{_esc(asset)}>"]
    if alert["check"] != "freshness":
        lines.append(f"*Check:* `{_esc(alert['check'])}`")
    if alert.get("partition"):
        lines.append(f"*Partition:* `{_esc(alert['partition'])}`")
    if alert["kind"] == "resolved":
        was = f"*Was:* {alert['severity']} for {_duration(alert['at'] - alert['opened_at'])}"
        if alert["check"] != "freshness":
            was += f" ({alert['count']} failing evaluation(s))"
        lines.append(was)
        if alert.get("now"):
            lines.append(f"*Now:* {_esc(alert['now'])}")
    else:
        lines.append(f"*Severity:* {alert['severity']}")
    if alert.get("owners"):
        lines.append(f"*Owners:* {_esc(', '.join(alert['owners']))}")
    if alert.get("summary") and alert["kind"] != "resolved":
        lines.append(f"*Details:* {_esc(_clip(alert['summary'], DETAILS_MAX))}")

    context = [f"quant_platform alert_sensor · {_when(alert['at'])}"]
    if alert.get("run_id"):
        context.append(f"<{run_url(dagster_url, alert['run_id'])}|run {alert['run_id'][:8]}>")
    return {
        "text": f"{emoji} {title}: {_esc(subject)} <{link}|open in Dagster>",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{title}: {subject}", HEADER_MAX)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }


class Delivery(Enum):
    DELIVERED = "delivered"
    # The webhook refused this message itself (400, 413, 422): retrying the same body cannot succeed.
    REJECTED = "rejected"
    # The webhook is down, rate-limited or refuses the URL (5xx, 429, 401, 403, 404, timeout): keep the
    # message and try again on a later tick.
    UNAVAILABLE = "unavailable"


REJECTED_STATUSES = {400, 413, 422}


@dataclass(frozen=True)
class DeliveryOutcome:
    result: Delivery
    reason: str  # one line without the URL: "HTTP 503", "ConnectTimeout"
    attempts: int


@dataclass
class WebhookPoster:
    """POSTs JSON to one webhook URL. `attempts` counts every try of one message, the first included."""

    url: str
    timeout_s: float = 10.0
    attempts: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 4.0

    def __post_init__(self) -> None:
        self._session = hardened_session()
        register_webhook_url(self.url)  # the whole URL, and its path as urllib3 logs it, are secrets

    def __repr__(self) -> str:  # the URL must not end up in a log through a repr
        return f"WebhookPoster(timeout_s={self.timeout_s}, attempts={self.attempts})"

    def close(self) -> None:
        self._session.close()

    def post(self, payload: dict, deadline: float | None = None) -> DeliveryOutcome:
        """Deliver `payload`, retrying 5xx, 429 and connection errors; no new try starts after `deadline`
        (a time.monotonic() value)."""
        reason = "not tried"
        tries = max(1, self.attempts)
        for attempt in range(1, tries + 1):
            cap, cap_setting = webhook_cap()
            try:
                resp = bounded_request("POST", self.url, session=self._session, json=payload,
                                       timeout_s=self.timeout_s, deadline_s=self.timeout_s * 2, max_bytes=cap,
                                       cap_setting=cap_setting)
            except HttpTransportError as exc:  # its text names the (redacted) URL: keep only the type
                reason = exc.kind
            except RedirectRefusedError as exc:  # steered elsewhere (another host): a setup problem, no retry
                return DeliveryOutcome(Delivery.UNAVAILABLE, f"HTTP {exc.status} redirect not followed", attempt)
            except (DeadlineExceededError, ResponseTooLargeError) as exc:
                reason = type(exc).__name__
            else:
                status = resp.status
                if 200 <= status < 300:
                    return DeliveryOutcome(Delivery.DELIVERED, f"HTTP {status}", attempt)
                reason = f"HTTP {status}"
                if status in REJECTED_STATUSES:
                    return DeliveryOutcome(Delivery.REJECTED, reason, attempt)
                if status < 500 and status != 429:
                    # 401/403/404/410: the URL is wrong or revoked; it will not heal within this tick.
                    return DeliveryOutcome(Delivery.UNAVAILABLE, reason, attempt)
            if attempt == tries:
                break
            pause = min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)
            if deadline is not None and time.monotonic() + pause > deadline:
                return DeliveryOutcome(Delivery.UNAVAILABLE, f"{reason} (out of time)", attempt)
            time.sleep(pause)
        return DeliveryOutcome(Delivery.UNAVAILABLE, reason, tries)
