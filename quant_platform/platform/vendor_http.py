"""The one HTTP client every vendor call goes through: timeouts, retries with exponential backoff and
jitter (tenacity), conditional requests (ETag / Last-Modified) and a sha256 of every body.

Never call `requests` directly from domain code, and never retry a 4xx (it will not get better).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from quant_platform.errors import VendorError

log = logging.getLogger(__name__)

USER_AGENT = "quant-platform/0.1 (data platform; contact: data-engineering)"


class TransientVendorError(Exception):
    """A failure worth retrying: 5xx, 429, connection reset, timeout, body cut short."""


@dataclass(frozen=True)
class VendorResponse:
    url: str
    status: int
    body: bytes
    sha256: str
    etag: str | None
    last_modified: str | None
    content_type: str | None
    fetched_at: datetime
    attempts: int
    elapsed_s: float

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass
class VendorClient:
    """Fetches vendor URLs. `attempts` counts the total tries per call (first try included)."""

    timeout_s: float = 20.0
    attempts: int = 4
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.headers["User-Agent"] = USER_AGENT

    def get(
        self,
        url: str,
        *,
        params: dict | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> VendorResponse:
        """GET with retries. Returns status 304 with an empty body when the validators still match."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=wait_random_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s),
            retry=retry_if_exception(lambda e: isinstance(e, TransientVendorError)),
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempt_no = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempt_no = attempt.retry_state.attempt_number
                    resp = self._once(url, params, headers)
        except TransientVendorError as exc:
            raise VendorError(_redact(url), f"{exc} (gave up after {attempt_no} attempts)") from exc
        body = resp.content if resp.status_code != 304 else b""
        return VendorResponse(
            url=_redact(resp.url),
            status=resp.status_code,
            body=body,
            sha256=hashlib.sha256(body).hexdigest(),
            etag=resp.headers.get("ETag"),
            last_modified=resp.headers.get("Last-Modified"),
            content_type=resp.headers.get("Content-Type"),
            fetched_at=datetime.now(UTC),
            attempts=attempt_no,
            elapsed_s=time.monotonic() - started,
        )

    def _once(self, url: str, params: dict | None, headers: dict) -> requests.Response:
        try:
            resp = self.session.get(url, params=params, headers=headers, timeout=self.timeout_s)
            # Reading .content forces the whole body; urllib3 2 raises if it is shorter than Content-Length.
            _ = resp.content
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientVendorError(f"{type(exc).__name__}: {_redact(_first_line(exc))}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientVendorError(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise VendorError(_redact(url), f"HTTP {resp.status_code}: {_redact(_first_line(resp.text))[:200]}")
        return resp

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("vendor call failed (%s), attempt %d; retrying in %.1fs", exc, state.attempt_number, wait)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""


_SECRET_PARAM = re.compile(r"((?:api_key|apikey|token|access_token)=)[^&\s'\")]*", re.IGNORECASE)


def _redact(text: str) -> str:
    """Hide secrets passed as query parameters (the EIA API key) from logs, errors and metadata."""
    return _SECRET_PARAM.sub(r"\1***", text)
