"""Vendor adapters: one per frame format, looked up by source, and normalize_batch, which turns the frames of
one raw message into one canonical Arrow table plus the rejected frames with their reasons.

Never let normalize_batch raise: every frame ends as ticks, ignored, or rejected with a reason for TICKS_DLQ.
"""

from __future__ import annotations

import pyarrow as pa

from quant_platform.errors import ConfigError
from quant_platform.market.adapters.alpaca import AlpacaAdapter, rfc3339_to_ns
from quant_platform.market.adapters.base import Adapter, NormalizeResult, TickRejected
from quant_platform.market.adapters.binance import BinanceAdapter
from quant_platform.market.adapters.polygon import PolygonAdapter
from quant_platform.market.adapters.simulator import SimulatorAdapter
from quant_platform.market.contracts import TICK_SCHEMA, RawFrame
from quant_platform.market.instruments import InstrumentMaster

__all__ = [
    "ADAPTERS", "ADAPTER_FORMATS", "Adapter", "AlpacaAdapter", "BinanceAdapter", "NormalizeResult",
    "PolygonAdapter", "SimulatorAdapter", "TickRejected", "UnknownSourceError", "get_adapter",
    "normalize_batch", "register_adapter", "rfc3339_to_ns", "ticks_to_table",
]


class UnknownSourceError(ConfigError):
    """No adapter is registered for a source, and the instrument master names no known format for it."""

    def __init__(self, source: str, known: list[str]):
        self.source = source
        self.reason = (f"no adapter for source {source!r} (registered: {', '.join(known) or 'none'}; "
                       f"a new feed in a known format needs `sources: {{{source}: {{format: ...}}}}` "
                       f"in the instrument master)")
        super().__init__(self.reason)


# Frame formats the platform can parse; a source speaks the format of its own name unless the instrument
# master's `sources:` section says otherwise.
ADAPTER_FORMATS: dict[str, type[Adapter]] = {
    "binance": BinanceAdapter,
    "polygon": PolygonAdapter,
    "alpaca": AlpacaAdapter,
    "simulator": SimulatorAdapter,
}
ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> Adapter:
    """Make `adapter` the one used for `adapter.source` (replacing any earlier one)."""
    if not isinstance(adapter, Adapter) or not adapter.source:
        raise ConfigError(f"cannot register {adapter!r}: not an Adapter with a source name")
    ADAPTERS[adapter.source] = adapter
    return adapter


for _fmt, _cls in ADAPTER_FORMATS.items():
    register_adapter(_cls(_fmt))


def get_adapter(source: str, master: InstrumentMaster | None = None) -> Adapter:
    """The adapter for `source`; with a master, a source configured as `{format: <known format>}` gets one."""
    adapter = ADAPTERS.get(source)
    if adapter is not None:
        return adapter
    if master is not None:
        cls = ADAPTER_FORMATS.get(master.format_for(source))
        if cls is not None:
            return register_adapter(cls(source))
    raise UnknownSourceError(source, sorted(ADAPTERS))


def ticks_to_table(ticks: list[dict], stream_seq: int) -> pa.Table:
    """Canonical tick dicts -> one TICK_SCHEMA table, built column by column (no per-row Arrow work)."""
    n = len(ticks)
    arrays = []
    for f in TICK_SCHEMA:
        if f.name == "stream_seq":
            arrays.append(pa.array([stream_seq] * n, type=f.type))
        else:
            name = f.name
            arrays.append(pa.array([t[name] for t in ticks], type=f.type))
    return pa.Table.from_arrays(arrays, schema=TICK_SCHEMA)


def normalize_batch(source: str, frames: list[RawFrame], stream_seq: int, master: InstrumentMaster
                    ) -> tuple[pa.Table, list[tuple[RawFrame, str]], int]:
    """All frames of one raw message -> (canonical table with stream_seq filled, rejected frames with reasons,
    count of ignored vendor messages)."""
    rejected: list[tuple[RawFrame, str]] = []
    try:
        adapter = get_adapter(source, master)
    except UnknownSourceError as exc:
        return TICK_SCHEMA.empty_table(), [(f, exc.reason) for f in frames], 0

    ticks: list[dict] = []
    spans: list[tuple[RawFrame, int, int]] = []  # which ticks came from which frame, for the slow path
    ignored = 0
    normalize = adapter.normalize
    for frame in frames:
        try:
            result = normalize(frame, master)
        except TickRejected as exc:
            rejected.append((frame, exc.reason))
            continue
        except Exception as exc:  # an adapter bug must not stop the worker: the frame waits in the DLQ
            rejected.append((frame, f"adapter error ({exc.__class__.__name__}: {str(exc)[:200]})"))
            continue
        if result.ticks:
            spans.append((frame, len(ticks), len(ticks) + len(result.ticks)))
            ticks.extend(result.ticks)
        ignored += result.ignored

    try:
        return ticks_to_table(ticks, stream_seq), rejected, ignored
    except Exception:  # noqa: BLE001 - slow path: find the frame(s) whose ticks Arrow refuses
        pass
    tables = []
    for frame, start, end in spans:
        try:
            tables.append(ticks_to_table(ticks[start:end], stream_seq))
        except Exception as exc:
            rejected.append((frame, f"cannot build canonical rows ({exc.__class__.__name__}: {str(exc)[:200]})"))
    table = pa.concat_tables(tables) if tables else TICK_SCHEMA.empty_table()
    return table, rejected, ignored
