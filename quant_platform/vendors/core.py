"""The vendor simulator's core: one local HTTP site that serves published releases, injects faults, has an admin API.

Never knows a vendor: what EIA or CFTC serve, and how, lives in vendors/eia.py, vendors/cftc.py and the report folders.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from quant_platform.errors import QuantPlatformError
from quant_platform.vendors.faults import (
    FAULT_KINDS,
    HTTP_ERROR_FAULTS,
    gzip_bomb,
    misencode,
    retry_after_header,
    zip_bomb,
)

DATA_DIR_ENV = "QP_SAMPLE_DATA"  # one variable for every sample file (platform/sample_data.py)
ADMIN_PREFIX = "/_sim/"

HTML_PAGES = {
    429: b"<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>",
    404: b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
    405: b"<html><head><title>405 Method Not Allowed</title></head><body><h1>Method Not Allowed</h1></body></html>",
    500: b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1></body></html>",
    503: b"<html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1></body></html>",
}
_CONTENT_TYPES_BY_SUFFIX = {
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".zip": "application/zip",
    ".json": "application/json",
    ".xls": "application/vnd.ms-excel",
    ".ashx": "text/csv",
}


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class VendorSimulatorError(QuantPlatformError):
    """Base class of every failure raised by the vendor simulator (the CLI prints it as one line)."""


class VendorDataDirNotFoundError(VendorSimulatorError, FileNotFoundError):
    """The folder with the real vendor files (eia/, cftc/) or one of its files is missing."""


class VendorFileFormatError(VendorSimulatorError, ValueError):
    """A real vendor file does not have the layout the simulator derives its catalog from."""


class FaultKindError(VendorSimulatorError, ValueError):
    """inject_fault was given a kind that is not in FAULT_KINDS."""


class SyntheticWeekError(VendorSimulatorError, ValueError):
    """A later vendor week cannot be derived from the given file."""


class AdminRequestError(VendorSimulatorError, ValueError):
    """A request to the /_sim/ admin API is malformed (answered with HTTP 400)."""


class SimulatorNotRunningError(VendorSimulatorError, RuntimeError):
    """The simulator has to be started before it has a base URL."""


# --------------------------------------------------------------------------------------------------
# Sample files and the catalog
# --------------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """Folder holding eia/ and cftc/: the argument, else $QP_SAMPLE_DATA, else the packaged sample data."""
    from quant_platform.platform.sample_data import SampleDataNotFoundError, sample_data_dir

    try:
        return sample_data_dir(data_dir)
    except SampleDataNotFoundError as exc:
        raise VendorDataDirNotFoundError(str(exc)) from None


@dataclass(frozen=True)
class CatalogEntry:
    """One file the simulator serves from the start, and where its bytes come from."""

    path: str
    body: bytes
    content_type: str
    origin: str


# What a report folder declares for the simulator: given the sample-data folder, the files served from the start.
CatalogSource = Callable[[Path], list[CatalogEntry]]


def read_vendor_file(data_dir: Path, relative: str) -> bytes:
    location = data_dir / relative
    try:
        return location.read_bytes()
    except FileNotFoundError as exc:
        raise VendorDataDirNotFoundError(
            f"vendor file {location} is missing; {DATA_DIR_ENV} must point at the folder with eia/ and "
            "cftc/ described in SOURCES.md"
        ) from exc


def served_verbatim(path: str, source: str, content_type: str | None = None,
                    check: Callable[[bytes], object] | None = None) -> CatalogSource:
    """A sample file served byte for byte at `path`; `check` (when given) rejects a file of the wrong layout."""

    def entries(data_dir: Path) -> list[CatalogEntry]:
        body = read_vendor_file(data_dir, source)
        if check is not None:
            check(body)  # fail when the catalog is built, not on the first request
        return [CatalogEntry(path, body, content_type or guess_content_type(path), f"{source} verbatim")]

    return entries


# --------------------------------------------------------------------------------------------------
# Releases, faults and the request log
# --------------------------------------------------------------------------------------------------

Params = tuple[tuple[str, str], ...]


def split_target(target: str) -> tuple[str, Params]:
    """URL path (percent-decoded) and its query parameters in a canonical (sorted) order."""
    parts = urlsplit(target)
    path = unquote(parts.path) or "/"
    return path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


def _params_within(required: Params, offered: Params) -> bool:
    needed = Counter(required)
    have = Counter(offered)
    return all(have[item] >= count for item, count in needed.items())


@dataclass(frozen=True)
class Release:
    at: float
    sequence: int
    body: bytes
    content_type: str
    sha256: str


@dataclass
class _PendingFault:
    path_prefix: str
    kind: str
    remaining: int
    delay_s: float


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    released_at: float | None = None  # set for cacheable 200 answers


class GeneratedRoute(Protocol):
    """Paths under `prefix` answered per request (an API), from the site's releases, instead of published bytes."""

    prefix: str

    def answer(self, site: SimulatedSite, path: str, params: Params, now: float) -> Answer: ...

    def release_time(self, site: SimulatedSite, path: str, params: Params, now: float) -> float | None: ...

    def generated(self) -> list[dict[str, str]]: ...


def _etag_of(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def guess_content_type(path: str) -> str:
    suffix = Path(urlsplit(path).path).suffix.lower()
    return _CONTENT_TYPES_BY_SUFFIX.get(suffix, "application/octet-stream")


# --------------------------------------------------------------------------------------------------
# The site
# --------------------------------------------------------------------------------------------------


class SimulatedSite:
    """Vendor download sites on one local port: published releases under their URL paths, faults, an admin API.

    `catalog` lists what is served from the start (when `preload`); `generated_routes` answer paths under their
    prefix per request; `admin_actions` add POST endpoints under /_sim/. The preloaded catalog is released when
    the site is built (normally right before start()), so a publish() made afterwards with at=None supersedes
    it. All times come from `clock` (epoch seconds), which tests replace to move time without sleeping; the
    "timeout" fault sleeps in real time.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        preload: bool = True,
        clock: Callable[[], float] = time.time,
        *,
        catalog: Callable[[Path], list[CatalogEntry]] | None = None,
        generated_routes: tuple[GeneratedRoute, ...] = (),
        admin_actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
    ) -> None:
        self._clock = clock
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._releases: dict[str, dict[Params, list[Release]]] = {}
        self._display_paths: dict[tuple[str, Params], str] = {}
        self._faults: list[_PendingFault] = []
        self._seen: list[dict[str, Any]] = []
        self._server: _SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._generated_routes = generated_routes
        self._admin_actions = {"/_sim/release": self._admin_release, "/_sim/fault": self._admin_fault,
                               **(admin_actions or {})}
        self.data_dir: Path | None = resolve_data_dir(data_dir) if (preload or data_dir is not None) else None
        self.catalog: list[CatalogEntry] = []
        if preload and self.data_dir is not None and catalog is not None:
            self.catalog = catalog(self.data_dir)
            released_at = self._clock()
            for entry in self.catalog:
                self.publish(entry.path, entry.body, at=released_at, content_type=entry.content_type)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self):
        """Serve in a daemon thread; returns self. Starting a running simulator does nothing."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        server = _SimulatorHTTPServer((self._host, self._port), _VendorRequestHandler)
        server.simulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="vendor-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise SimulatorNotRunningError("the vendor simulator has no base URL until start() is called")
        host, port = self._server.server_address[:2]
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    # -- releases ----------------------------------------------------------------------------------

    def publish(
        self, path: str, body: bytes, *, at: float | None = None, content_type: str = "text/csv"
    ) -> None:
        """Release `body` at URL `path` (query allowed, matched order-insensitively) from time `at` on.

        Every release is kept: requests get the release with the latest `at` not after now (the later
        publish wins a tie), or 404 if there is none yet.
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if path.startswith(ADMIN_PREFIX):
            raise ValueError(f"paths under {ADMIN_PREFIX} belong to the admin API")
        if not isinstance(body, (bytes, bytearray)):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        if at is not None and (isinstance(at, bool) or not isinstance(at, (int, float))):
            raise TypeError(f"at must be epoch seconds or None, got {at!r}")
        resource_path, params = split_target(path)
        data = bytes(body)
        release = Release(
            at=self._clock() if at is None else float(at),
            sequence=next(self._sequence),
            body=data,
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        with self._lock:
            self._releases.setdefault(resource_path, {}).setdefault(params, []).append(release)
            self._display_paths.setdefault((resource_path, params), path)

    def release_time(self, path: str) -> float | None:
        """When the body a request to `path` would get now was released (None if it would get 404)."""
        resource_path, params = split_target(path)
        now = self._clock()
        route = self._generated_route(resource_path)
        if route is not None:
            return route.release_time(self, resource_path, params, now)
        release = self.served_release(resource_path, params, now)
        return release.at if release is not None else None

    def served_release(self, path: str, params: Params, now: float) -> Release | None:
        """The live release a request for `path` with `params` gets: the most specific published query wins."""
        with self._lock:
            by_params = self._releases.get(path)
            if not by_params:
                return None
            best: tuple[int, Release] | None = None
            for required, history in by_params.items():
                if not _params_within(required, params):
                    continue
                live = [release for release in history if release.at <= now]
                if not live:
                    continue
                current = max(live, key=lambda release: (release.at, release.sequence))
                if best is None or len(required) > best[0]:
                    best = (len(required), current)
            return best[1] if best else None

    def latest_release_where(self, path: str, published_query: Callable[[Params], bool], now: float) -> Release | None:
        """The newest live release at `path` among those published with a query `published_query` accepts."""
        with self._lock:
            histories = [history for published, history in self._releases.get(path, {}).items()
                         if published_query(published)]
            live = [release for history in histories for release in history if release.at <= now]
        return max(live, key=lambda release: (release.at, release.sequence)) if live else None

    def served_paths(self, prefix: str = "") -> list[str]:
        """URL paths (without query) that have at least one release, under `prefix`."""
        with self._lock:
            return [path for path in self._releases if path.startswith(prefix)]

    # -- faults and log ----------------------------------------------------------------------------

    def inject_fault(self, path: str, kind: str, count: int = 1, delay_s: float = 5.0) -> None:
        """Make the next `count` requests whose path starts with `path` (query ignored) fail as `kind`."""
        if kind not in FAULT_KINDS:
            raise FaultKindError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number of at least 1, got {count!r}")
        if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or delay_s < 0:
            raise ValueError(f"delay_s must be a number of seconds >= 0, got {delay_s!r}")
        prefix, _ = split_target(path)
        with self._lock:
            self._faults.append(_PendingFault(prefix, kind, count, float(delay_s)))

    def requests_seen(self, path_prefix: str = "") -> list[dict[str, Any]]:
        """Vendor requests answered so far (not the admin API): method, path, status, at, fault."""
        with self._lock:
            return [dict(entry) for entry in self._seen if entry["path"].startswith(path_prefix)]

    def state(self) -> dict[str, Any]:
        """What /_sim/state reports: served paths with release time and sha256, schedule, pending faults."""
        now = self._clock()
        with self._lock:
            keys = [(path, params) for path, by_params in self._releases.items() for params in by_params]
            histories = {key: list(self._releases[key[0]][key[1]]) for key in keys}
            faults = [
                {"path": f.path_prefix, "kind": f.kind, "remaining": f.remaining, "delay_s": f.delay_s}
                for f in self._faults
            ]
        resources = []
        for key in sorted(keys):
            history = histories[key]
            live = [release for release in history if release.at <= now]
            current = max(live, key=lambda release: (release.at, release.sequence)) if live else None
            resources.append(
                {
                    "path": self._display_paths.get(key, key[0]),
                    "release_time": current.at if current else None,
                    "sha256": current.sha256 if current else None,
                    "bytes": len(current.body) if current else None,
                    "content_type": current.content_type if current else None,
                    "releases": len(history),
                    "scheduled": [
                        {"at": release.at, "sha256": release.sha256}
                        for release in sorted(history, key=lambda r: (r.at, r.sequence))
                        if release.at > now
                    ],
                }
            )
        return {
            "now": now,
            "resources": resources,
            "generated": [item for route in self._generated_routes for item in route.generated()],
            "faults": faults,
        }

    def _take_fault(self, path: str) -> _PendingFault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return _PendingFault(fault.path_prefix, fault.kind, 1, fault.delay_s)
        return None

    def _record(self, method: str, target: str, status: int, at: float, fault: str | None) -> None:
        with self._lock:
            self._seen.append({"method": method, "path": target, "status": status, "at": at, "fault": fault})

    # -- answering ---------------------------------------------------------------------------------

    def _generated_route(self, path: str) -> GeneratedRoute | None:
        return next((route for route in self._generated_routes if path.startswith(route.prefix)), None)

    def _answer(self, path: str, params: Params, now: float) -> Answer:
        route = self._generated_route(path)
        if route is not None:
            return route.answer(self, path, params, now)
        release = self.served_release(path, params, now)
        if release is None:
            return Answer(404, HTML_PAGES[404], "text/html")
        return Answer(200, release.body, release.content_type, release.at)

    # -- admin -------------------------------------------------------------------------------------

    def _admin_release(self, payload: dict[str, Any]) -> dict[str, Any]:
        path = required_text(payload, "path")
        has_file, has_body = payload.get("file") is not None, payload.get("body_b64") is not None
        if has_file == has_body:
            raise AdminRequestError("give exactly one of 'file' (a server-local path) or 'body_b64'")
        if has_file:
            location = Path(required_text(payload, "file")).expanduser()
            try:
                body = location.read_bytes()
            except OSError as exc:
                raise AdminRequestError(f"cannot read file {str(location)!r}: {exc.strerror or exc}") from exc
        else:
            try:
                body = base64.b64decode(required_text(payload, "body_b64"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AdminRequestError("body_b64 is not valid base64") from exc
        at = optional_epoch(payload, "at")
        content_type = payload.get("content_type") or guess_content_type(path)
        if not isinstance(content_type, str):
            raise AdminRequestError("content_type must be a string")
        self.publish(path, body, at=at, content_type=content_type)
        return {
            "path": path,
            "at": at if at is not None else self.release_time(path),
            "sha256": hashlib.sha256(body).hexdigest(),
            "bytes": len(body),
        }

    def _admin_fault(self, payload: dict[str, Any]) -> dict[str, Any]:
        path = required_text(payload, "path")
        kind = required_text(payload, "kind")
        count = payload.get("count", 1)
        delay_s = payload.get("delay_s", 5.0)
        self.inject_fault(path, kind, count=count, delay_s=delay_s)
        return {"path": path, "kind": kind, "count": count, "delay_s": delay_s}


def required_text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise AdminRequestError(f"'{name}' is required and must be a non-empty string")
    return value


def optional_epoch(payload: dict[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AdminRequestError(f"'{name}' must be epoch seconds or null")
    return float(value)


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    simulator: SimulatedSite

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts, truncated bodies) are part of the game, not server errors.
        return


class _VendorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VendorSimulator/1.0"
    timeout = 30
    server: _SimulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def version_string(self) -> str:
        return self.server_version

    def handle(self) -> None:
        try:
            super().handle()
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        path, _ = split_target(self.path)
        if path.startswith(ADMIN_PREFIX):
            self._handle_admin("POST", path)
            return
        self._discard_body()
        self._send(405, [("Content-Type", "text/html"), ("Allow", "GET, HEAD")], HTML_PAGES[405], head=False)

    # -- vendor side -------------------------------------------------------------------------------

    def _dispatch(self, head: bool) -> None:
        path, params = split_target(self.path)
        if path.startswith(ADMIN_PREFIX):
            self._handle_admin("GET", path, head=head)
            return
        simulator = self.server.simulator
        arrived = simulator._clock()
        method = "HEAD" if head else "GET"
        fault = simulator._take_fault(path)
        kind = fault.kind if fault else None
        if fault is not None and kind == "timeout" and simulator._stopping.wait(fault.delay_s):
            self.close_connection = True
            return
        if kind in ("gzip_bomb", "zip_bomb"):
            simulator._record(method, self.path, 200, arrived, kind)
            if kind == "gzip_bomb":
                headers = [("Content-Type", guess_content_type(path)), ("Content-Encoding", "gzip")]
                self._send(200, headers, gzip_bomb(), head=head)
            else:
                self._send(200, [("Content-Type", "application/zip")], zip_bomb(), head=head)
            return
        if kind in HTTP_ERROR_FAULTS:
            status = HTTP_ERROR_FAULTS[kind]
            headers = [("Content-Type", "text/html")]
            if (retry_after := retry_after_header(kind, fault.delay_s)) is not None:
                headers.append(("Retry-After", retry_after))
            simulator._record(method, self.path, status, arrived, kind)
            self._send(status, headers, HTML_PAGES[status], head=head)
            return

        answer = simulator._answer(path, params, simulator._clock())
        body, content_type = answer.body, answer.content_type
        headers = [("Content-Type", content_type)]
        if answer.status != 200 or answer.released_at is None:
            simulator._record(method, self.path, answer.status, arrived, kind)
            self._send(answer.status, headers, body, head=head)
            return

        last_modified = ("Last-Modified", _http_date(answer.released_at))
        if kind == "truncated":
            simulator._record(method, self.path, 200, arrived, kind)
            self._send(
                200,
                [*headers, ("ETag", _etag_of(body)), last_modified],
                body,
                head=head,
                cut_after=len(body) // 2,
            )
            self.close_connection = True
            return
        if kind == "short_body":
            body = body[: int(len(body) * 0.4)]
        elif kind == "wrong_encoding":
            body, content_type = misencode(body, content_type)
            headers = [("Content-Type", content_type)]
        etag = _etag_of(body)
        validators = [("ETag", etag), last_modified]
        if kind in (None, "timeout") and self._not_modified(etag, answer.released_at):
            simulator._record(method, self.path, 304, arrived, kind)
            self._send(304, validators, b"", head=True)
            return
        simulator._record(method, self.path, 200, arrived, kind)
        self._send(200, [*headers, *validators], body, head=head)

    def _not_modified(self, etag: str, released_at: float) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            offered = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
            return "*" in offered or etag in offered
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since:
            try:
                since = parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
            if since.tzinfo is None:
                return False
            return int(released_at) <= since.timestamp()
        return False

    def _send(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        head: bool,
        cut_after: int | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body if cut_after is None else body[:cut_after])
        self.wfile.flush()

    # -- admin side --------------------------------------------------------------------------------

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0") or "0")
        except ValueError:
            self.close_connection = True
            return
        if length > 0:
            self.rfile.read(length)

    def _read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0") or "0")
        except ValueError as exc:
            raise AdminRequestError("Content-Length is not a number") from exc
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AdminRequestError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise AdminRequestError("body must be a JSON object")
        return payload

    def _handle_admin(self, method: str, path: str, head: bool = False) -> None:
        simulator = self.server.simulator
        status = 200
        try:
            payload = self._read_json() if method == "POST" else {}
            if method == "GET" and path == "/_sim/state":
                document: dict[str, Any] = simulator.state()
            elif method == "POST" and path in simulator._admin_actions:
                document = simulator._admin_actions[path](payload)
            else:
                status, document = 404, {"error": f"no admin endpoint {method} {path}"}
        except (VendorSimulatorError, ValueError, TypeError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            status, document = 400, {"error": message}
        body = json.dumps(document).encode("utf-8")
        self._send(status, [("Content-Type", "application/json")], body, head=head)
