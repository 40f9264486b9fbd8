"""Helpers for tick-pipeline tests: a private nats-server, frames, and reading what landed.

Never use the machine's NATS on 4222 here: each test owns a server it can kill and restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pyarrow.dataset as ds

from quant_platform.market.contracts import RawFrame


def sim_frames(n: int, start_ns: int | None = None, symbols=("CL", "BZ", "NG"), *, step_ns: int = 1000,
               seq0: int = 0) -> list[RawFrame]:
    """Simulator-format frames: alternating trades and quotes, `step_ns` apart, vendor sequence from `seq0`."""
    t0 = start_ns or time.time_ns()
    out = []
    for i in range(n):
        sym = symbols[i % len(symbols)]
        t = t0 + i * step_ns
        if i % 2:
            body = {"sym": sym, "ev": "T", "t": t, "seq": seq0 + i, "p": 70.0 + (i % 100) / 100, "s": 1 + i % 5}
        else:
            body = {"sym": sym, "ev": "Q", "t": t, "seq": seq0 + i, "bp": 70.0, "bs": 3, "ap": 70.02, "as": 4}
        out.append(RawFrame(t, json.dumps(body, separators=(",", ":")).encode()))
    return out


def landed_table(lake_root: Path):
    files = [p for p in (lake_root / "ticks" / "landing").rglob("*.parquet") if "source=_schema" not in str(p)]
    if not files:
        return None
    return ds.dataset([str(f) for f in files], format="parquet").to_table()


async def wait_for(predicate, timeout_s: float = 30, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


async def dlq_messages(js, limit: int = 10_000) -> list:
    """Every message in TICKS_DLQ (an ephemeral ordered read)."""
    out = []
    sub = await js.subscribe("ticks.dlq.>", stream="TICKS_DLQ", ordered_consumer=True)
    try:
        while len(out) < limit:
            try:
                out.append(await sub.next_msg(timeout=1))
            except Exception:
                break
    finally:
        await sub.unsubscribe()
    return out


def mutate_value(rng, obj: dict, key: str, kind: int, odd_values: list) -> bool:
    """The mutations every fuzz test of a vectorised adapter path shares, by `kind`: 0 drops `key`, 1 nulls it, 2 puts
    one of `odd_values` there. False for another kind (the caller's own mutations)."""
    if kind == 0:
        del obj[key]
    elif kind == 1:
        obj[key] = None
    elif kind == 2:
        obj[key] = rng.choice(odd_values)
    else:
        return False
    return True
