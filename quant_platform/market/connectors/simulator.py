"""Market simulator: a seeded stream of energy-futures trades and quotes at a set rate, with bursts, for demos,
load tests and benchmarks, emitted through the same sink as the vendor connectors.

Never publish under a vendor's source name, and never draw randomness outside the seeded generator.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from quant_platform.errors import ConfigError
from quant_platform.market.connectors.base import FrameSink, register
from quant_platform.market.contracts import RawFrame


@dataclass(frozen=True)
class SimInstrument:
    symbol: str
    price: float  # starting mid
    tick: float  # price increment (matches the instrument master's tick_size)
    vol_ticks: float  # standard deviation of the mid move per event, in ticks
    max_size: int  # lots
    weight: float  # share of the events

    @property
    def decimals(self) -> int:
        return max(0, -Decimal(str(self.tick)).as_tuple().exponent)  # type: ignore[operator]


# NYMEX energy futures at plausible levels (simulator symbols map to FUT:<sym> in the instrument master).
DEFAULT_INSTRUMENTS = (
    SimInstrument("CL", 78.50, 0.01, 1.5, 50, 0.35),  # WTI crude, USD/bbl
    SimInstrument("BZ", 82.30, 0.01, 1.5, 40, 0.25),  # Brent, USD/bbl
    SimInstrument("NG", 2.850, 0.001, 2.0, 60, 0.20),  # Henry Hub gas, USD/MMBtu
    SimInstrument("HO", 2.6500, 0.0001, 6.0, 20, 0.10),  # ULSD, USD/gal
    SimInstrument("RB", 2.4500, 0.0001, 6.0, 20, 0.10),  # RBOB, USD/gal
)
_SPREADS_TICKS = (1, 1, 1, 1, 2, 2, 3)


_WAKE_SLACK_S = 0.004


@register
class MarketSimulator:
    """Frames `{"sym","ev":"T","t","seq","p","s"}` and `{"sym","ev":"Q","t","seq","bp","bs","ap","as"}`.

    `t` is the event's scheduled time (Unix ns), `seq` counts per symbol from 1. Prices walk in whole ticks
    (so they are always on the tick grid) and every quote has bp < ap. Events are evenly spaced at `rate`
    frames/s; from `burst_every_s` on, every `burst_every_s` seconds the rate is `burst_factor` x rate for
    `burst_duration_s` seconds. Everything but the wall-clock anchor of `t` follows from `seed`.
    """

    source = "simulator"

    def __init__(
        self,
        symbols: Sequence[str] | None = None,
        *,
        instruments: Sequence[SimInstrument] | None = None,
        rate: float = 1000.0,
        trade_ratio: float = 0.3,
        burst_every_s: float | None = None,
        burst_factor: float = 10.0,
        burst_duration_s: float = 1.0,
        seed: int | None = None,
    ):
        pool = list(instruments or DEFAULT_INSTRUMENTS)
        if symbols:
            wanted = {s.upper() for s in symbols}
            pool = [i for i in pool if i.symbol in wanted]
            unknown = wanted - {i.symbol for i in pool}
            if unknown:
                raise ConfigError(f"simulator: unknown symbol(s) {sorted(unknown)}")
        if not pool:
            raise ConfigError("simulator: no instruments")
        if rate <= 0 or burst_factor <= 0 or not 0 <= trade_ratio <= 1:
            raise ConfigError("simulator: rate and burst_factor must be > 0, trade_ratio within [0, 1]")
        if burst_every_s is not None and not 0 < burst_duration_s <= burst_every_s:
            raise ConfigError("simulator: need 0 < burst_duration_s <= burst_every_s")
        self.instruments = pool
        self.symbols = [i.symbol for i in pool]
        self.rate = float(rate)
        self.trade_ratio = trade_ratio
        self.burst_every_s = burst_every_s
        self.burst_factor = burst_factor
        self.burst_duration_s = burst_duration_s
        self.seed = seed
        self._rng = random.Random(seed)
        self._weights = [i.weight for i in pool]
        self._mid_ticks = {i.symbol: round(i.price / i.tick) for i in pool}
        self._decimals = {i.symbol: i.decimals for i in pool}
        self._seq = dict.fromkeys(self.symbols, 0)
        self.frames = 0
        self.last_frame_at: int | None = None

    def __repr__(self) -> str:
        return f"<MarketSimulator symbols={self.symbols} rate={self.rate} seed={self.seed}>"

    # ------------------------------------------------------------------------------------------ schedule
    def rate_at(self, elapsed_s: float) -> float:
        """Frames/s at `elapsed_s` seconds into a run (bursts start at burst_every_s, 2 x burst_every_s, ...)."""
        every = self.burst_every_s
        if every and elapsed_s >= every and (elapsed_s % every) < self.burst_duration_s:
            return self.rate * self.burst_factor
        return self.rate

    def _offsets(self) -> Iterator[float]:
        offset = 0.0
        while True:
            yield offset
            offset += 1.0 / self.rate_at(offset)

    # ------------------------------------------------------------------------------------------ events
    def _event(self, t_ns: int) -> bytes:
        rng = self._rng
        ins = rng.choices(self.instruments, weights=self._weights)[0]
        spread = rng.choice(_SPREADS_TICKS)
        mid = self._mid_ticks[ins.symbol] + round(rng.gauss(0.0, ins.vol_ticks))
        mid = max(mid, 2 * max(_SPREADS_TICKS))  # prices stay positive, bid >= 1 tick
        self._mid_ticks[ins.symbol] = mid
        self._seq[ins.symbol] += 1
        bid = mid - spread // 2
        ask = bid + spread  # spread >= 1 tick: bid < ask always

        decimals = self._decimals[ins.symbol]

        def px(ticks: int) -> float:
            return round(ticks * ins.tick, decimals)

        def size() -> int:
            return min(ins.max_size, 1 + int(rng.expovariate(0.2)))

        event: dict[str, object] = {"sym": ins.symbol, "ev": "", "t": t_ns, "seq": self._seq[ins.symbol]}
        if rng.random() < self.trade_ratio:
            event["ev"] = "T"
            event["p"] = px(rng.choice((bid, ask)))
            event["s"] = size()
        else:
            event["ev"] = "Q"
            event.update(bp=px(bid), bs=size(), ap=px(ask), **{"as": size()})
        return json.dumps(event, separators=(",", ":")).encode()

    def frames_at(self, n: int, start_ns: int = 0) -> list[bytes]:
        """The next `n` frames with `t` = start_ns + scheduled offset: fully deterministic for a seed."""
        return [self._event(start_ns + round(off * 1e9)) for off, _ in zip(self._offsets(), range(n), strict=False)]

    async def run(
        self,
        sink: FrameSink,
        stop: asyncio.Event,
        duration_s: float | None = None,
        total: int | None = None,
    ) -> int:
        """Emit frames on schedule until `stop`, `duration_s` of schedule or `total` frames; returns the count.

        A sink slower than the schedule makes the simulator fall behind and catch up at full speed, as a
        real feed does after a stall; `t` stays the scheduled instant.
        """
        start_ns = time.time_ns()
        start = time.monotonic()
        emitted = 0
        for offset in self._offsets():
            if stop.is_set() or (total is not None and emitted >= total):
                break
            if duration_s is not None and offset >= duration_s:
                break
            delay = start + offset - time.monotonic()
            if delay > 0.05:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    break
                except TimeoutError:
                    pass
            elif delay > 0:
                # Oversleep a little and emit every frame due by then: one wake-up per few frames instead of
                # one per frame (each costs ~0.1 ms of CPU here); frames are late by a few ms, never early.
                await asyncio.sleep(delay + _WAKE_SLACK_S)
            elif emitted % 256 == 0:
                await asyncio.sleep(0)
            payload = self._event(start_ns + round(offset * 1e9))
            received_at_ns = time.time_ns()
            await sink(RawFrame(received_at_ns=received_at_ns, payload=payload))
            emitted += 1
            self.frames += 1
            self.last_frame_at = received_at_ns
        return emitted
