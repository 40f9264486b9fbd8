"""Capture replay: extract the vendor frames from a recorded session and feed them to a sink as if live.

Never alter a recorded frame (bytes out are the bytes in the capture) and never write to a capture file.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

from quant_platform.errors import ConfigError, ReportParseError
from quant_platform.market.connectors.base import FrameSink
from quant_platform.market.contracts import RawFrame


def _binance_frames(path: Path, lines: list[bytes]) -> list[tuple[int, bytes]]:
    # cryptofeed's recorder: `<ws url> <-> <connect unix ts>` on each (re)connect, then one
    # `<receipt unix ts>: <frame>` line per frame.
    frames = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or (line.startswith((b"ws://", b"wss://")) and b" <-> " in line):
            continue
        ts, sep, frame = line.partition(b": ")
        if not sep or not frame or not ts.replace(b".", b"", 1).isdigit():
            raise ReportParseError(str(path), n, "expected '<receipt ts>: <frame>'")
        frames.append((n, frame))
    return frames


def _jsonl_frames(path: Path, lines: list[bytes]) -> list[tuple[int, bytes]]:
    # One frame per line (Polygon's mock-server frames; the simulator's recordings).
    return [(n, line) for n, line in enumerate(lines, 1) if line.strip()]


def _wscat_frames(path: Path, lines: list[bytes]) -> list[tuple[int, bytes]]:
    # A wscat transcript: `< ` server frames, `> ` client messages, plus wscat's own `$ ...`/`connected` lines.
    return [(n, line[2:]) for n, line in enumerate(lines, 1) if line.startswith(b"< ")]


CAPTURE_FORMATS: dict[str, Callable[[Path, list[bytes]], list[tuple[int, bytes]]]] = {
    "binance": _binance_frames,
    "polygon": _jsonl_frames,
    "alpaca": _wscat_frames,
    "simulator": _jsonl_frames,
}


def capture_format(source: str) -> str | None:
    """The capture format of a source: its own name, else the frame format the instrument master configures for it
    (binance_futures -> binance); None when it has none."""
    if source in CAPTURE_FORMATS or source == "databento":
        return source
    from quant_platform.market.instruments import InstrumentMaster

    fmt = InstrumentMaster.load().format_for(source)
    return fmt if fmt in CAPTURE_FORMATS or fmt == "databento" else None


def replay_sources() -> list[str]:
    """The sources `ingest replay` takes: those with a capture format of their own or through their format."""
    from quant_platform.market.instruments import InstrumentMaster

    names = set(CAPTURE_FORMATS) | {"databento"}
    try:
        master = InstrumentMaster.load()
    except Exception:  # noqa: BLE001 - a broken master file is reported by the command that uses it
        return sorted(names)
    return sorted(names | {s for s in master.sources() if master.format_for(s) in names})


def read_capture(source: str, path: Path) -> list[bytes]:
    """The vendor frames of a capture, in order, byte for byte (line endings removed); each must be JSON.
    A Databento capture is a DBN file (.dbn or .dbn.zst): its frames are base64 DBN (connectors/databento.py).
    A configured source (instruments.yaml `sources:`) reads captures in its format's shape."""
    fmt = capture_format(source)
    if fmt == "databento":
        from quant_platform.market.connectors.databento import dbn_file_frames

        return dbn_file_frames(Path(path))
    if fmt is None:
        raise ConfigError(f"no capture format for source {source!r}; known: {', '.join(replay_sources())}")
    extract = CAPTURE_FORMATS[fmt]
    path = Path(path)
    lines = [line.rstrip(b"\r") for line in path.read_bytes().split(b"\n")]
    frames = extract(path, lines)
    for n, frame in frames:
        try:
            json.loads(frame)
        except ValueError:
            raise ReportParseError(str(path), n, "the frame is not JSON") from None
    return [frame for _, frame in frames]


async def replay_capture(
    source: str,
    path: Path,
    sink: FrameSink,
    rate: float | None = None,
    loop_count: int = 1,
    *,
    stop: asyncio.Event | None = None,
) -> int:
    """Feed a capture's frames to `sink`, stamped now at emission; returns how many were emitted.

    `rate` frames/s paces emission on an absolute schedule (no drift); None emits as fast as the sink takes
    them. `loop_count` <= 0 repeats until `stop` is set.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0 frames/s")
    frames = read_capture(source, path)
    if not frames:
        return 0
    loops = itertools.count() if loop_count <= 0 else range(loop_count)
    start = time.monotonic()
    emitted = 0
    for _ in loops:
        for payload in frames:
            if stop is not None and stop.is_set():
                return emitted
            if rate is not None:
                delay = start + emitted / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif emitted % 1000 == 0:
                await asyncio.sleep(0)  # let the rest of the loop breathe
            await sink(RawFrame(received_at_ns=time.time_ns(), payload=payload))
            emitted += 1
    return emitted
