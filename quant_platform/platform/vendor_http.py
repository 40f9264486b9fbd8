"""Every outgoing HTTP call of the platform: `bounded_request` (byte cap, overall deadline, redirect policy)
and, on top of it, the vendor client (retries with backoff and jitter, conditional GETs, a sha256 per body).
Never call `requests` directly from domain code, never read a body without a cap, never retry a 4xx.

Limits (environment, read at each call):
- QP_HTTP_MAX_BYTES (default 128 MiB) caps a body, counted after decompression while it is read; a vendor
  route has its own QP_HTTP_MAX_BYTES_<ROUTE> (ROUTE_CAPS), a webhook answer QP_HTTP_MAX_BYTES_WEBHOOK (1 MiB).
- QP_HTTP_DEADLINE (default 300 s) bounds a whole vendor call, retries included, however slowly bytes drip;
  QP_HTTP_TIMEOUT stays the limit of each socket read.
- Redirects are followed only to the same host (same scheme and port, or an upgrade from http to https),
  at most MAX_REDIRECTS; a POST follows only 307/308 (never re-sent as a GET).
- A vendor that answers HTTP 429 or 503 with `Retry-After` is not asked again before that time; a wait longer than
  QP_HTTP_RETRY_AFTER_MAX (default 30 s) or past the deadline ends the call at once with a VendorError that says so.
- Every request says who asks: `quant-platform/<version> (data platform of a commodity trading firm; +<contact>)`,
  the contact from QP_VENDOR_CONTACT (an e-mail address or URL the vendor can write to).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from quant_platform.errors import (
    ConfigError,
    DeadlineExceededError,
    HttpTransportError,
    RedirectRefusedError,
    ResponseTooLargeError,
    VendorError,
)
from quant_platform.platform.redaction import install_log_redaction, redact, redact_exception
from quant_platform.platform.settings import bounded_env

log = logging.getLogger(__name__)
install_log_redaction()  # urllib3 logs request paths (query strings with keys) at DEBUG

try:
    VERSION = importlib.metadata.version("quant-platform")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    VERSION = "0.0.0"
# Who asks, as the vendors' terms of use want it said (EIA and the CFTC both ask bulk users to identify themselves).
USER_AGENT = f"quant-platform/{VERSION} (data platform of a commodity trading firm)"
CONTACT_ENV = "QP_VENDOR_CONTACT"
DEFAULT_RETRY_AFTER_MAX_S = 30.0  # the longest Retry-After a call waits for (QP_HTTP_RETRY_AFTER_MAX)

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 128 * MIB  # the largest real vendor file (a CFTC history zip) is a few MB
WEBHOOK_MAX_BYTES = 1 * MIB  # a webhook answers "ok"
DEFAULT_DEADLINE_S = 300.0
MAX_REDIRECTS = 5
CHUNK = 64 * 1024  # bytes read (and inflated) at a time
# Vendor routes by URL path prefix -> the suffix of their cap's variable, QP_HTTP_MAX_BYTES_<suffix>.
ROUTE_CAPS: tuple[tuple[str, str], ...] = (
    ("/wpsr/", "EIA_WPSR"),
    ("/dnav/", "EIA_DNAV"),
    ("/v2/", "EIA_API"),
    ("/dea/newcot/", "CFTC_WEEKLY"),
    ("/files/dea/history/", "CFTC_HISTORY"),
)


def body_cap(url: str) -> tuple[int, str]:
    """The byte cap of a vendor URL and the setting that sets it (named in the error when it is hit)."""
    path = urlsplit(url).path
    for prefix, route in ROUTE_CAPS:
        if path.startswith(prefix):
            var = f"QP_HTTP_MAX_BYTES_{route}"
            fallback = int(bounded_env("QP_HTTP_MAX_BYTES", DEFAULT_MAX_BYTES, 1, 2**40, integer=True))
            named = var if os.environ.get(var, "").strip() else f"{var}, else QP_HTTP_MAX_BYTES"
            return int(bounded_env(var, fallback, 1, 2**40, integer=True)), named
    return int(bounded_env("QP_HTTP_MAX_BYTES", DEFAULT_MAX_BYTES, 1, 2**40, integer=True)), "QP_HTTP_MAX_BYTES"


def webhook_cap() -> tuple[int, str]:
    var = "QP_HTTP_MAX_BYTES_WEBHOOK"
    return int(bounded_env(var, WEBHOOK_MAX_BYTES, 1, 2**40, integer=True)), var


def http_deadline_s() -> float:
    return float(bounded_env("QP_HTTP_DEADLINE", DEFAULT_DEADLINE_S, 0.1, 86_400))


def retry_after_max_s() -> float:
    return float(bounded_env("QP_HTTP_RETRY_AFTER_MAX", DEFAULT_RETRY_AFTER_MAX_S, 0, 86_400))


def user_agent() -> str:
    """The User-Agent of every outgoing request: the platform and its version, and QP_VENDOR_CONTACT when set
    (`quant-platform/0.1.0 (data platform of a commodity trading firm; +data-desk@example.com)`)."""
    contact = os.environ.get(CONTACT_ENV, "").strip()
    if not contact:
        return USER_AGENT
    if len(contact) > 200 or not all(32 <= ord(ch) < 127 for ch in contact) or any(ch in contact for ch in "()"):
        raise ConfigError(f"{CONTACT_ENV} must be printable ASCII without parentheses, at most 200 characters "
                          "(an e-mail address or a URL)")
    return f"{USER_AGENT[:-1]}; +{contact})"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delay-seconds or an HTTP date), None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if at is None or at.tzinfo is None:
        return None
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


# ------------------------------------------------------------------------------------- the deadline watchdog
# A read timeout applies to each socket read: a server dripping a byte a second never trips it, even while
# the status line and headers arrive. A watchdog shuts the request's socket down at the deadline instead.

_current = threading.local()


class _Watchdog:
    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        _current.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _current.watchdog = None

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.fired:
                _shutdown(sock)
            else:
                self._socks.append(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # a blocked recv() in the requesting thread returns at once
    except OSError:
        pass


class _WatchedMixin:
    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any):  # the socket reads of this response are watched
        dog = getattr(_current, "watchdog", None)
        if dog is not None:
            dog.watch(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOL_CLASSES = {"http": _WatchedPool, "https": _WatchedHTTPSPool}


class _BoundedAdapter(HTTPAdapter):
    """requests' adapter whose connections let the deadline watchdog reach their sockets."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **kwargs: Any):
        manager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is urllib3.ProxyManager:  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def hardened_session(session: requests.Session | None = None) -> requests.Session:
    """A requests Session (a new one, or `session`) whose requests `bounded_request` can bound in time."""
    session = session or requests.Session()
    adapter = _BoundedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if session.headers.get("User-Agent", "").startswith(("python-requests/", "quant-platform/")) \
            or "User-Agent" not in session.headers:
        session.headers["User-Agent"] = user_agent()
    return session


# -------------------------------------------------------------------------------------- bounded_request


@dataclass(frozen=True)
class BoundedResponse:
    url: str  # the URL finally answered (after same-host redirects); redact before showing it
    status: int
    headers: Mapping[str, str]
    body: bytes


def same_host(origin: str, target: str) -> bool:
    """The redirect policy: the same host, and the same scheme and port or an upgrade from http to https."""
    a, b = urlsplit(origin), urlsplit(target)
    if not a.hostname or (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    if a.scheme == b.scheme:
        return a.port == b.port
    return a.scheme == "http" and b.scheme == "https"


def bounded_request(
    method: str,
    url: str,
    *,
    session: requests.Session | None = None,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: bytes | str | None = None,
    timeout_s: float = 20.0,
    deadline_s: float | None = None,
    max_bytes: int | None = None,
    cap_setting: str = "QP_HTTP_MAX_BYTES",
    deadline_setting: str = "QP_HTTP_DEADLINE",
) -> BoundedResponse:
    """One HTTP request, whatever the server does: the body is read in chunks and refused past `max_bytes`
    (after decompression, before it is held whole), everything ends by `deadline_s` (connect, headers and
    body together), and only same-host redirects are followed. Any status is returned; transport failures
    raise HttpTransportError (retryable), limits an HttpLimitError subclass. Messages are redacted.

    This is the function to reuse for any other outgoing HTTP (webhooks, fan-out destinations)."""
    own_session = session is None
    session = hardened_session() if session is None else session
    deadline_s = http_deadline_s() if deadline_s is None else deadline_s
    cap = body_cap(url)[0] if max_bytes is None else max_bytes
    ends_at = time.monotonic() + deadline_s
    shown = _shown_url(url, params)
    current, current_params = url, params
    try:
        with _Watchdog(deadline_s) as dog:
            for _hop in range(MAX_REDIRECTS + 1):
                resp = _send(session, dog, method, current, current_params, headers, json, data, timeout_s,
                             shown, deadline_s, deadline_setting)
                try:
                    if not resp.is_redirect:
                        body = _read_body(resp, dog, cap, ends_at, shown, cap_setting, deadline_s,
                                          deadline_setting)
                        return BoundedResponse(resp.url, resp.status_code, resp.headers, body)
                    target = urljoin(resp.url, resp.headers["Location"])
                    status = resp.status_code
                finally:
                    resp.close()
                if not same_host(resp.url, target):
                    where = urlsplit(target).hostname or "?"
                    raise RedirectRefusedError(shown, f"HTTP {status} redirect to another host ({where}) "
                                               "not followed", status)
                if method.upper() != "GET" and status not in (307, 308):
                    raise RedirectRefusedError(shown, f"HTTP {status} redirect of a {method.upper()} not "
                                               "followed (it would be re-sent as a GET)", status)
                current, current_params = target, None
            raise RedirectRefusedError(shown, f"more than {MAX_REDIRECTS} redirects", status)
    finally:
        if own_session:
            session.close()


def _send(session, dog, method, url, params, headers, json, data, timeout_s, shown, deadline_s,
          deadline_setting) -> requests.Response:
    try:
        return session.request(method, url, params=params, headers=dict(headers or {}), json=json, data=data,
                               timeout=timeout_s, stream=True, allow_redirects=False)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _transport_error(exc, dog, shown, deadline_s, deadline_setting) from None


def _read_body(resp: requests.Response, dog: _Watchdog, cap: int, ends_at: float, shown: str, cap_setting: str,
               deadline_s: float, deadline_setting: str) -> bytes:
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and not resp.headers.get("Content-Encoding") and int(declared) > cap:
        raise ResponseTooLargeError(shown, f"the answer declares {int(declared)} bytes, more than the cap of "
                                    f"{cap} ({cap_setting}); not read")
    body = bytearray()
    try:
        for chunk in resp.iter_content(CHUNK):  # inflated CHUNK bytes at a time (urllib3 bounds each inflate)
            if len(body) + len(chunk) > cap:
                raise ResponseTooLargeError(shown, f"the answer is larger than the cap of {cap} bytes after "
                                            f"decompression ({cap_setting}); refused while reading")
            body += chunk
            if time.monotonic() > ends_at:
                raise DeadlineExceededError(shown, _deadline_reason(deadline_s, deadline_setting))
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _transport_error(exc, dog, shown, deadline_s, deadline_setting) from None
    return bytes(body)


def _transport_error(exc: BaseException, dog: _Watchdog, shown: str, deadline_s: float,
                     deadline_setting: str) -> VendorError:
    if dog.fired:
        return DeadlineExceededError(shown, _deadline_reason(deadline_s, deadline_setting))
    # str(exc) names the URL with its query (urllib3's "Max retries exceeded with url: ..."): redacted here,
    # and raised `from None` by the callers so the original exception is not carried along.
    return HttpTransportError(shown, redact_exception(exc), type(exc).__name__)


def _deadline_reason(deadline_s: float, setting: str) -> str:
    return f"no complete answer within the request's deadline of {deadline_s:g} s ({setting})"


def _shown_url(url: str, params: Mapping[str, Any] | None) -> str:
    """The URL as sent (query included) and redacted: what errors name."""
    if not params:
        return redact(url)
    try:
        return redact(requests.Request("GET", url, params=params).prepare().url or url)
    except requests.RequestException:
        return redact(url)


# ----------------------------------------------------------------------------------------- vendor client


class TransientVendorError(Exception):
    """A failure worth retrying: 5xx, 429, connection reset, read timeout, body cut short. `retry_after` is the
    wait the vendor asked for (Retry-After), which the next attempt honours."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
    """Fetches vendor URLs. `attempts` counts the total tries per call (first try included); `deadline_s`
    (default QP_HTTP_DEADLINE) bounds the whole call, retries included; `max_bytes` (default: the route's cap)
    bounds each body."""

    timeout_s: float = 20.0
    attempts: int = 4
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    deadline_s: float | None = None
    max_bytes: int | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        hardened_session(self.session)
        self.session.headers["User-Agent"] = user_agent()

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
        deadline = self.deadline_s if self.deadline_s is not None else http_deadline_s()
        cap, cap_setting = body_cap(url)
        if self.max_bytes is not None:
            cap, cap_setting = self.max_bytes, "VendorClient.max_bytes"
        shown = _shown_url(url, params)

        def out_of_time(state: RetryCallState) -> bool:
            upcoming = state.upcoming_sleep or 0.0
            return time.monotonic() + upcoming >= started + deadline

        backoff = wait_random_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s)

        def wait(state: RetryCallState) -> float:
            """The backoff, and never less than the vendor's Retry-After."""
            exc = state.outcome.exception() if state.outcome else None
            asked = getattr(exc, "retry_after", None) or 0.0
            return max(backoff(state), asked)

        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.attempts)) | out_of_time,
            wait=wait,
            retry=retry_if_exception(lambda e: isinstance(e, TransientVendorError)),
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempt_no = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempt_no = attempt.retry_state.attempt_number
                    left = deadline - (time.monotonic() - started)
                    if left <= 0:
                        raise DeadlineExceededError(shown, _deadline_reason(deadline, "QP_HTTP_DEADLINE"))
                    resp = self._once(url, params, headers, shown, left, cap, cap_setting)
        except TransientVendorError as exc:
            raise VendorError(shown, f"{exc} (gave up after {attempt_no} attempts)") from None
        body = resp.body if resp.status != 304 else b""
        return VendorResponse(
            url=redact(resp.url),
            status=resp.status,
            body=body,
            sha256=hashlib.sha256(body).hexdigest(),
            etag=resp.headers.get("ETag"),
            last_modified=resp.headers.get("Last-Modified"),
            content_type=resp.headers.get("Content-Type"),
            fetched_at=datetime.now(UTC),
            attempts=attempt_no,
            elapsed_s=time.monotonic() - started,
        )

    def _once(self, url: str, params: dict | None, headers: dict, shown: str, left: float, cap: int,
              cap_setting: str) -> BoundedResponse:
        try:
            resp = bounded_request("GET", url, session=self.session, params=params, headers=headers,
                                   timeout_s=self.timeout_s, deadline_s=left, max_bytes=cap,
                                   cap_setting=cap_setting)
        except HttpTransportError as exc:
            raise TransientVendorError(exc.reason) from None
        if resp.status >= 500 or resp.status == 429:
            asked = retry_after_seconds(resp.headers.get("Retry-After"))
            if asked is None:
                raise TransientVendorError(f"HTTP {resp.status}")
            limit = retry_after_max_s()
            if asked > limit:  # come back much later: the caller (a sensor's next tick, a rerun) decides when
                raise VendorError(shown, f"HTTP {resp.status} with Retry-After {asked:g} s, longer than "
                                  f"QP_HTTP_RETRY_AFTER_MAX ({limit:g} s): not asked again in this call")
            raise TransientVendorError(f"HTTP {resp.status} (Retry-After {asked:g} s)", retry_after=asked)
        if resp.status >= 400:
            text = resp.body[:2000].decode("utf-8", "replace")
            raise VendorError(shown, f"HTTP {resp.status}: {redact(_first_line(text))[:200]}")
        return resp

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("vendor call failed (%s), attempt %d; retrying in %.1fs", redact(str(exc)),
                    state.attempt_number, wait)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""


def _redact(text: str) -> str:
    """Kept for older callers: the platform's one redaction rule (platform/redaction.py)."""
    return redact(text)
