"""Typed failures of the platform, each carrying the context an operator needs, its text already redacted.

Never raise a bare Exception for a user or vendor problem: the CLI turns these into one clear line.
"""

from __future__ import annotations

from quant_platform.platform.redaction import install_log_redaction, redact

install_log_redaction()  # every process of the platform imports this module: its log records are redacted


class QuantPlatformError(Exception):
    """Base class: a failure the platform understands and can explain in one line (never with a secret)."""

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigError(QuantPlatformError):
    """A setting (environment variable, URL, file) is missing or malformed."""


class VendorError(QuantPlatformError):
    """A vendor endpoint (or any server the platform calls) could not be read after retries."""

    def __init__(self, url: str, reason: str):
        self.url = redact(url)
        self.reason = redact(reason)
        super().__init__(f"vendor request failed for {self.url}: {self.reason}")


class HttpTransportError(VendorError):
    """The connection failed, timed out on a read or was cut short: worth another try. `kind` names the
    transport error (ConnectionError, ReadTimeout, ...) without any URL."""

    def __init__(self, url: str, reason: str, kind: str):
        self.kind = kind
        super().__init__(url, reason)


class HttpLimitError(VendorError):
    """An answer broke a limit the platform sets on every server (size, time, redirect target): never retried."""


class ResponseTooLargeError(HttpLimitError):
    """The body (counted after decompression) is larger than the route's cap."""


class DeadlineExceededError(HttpLimitError):
    """No complete answer within the overall deadline of the request (a slow drip, a stalled server)."""


class RedirectRefusedError(HttpLimitError):
    """A redirect the policy does not follow (another host, a downgrade to http, a POST sent as GET)."""

    def __init__(self, url: str, reason: str, status: int):
        self.status = status
        super().__init__(url, reason)


class ReportParseError(QuantPlatformError):
    """A vendor file does not have the shape we expect; nothing from it is loaded."""

    def __init__(self, report: str, line: int | None, reason: str):
        self.report = report
        self.line = line
        self.reason = reason
        where = f" line {line}" if line is not None else ""
        super().__init__(f"{report}{where}: {reason}")


class ArchiveLimitError(ReportParseError):
    """An archive member is larger, or compresses better, than any real vendor file: refused unread."""


class WarehouseError(QuantPlatformError):
    """The warehouse refused a statement or is unreachable."""


class LakeError(QuantPlatformError):
    """A lake path or file that cannot be trusted."""


class LakePathError(LakeError):
    """A lake path that is not a name of the lake's layout or leads outside the lake root."""


class LakeIntegrityError(LakeError):
    """An archived file whose bytes no longer hash to the sha256 its name (or a run's lineage) claims."""


def without_password(url: str) -> str:
    """A URL (or a comma-separated list of them) fit for a message: kept as the name older code calls;
    it applies the whole redaction rule (platform/redaction.py), `user:password@` losing its password."""
    return redact(url)
