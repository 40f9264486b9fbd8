"""The instrument master: the firm's instrument ids and the one place that maps a source's venue symbol to them.

Never normalise a symbol anywhere else, and never guess: a symbol not in the master resolves to None.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from quant_platform.errors import ConfigError
from quant_platform.market import futures as fut

ENV_INSTRUMENTS_FILE = "QP_INSTRUMENTS_FILE"
PACKAGED_INSTRUMENTS_FILE = Path(__file__).with_name("instruments.yaml")

# A source name is used as a NATS subject token (contracts.raw_subject), so keep it plain.
_SOURCE_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_INSTRUMENT_KEYS = {"instrument_id", "asset_class", "description", "tick_size", "venues"}
_REQUIRED_KEYS = ("instrument_id", "asset_class", "venues")
_FUTURES_KEYS = {"root", "description", "tick_size", "sources"}


class InstrumentMasterError(ConfigError):
    """The instrument master file is missing, malformed or contradicts itself."""

    def __init__(self, path: Path | str | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = reason
        where = f"{path}: " if path is not None else ""
        super().__init__(f"instrument master {where}{reason}")


@dataclass(frozen=True)
class Instrument:
    instrument_id: str
    asset_class: str
    description: str = ""
    tick_size: float | None = None
    # source -> venue symbols as written in the config (the first one is the primary).
    venues: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class FuturesRoot:
    """A futures product whose contracts the master knows by rule, not one by one: every listed month of `root`
    sent by one of `sources` as an exchange symbol (CLZ6, CLZ26) is the instrument FUT:<root>:<YYYY-MM>."""

    root: str
    description: str = ""
    tick_size: float | None = None
    sources: tuple[str, ...] = ()


class InstrumentMaster:
    """Resolves (source, venue symbol) to an instrument id; built once per process, read on the hot path."""

    def __init__(self, instruments: list[Instrument], origin: Path | str | None = None,
                 source_formats: Mapping[str, str] | None = None, futures: list[FuturesRoot] | None = None,
                 source_options: Mapping[str, Mapping[str, Any]] | None = None):
        self.origin = origin
        # source -> connector options from its `sources:` entry (url, channels, routes), for build_connector.
        self._options: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (source_options or {}).items()}
        self._futures: dict[str, FuturesRoot] = {}
        self._futures_by_source: dict[str, set[str]] = {}
        for fr in futures or ():
            if fr.root in self._futures:
                raise InstrumentMasterError(origin, f"futures root {fr.root!r} is listed twice")
            self._futures[fr.root] = fr
            for source in fr.sources:
                self._futures_by_source.setdefault(source, set()).add(fr.root)
        # source -> frame format (adapter) when they differ, e.g. a second Binance-format feed.
        self._formats: dict[str, str] = dict(source_formats or {})
        self._instruments: list[Instrument] = []
        self._by_id: dict[str, Instrument] = {}
        # source -> UPPER-CASED venue symbol -> instrument id
        self._index: dict[str, dict[str, str]] = {}
        for ins in instruments:
            if ins.instrument_id in self._by_id:
                raise InstrumentMasterError(origin, f"duplicate instrument_id {ins.instrument_id!r}")
            self._by_id[ins.instrument_id] = ins
            self._instruments.append(ins)
            for source, symbols in ins.venues.items():
                idx = self._index.setdefault(source, {})
                for sym in symbols:
                    key = sym.upper()
                    other = idx.get(key)
                    if other is not None and other != ins.instrument_id:
                        raise InstrumentMasterError(
                            origin, f"venue symbol {source}:{sym} is mapped to both {other} and {ins.instrument_id}")
                    idx[key] = ins.instrument_id

    # ------------------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: Path | str | None = None) -> InstrumentMaster:
        """Read the master from `path`, else $QP_INSTRUMENTS_FILE, else the packaged instruments.yaml."""
        if path is None:
            env = os.environ.get(ENV_INSTRUMENTS_FILE, "").strip()
            path = Path(env) if env else PACKAGED_INSTRUMENTS_FILE
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InstrumentMasterError(path, f"cannot be read ({exc.__class__.__name__}: {exc})") from exc
        return cls.from_yaml(text, origin=path)

    @classmethod
    def from_yaml(cls, text: str, origin: Path | str | None = None) -> InstrumentMaster:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InstrumentMasterError(origin, f"is not valid YAML: {exc}") from exc
        return cls.from_dict(doc, origin=origin)

    @classmethod
    def from_dict(cls, doc: Any, origin: Path | str | None = None) -> InstrumentMaster:
        if not isinstance(doc, dict) or "instruments" not in doc \
                or not set(doc) <= {"instruments", "sources", "futures"}:
            raise InstrumentMasterError(
                origin, "must be a mapping with key 'instruments' (and optionally 'sources' and 'futures')")
        entries = doc["instruments"]
        if not isinstance(entries, list) or not entries:
            raise InstrumentMasterError(origin, "'instruments' must be a non-empty list")
        formats = _parse_sources(doc.get("sources"), origin)
        return cls([_parse_instrument(e, n, origin) for n, e in enumerate(entries)], origin=origin,
                   source_formats=formats, futures=_parse_futures(doc.get("futures"), origin),
                   source_options=_parse_source_options(doc.get("sources"), origin))

    # ------------------------------------------------------------------------------------------- queries
    def resolve(self, source: str, venue_symbol: str) -> str | None:
        """The instrument id for a venue symbol (case-insensitive), or None when the master does not know it."""
        idx = self._index.get(source)
        if idx is not None:
            # Venues mostly send the configured (upper) case, so try the symbol as sent before upper-casing it.
            iid = idx.get(venue_symbol) or idx.get(venue_symbol.upper())
            if iid is not None:
                return iid
        if source in self._futures_by_source:  # a contract symbol: its decade is the one from today on
            from datetime import UTC, datetime

            return self.resolve_contract(source, venue_symbol, datetime.now(UTC).date())
        return None

    def resolve_contract(self, source: str, venue_symbol: str, reference: date) -> str | None:
        """The contract id (FUT:CL:2026-12) for an outright futures symbol of a root the master lists for
        `source`; `reference` (the event's date) settles a one-digit year (futures.parse_symbol). Symbols
        configured one by one in `instruments` win. None for spreads, options, unknown roots or unlisted months."""
        idx = self._index.get(source)
        if idx is not None:
            iid = idx.get(venue_symbol) or idx.get(venue_symbol.upper())
            if iid is not None:
                return iid
        roots = self._futures_by_source.get(source)
        if not roots:
            return None
        contract = fut.parse_symbol(venue_symbol, reference)
        if contract is None or contract.root not in roots \
                or contract.month_code not in fut.rule_for(contract.root).months:
            return None
        return contract.instrument_id

    def futures_roots(self, source: str | None = None) -> list[FuturesRoot]:
        """The futures roots of the master (those a source sends, with `source`), in config order."""
        return [fr for fr in self._futures.values() if source is None or source in fr.sources]

    def contract(self, instrument_id: str) -> fut.Contract | None:
        """The futures contract behind a contract id of a root the master lists (root, month, last trade
        date), else None (generic ids such as FUT:CL are not contracts)."""
        c = fut.parse_contract_id(instrument_id)
        return c if c is not None and c.root in self._futures else None

    def instruments(self) -> list[Instrument]:
        return list(self._instruments)

    def get(self, instrument_id: str) -> Instrument | None:
        ins = self._by_id.get(instrument_id)
        if ins is None and (c := self.contract(instrument_id)) is not None:
            fr = self._futures[c.root]
            return Instrument(instrument_id, "future", f"{fr.description} {date(c.year, c.month, 1):%b %Y}".strip(),
                              fr.tick_size, {s: (c.exchange_symbol,) for s in fr.sources})
        return ins

    def sources(self) -> list[str]:
        return sorted(set(self._index) | set(self._formats) | set(self._futures_by_source))

    def format_for(self, source: str) -> str:
        """The frame format (adapter) a source speaks: its `sources.<source>.format`, else the source name."""
        return self._formats.get(source, source)

    def connector_options(self, source: str) -> dict[str, Any]:
        """Connector options of a configured source (`url`, `channels`, `routes`): {} when it has none."""
        return dict(self._options.get(source, {}))

    def symbols_for(self, source: str) -> list[str]:
        """The venue symbols to subscribe to on `source`, as written in the config, in config order."""
        return [sym for ins in self._instruments for sym in ins.venues.get(source, ())]


_SOURCE_KEYS = {"format", "url", "channels", "routes"}


def _parse_sources(raw: Any, origin: Path | str | None) -> dict[str, str]:
    """Optional `sources: {<source>: {format: <adapter format>[, url, channels, routes]}}`: a new feed in a known
    format is config only (its connector options: _parse_source_options)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InstrumentMasterError(origin, "'sources' must be a mapping of source -> {format: <format>}")
    formats: dict[str, str] = {}
    for source, spec in raw.items():
        if not isinstance(source, str) or not _SOURCE_RE.match(source):
            raise InstrumentMasterError(origin, f"sources: source {source!r} must be lower-case letters, digits and '_'")
        if not isinstance(spec, dict) or "format" not in spec or not set(spec) <= _SOURCE_KEYS \
                or not isinstance(spec["format"], str) or not _SOURCE_RE.match(spec["format"]):
            raise InstrumentMasterError(
                origin, f"sources.{source}: must be {{format: <format name>}} (optional keys: url, channels, routes)")
        formats[source] = spec["format"]
    return formats


def _parse_source_options(raw: Any, origin: Path | str | None) -> dict[str, dict[str, Any]]:
    """The connector options of each `sources:` entry: `url` (the vendor's websocket base URL, wss://...),
    `channels` (stream kinds to subscribe, e.g. [aggTrade, bookTicker, markPrice]) and `routes` (route -> the
    channel kinds served there, for vendors that split one feed over several URL paths: Binance USD-M /public and
    /market). Checked here, so a typo stops the load instead of a connector."""
    out: dict[str, dict[str, Any]] = {}
    for source, spec in (raw or {}).items():
        opts: dict[str, Any] = {}
        url = spec.get("url")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
                raise InstrumentMasterError(origin, f"sources.{source}.url: must be a ws:// or wss:// URL")
            opts["url"] = url
        channels = spec.get("channels")
        if channels is not None:
            if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
                raise InstrumentMasterError(origin, f"sources.{source}.channels: must be a non-empty list of names")
            opts["channels"] = tuple(channels)
        routes = spec.get("routes")
        if routes is not None:
            if not isinstance(routes, dict) or not routes or not all(
                    isinstance(r, str) and _SOURCE_RE.match(r) and isinstance(kinds, list) and kinds
                    and all(isinstance(k, str) and k for k in kinds) for r, kinds in routes.items()):
                raise InstrumentMasterError(
                    origin, f"sources.{source}.routes: must map a route name to a non-empty list of channel kinds")
            seen: dict[str, str] = {}
            for r, kinds in routes.items():
                for k in kinds:
                    if k in seen:
                        raise InstrumentMasterError(
                            origin, f"sources.{source}.routes: {k} is served by both {seen[k]} and {r}")
                    seen[k] = r
            opts["routes"] = {r: tuple(k) for r, k in routes.items()}
        if opts:
            out[source] = opts
    return out


def _parse_instrument(entry: Any, n: int, origin: Path | str | None) -> Instrument:
    def bad(reason: str) -> InstrumentMasterError:
        ident = entry.get("instrument_id") if isinstance(entry, dict) else None
        label = f"instruments[{n}]" + (f" ({ident})" if isinstance(ident, str) else "")
        return InstrumentMasterError(origin, f"{label}: {reason}")

    if not isinstance(entry, dict):
        raise bad("must be a mapping")
    unknown = set(entry) - _INSTRUMENT_KEYS
    if unknown:
        raise bad(f"unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(_INSTRUMENT_KEYS)}")
    missing = [k for k in _REQUIRED_KEYS if k not in entry]
    if missing:
        raise bad(f"missing key(s) {missing}")

    iid = entry["instrument_id"]
    if not isinstance(iid, str) or not iid or iid != iid.strip() or any(c.isspace() for c in iid):
        raise bad("instrument_id must be a non-empty string without whitespace")
    asset_class = entry["asset_class"]
    if not isinstance(asset_class, str) or not asset_class.strip():
        raise bad("asset_class must be a non-empty string")
    description = entry.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise bad("description must be a string")
    tick_size = entry.get("tick_size")
    if tick_size is not None:
        if isinstance(tick_size, bool) or not isinstance(tick_size, int | float) \
                or not math.isfinite(tick_size) or tick_size <= 0:
            raise bad(f"tick_size must be a positive number, got {tick_size!r}")
        tick_size = float(tick_size)

    venues_raw = entry["venues"]
    if not isinstance(venues_raw, dict) or not venues_raw:
        raise bad("venues must be a non-empty mapping of source -> list of venue symbols")
    venues: dict[str, tuple[str, ...]] = {}
    for source, symbols in venues_raw.items():
        if not isinstance(source, str) or not _SOURCE_RE.match(source):
            raise bad(f"source {source!r} must be lower-case letters, digits and '_'")
        if not isinstance(symbols, list) or not symbols:
            raise bad(f"venues.{source} must be a non-empty list of venue symbols")
        seen: list[str] = []
        for sym in symbols:
            if not isinstance(sym, str) or not sym.strip() or sym != sym.strip():
                raise bad(f"venues.{source}: venue symbol {sym!r} must be a non-empty string without padding "
                          "(quote symbols YAML reads as booleans or numbers, e.g. 'NO', '0700')")
            if sym.upper() not in (s.upper() for s in seen):
                seen.append(sym)
        venues[source] = tuple(seen)
    return Instrument(iid, asset_class.strip(), description, tick_size, venues)


def _parse_futures(raw: Any, origin: Path | str | None) -> list[FuturesRoot]:
    """Optional `futures: [{root: CL, description, tick_size, sources: [databento]}]`: the roots whose every
    contract is an instrument; the root needs an expiry rule in futures.py (it is written by the exchange)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InstrumentMasterError(origin, "'futures' must be a list of {root, description, tick_size, sources}")
    out = []
    for n, entry in enumerate(raw):
        label = f"futures[{n}]"
        if not isinstance(entry, dict) or "root" not in entry or not set(entry) <= _FUTURES_KEYS:
            raise InstrumentMasterError(origin, f"{label}: must be a mapping with 'root' and only {sorted(_FUTURES_KEYS)}")
        root = entry["root"]
        if not isinstance(root, str) or root not in fut.ROOT_RULES:
            raise InstrumentMasterError(origin, f"{label}: root {root!r} has no expiry rule "
                                                f"(known: {', '.join(sorted(fut.ROOT_RULES))})")
        description = entry.get("description") or ""
        if not isinstance(description, str):
            raise InstrumentMasterError(origin, f"{label} ({root}): description must be a string")
        tick_size = entry.get("tick_size")
        if tick_size is not None and (isinstance(tick_size, bool) or not isinstance(tick_size, int | float)
                                      or not math.isfinite(tick_size) or tick_size <= 0):
            raise InstrumentMasterError(origin, f"{label} ({root}): tick_size must be a positive number")
        sources = entry.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, str) and _SOURCE_RE.match(s) for s in sources):
            raise InstrumentMasterError(origin, f"{label} ({root}): sources must be a list of source names")
        out.append(FuturesRoot(root, description, float(tick_size) if tick_size is not None else None,
                               tuple(dict.fromkeys(sources))))
    return out
