"""`quant-platform ingest status`: a live table of stream rates and consumer lag, read from JetStream.

Never compute lag from worker reports: it comes from the consumers' own state on the server.
"""

from __future__ import annotations

import asyncio
import time


def render(state: dict, prev: dict | None, dt: float) -> str:
    lines = [f"{'stream':<10} {'messages':>12} {'last_seq':>12} {'msg/s':>10} {'bytes':>14}"]
    for name, s in sorted(state.items()):
        rate = ""
        if prev and name in prev and dt > 0:
            rate = f"{(s.get('last_seq', 0) - prev[name].get('last_seq', 0)) / dt:,.0f}"
        lines.append(f"{name:<10} {s.get('messages', 0):>12,} {s.get('last_seq', 0):>12,} {rate:>10} "
                     f"{s.get('bytes', 0):>14,}")
    lines.append("")
    lines.append(f"{'consumer':<24} {'stream':<10} {'pending':>10} {'ack_pending':>12} {'ack_floor':>12} {'lag':>10}")
    for sname, s in sorted(state.items()):
        for cname, c in sorted(s.get("consumers", {}).items()):
            lag = int(c.get("num_pending", 0)) + int(c.get("num_ack_pending", 0))
            lines.append(f"{cname:<24} {sname:<10} {c.get('num_pending', 0):>10,} {c.get('num_ack_pending', 0):>12,} "
                         f"{c.get('ack_floor_stream_seq', 0):>12,} {lag:>10,}")
    return "\n".join(lines)


async def print_status(url: str, watch: bool = False, interval_s: float = 2.0) -> None:
    import nats

    from quant_platform.market.connection import connect_options
    from quant_platform.market.streams import stream_state

    nc = await nats.connect(**connect_options(url), connect_timeout=3, max_reconnect_attempts=1)
    js = nc.jetstream()
    prev, t_prev = None, None
    try:
        while True:
            state = await stream_state(js)
            now = time.monotonic()
            text = render(state, prev, (now - t_prev) if t_prev else 0)
            print(("\x1b[2J\x1b[H" if watch else "") + text, flush=True)
            if not watch:
                return
            prev, t_prev = state, now
            await asyncio.sleep(interval_s)
    finally:
        await nc.close()
