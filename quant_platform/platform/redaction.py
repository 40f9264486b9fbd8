"""The one redaction rule for every URL, message and error that leaves the process (logs, events, CLI).
Never log, raise or print a secret, and never log what this module hid (not even that it hid something).

Logs, Dagster events, exceptions (QuantPlatformError's text) and CLI output all go through `redact`.

The rule, applied in this order:
1. the value of every secret environment variable (SECRET_ENV_VARS, and any QP_*/DAGSTER_* variable whose name
   ends in KEY, KEY_ID, SECRET, TOKEN or PASSWORD), the password inside any QP_*_URL, and secrets registered at
   run time (`register_secret`, e.g. a webhook URL handed to a client), as written and URL-encoded;
   a webhook URL's path is replaced by `/<webhook path redacted>` (urllib3 logs paths without the host);
2. `user:password@` in URLs keeps the user only;
3. query parameters named in SECRET_PARAMS (`?api_key=...&token=...`), and the same names as quoted keys of
   a dict or JSON text, keep their name only;
4. webhook paths of the well-known shapes (Slack `/services/T../B../..`, Discord `/api/webhooks/..`).
Secrets shorter than MIN_SECRET_LENGTH characters are left to rules 2-4 (replacing "abc" everywhere would
mangle every message).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from urllib.parse import quote, quote_plus, urlsplit

MASK = "***"
PATH_MASK = "/<webhook path redacted>"
URL_MASK = "<webhook url redacted>"
MIN_SECRET_LENGTH = 6

SECRET_PARAMS = ("api_key", "apikey", "api-key", "token", "access_token", "refresh_token", "key", "secret",
                 "client_secret", "password", "passwd")
SECRET_ENV_VARS = ("QP_EIA_API_KEY", "QP_POLYGON_API_KEY", "QP_ALPACA_KEY_ID", "QP_ALPACA_SECRET_KEY",
                   "QP_ALERT_WEBHOOK_URL", "DAGSTER_PG_PASSWORD",
                   # The object-store lake's credentials (platform/lake.py reads the standard AWS names).
                   "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_SECRET_ENV_NAME = re.compile(r"^(?:QP|DAGSTER)_\w*(?:KEY|KEY_ID|SECRET|TOKEN|PASSWORD|PASSWD)$")
_WEBHOOK_ENV_NAME = re.compile(r"^QP_\w*WEBHOOK\w*_URL$")
_URL_ENV_NAME = re.compile(r"^(?:QP|DAGSTER)_\w*_URLS?$")

_names = "|".join(re.escape(p) for p in sorted(SECRET_PARAMS, key=len, reverse=True))
_QUERY_PARAM = re.compile(rf"(?<=[?&;])({_names})=[^&\s'\"<>#)]*", re.IGNORECASE)
_FREE_PARAM = re.compile(r"(?<![\w.-])(api_key|apikey|access_token|client_secret|password)=[^&\s'\"<>#),]*",
                         re.IGNORECASE)
_quoted = "|".join(re.escape(p) for p in sorted(set(SECRET_PARAMS) - {"key"}, key=len, reverse=True))
_QUOTED_KEY = re.compile(rf"""(["'])({_quoted})\1(\s*:\s*)(["'])(?:(?!\4).)*\4""", re.IGNORECASE)
_USERINFO = re.compile(r"(//[^:/@,\s'\"]*:)[^@/,\s'\"]*@")
_USERINFO_PASSWORD = re.compile(r"//[^:/@,\s'\"]*:([^@/,\s'\"]+)@")
_WEBHOOK_PATHS = (
    (re.compile(r"/services/[^\s/?#'\"<>]+/[^\s/?#'\"<>]+/[^\s?#'\"<>|)]+"), "/services/" + MASK),
    (re.compile(r"/api/webhooks/[^\s/?#'\"<>]+/[^\s?#'\"<>|)]+"), "/api/webhooks/" + MASK),
)

_registered: dict[str, str] = {}  # secret -> its mask
_lock = threading.Lock()


def register_secret(value: str | None, mask: str = MASK) -> None:
    """Hide `value` from now on in everything `redact` sees (for secrets not read from the environment)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered[value] = mask


def register_webhook_url(url: str | None) -> None:
    """A webhook URL is a secret as a whole and by its path (Slack puts the token in the path)."""
    if not url:
        return
    register_secret(url, URL_MASK)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(path) > 1:
        register_secret(path, PATH_MASK)


def _secrets() -> list[tuple[str, str]]:
    """(secret, mask) pairs known now, longest first so a whole URL is masked before its path."""
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        value = value.strip()
        if not value:
            continue
        if _WEBHOOK_ENV_NAME.match(name) or name == "QP_ALERT_WEBHOOK_URL":
            parts = urlsplit(value)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            found[value] = URL_MASK
            if len(path) > 1:
                found.setdefault(path, PATH_MASK)
        elif name in SECRET_ENV_VARS or _SECRET_ENV_NAME.match(name):
            found[value] = MASK
        elif _URL_ENV_NAME.match(name):
            for password in _USERINFO_PASSWORD.findall(value):
                found[password] = MASK
    with _lock:
        for value, mask in _registered.items():
            found.setdefault(value, mask)
    pairs = [(s, m) for s, m in found.items() if len(s) >= MIN_SECRET_LENGTH]
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def redact(text: object) -> str:
    """`text` (a message, URL or error text) with every secret the rule knows replaced by a mask."""
    out = text if isinstance(text, str) else str(text)
    if not out:
        return out
    for secret, mask in _secrets():
        for form in {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret, safe="/:")}:
            if form in out:
                out = out.replace(form, mask)
    out = _USERINFO.sub(rf"\1{MASK}@", out)
    out = _QUERY_PARAM.sub(rf"\1={MASK}", out)
    out = _FREE_PARAM.sub(rf"\1={MASK}", out)
    out = _QUOTED_KEY.sub(rf"\1\2\1\3\4{MASK}\4", out)
    for pattern, replacement in _WEBHOOK_PATHS:
        out = pattern.sub(replacement, out)
    return out


def redact_exception(exc: BaseException) -> str:
    """One line naming the exception's type and its redacted message (for logs and reasons)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {redact(first)}" if first else type(exc).__name__


# ------------------------------------------------------------------------------------------------ logging

_installed = False
_previous_factory = logging.getLogRecordFactory()


def _redacting_factory(*args, **kwargs) -> logging.LogRecord:
    record = _previous_factory(*args, **kwargs)
    try:
        text = record.getMessage()
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = redact(formatted)
            if clean != formatted:
                record.exc_text = clean  # what Formatter prints instead of formatting exc_info again
    except Exception:  # a malformed record (bad %-args) is logging's problem to report, not ours
        pass
    return record


def install_log_redaction() -> None:
    """Redact every log record of the process as it is created (any logger: urllib3, Dagster, ours), so no
    handler (console, file, Dagster's event log, pytest's caplog) ever sees a secret. Idempotent."""
    global _installed, _previous_factory
    with _lock:
        if _installed:
            return
        _previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)
        _installed = True
