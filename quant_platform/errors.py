"""Typed failures of the platform, each carrying the context an operator needs.

Never raise a bare Exception for a user or vendor problem: the CLI turns these into one clear line.
"""

from __future__ import annotations


class QuantPlatformError(Exception):
    """Base class: a failure the platform understands and can explain in one line."""


class ConfigError(QuantPlatformError):
    """A setting (environment variable, URL, file) is missing or malformed."""


class VendorError(QuantPlatformError):
    """A vendor endpoint could not be read after retries."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"vendor request failed for {url}: {reason}")


class ReportParseError(QuantPlatformError):
    """A vendor file does not have the shape we expect; nothing from it is loaded."""

    def __init__(self, report: str, line: int | None, reason: str):
        self.report = report
        self.line = line
        self.reason = reason
        where = f" line {line}" if line is not None else ""
        super().__init__(f"{report}{where}: {reason}")


class WarehouseError(QuantPlatformError):
    """The warehouse refused a statement or is unreachable."""


def without_password(url: str) -> str:
    """A URL (or a comma-separated list of them) fit for a message: any `user:password@` loses its password."""
    import re

    return re.sub(r"(//[^:/@,\s]*:)[^@/,\s]*@", r"\1***@", url)
