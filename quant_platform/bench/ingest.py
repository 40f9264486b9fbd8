"""`quant-platform bench ingest`: the whole tick path on the embedded server (fsync before ack) on a realistic mix
(frames of the real Binance, Massive, Alpaca and Databento captures with rewritten ids and times, one publisher per
source), with the baseline of a raw JetStream publish of the same frames measured in the same run; loss is the
published event ids against those landed, and "queryable" is a DuckDB query over the OLAP views that sees them.

Never report a figure that was not measured here, on this run; goals are printed beside the figures.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GOALS = {"ticks_per_s_end_to_end": 200_000, "p99_receipt_to_durable_ms_at_10k": 5.0,
         "p99_receipt_to_queryable_s": 2.0}
# Issue 15: the figures against their same-run baselines. End-to-end ticks/s at least half the raw JetStream publish
# of the same frames; p99 receipt -> durable ack at 10k ticks/s at most twice the disk's own fsync p99.
RATIO_GOALS = {"throughput_vs_raw_publish": 0.5, "p99_durable_ack_vs_disk_fsync_p99": 2.0}


FSYNC_PROBES = 1000  # appends + fsync before and again after each paced run
FSYNC_BLOCK = 4096


def fsync_samples(directory: Path, count: int = FSYNC_PROBES, block: int = FSYNC_BLOCK) -> list[float]:
    """The disk's own fsync latency (ms) where the NATS store lives: `count` appends of `block` bytes to one file,
    each followed by os.fsync, as JetStream's file store appends a message and syncs it (sync_interval: always)."""
    path = directory / "fsync-probe.bin"
    data = os.urandom(block)
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            t = time.perf_counter_ns()
            os.write(fd, data)
            os.fsync(fd)
            times.append((time.perf_counter_ns() - t) / 1e6)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return times


def fsync_summary(before: list[float], after: list[float]) -> dict:
    times = before + after
    return {"what": f"{len(before)} appends of {FSYNC_BLOCK} bytes to one file on the disk of the NATS store, each "
                    f"followed by os.fsync, just before the paced run and {len(after)} just after it (the host's "
                    "disk is shared: both sides of the run)", "count": len(times),
            "p50": round(_pct(times, 0.5), 3), "p99": round(_pct(times, 0.99), 3), "max": round(max(times), 3),
            "p99_before": round(_pct(before, 0.99), 3), "p99_after": round(_pct(after, 0.99), 3)}


FLOOR_PUBLISHES = 2000  # one at a time, each awaited: JetStream's own receipt -> durable ack, no batching, no load


async def _publish_floor(url: str, count: int = FLOOR_PUBLISHES, block: int = FSYNC_BLOCK) -> list[float]:
    """The shortest receipt -> durable ack there is on this machine: one nats-py client publishing `count` messages
    of `block` bytes to the raw stream one at a time (each with its own Nats-Msg-Id, as connectors send), each
    awaited before the next, nothing else running. Milliseconds per publish."""
    import nats

    from quant_platform.market.contracts import STREAM_RAW, raw_subject

    nc = await nats.connect(url)
    js = nc.jetstream()
    data = os.urandom(block)
    times: list[float] = []
    try:
        for i in range(count):
            t = time.perf_counter_ns()
            await js.publish(raw_subject("floor"), data, stream=STREAM_RAW, timeout=10,
                             headers={"Nats-Msg-Id": f"floor:{i}"})
            times.append((time.perf_counter_ns() - t) / 1e6)
    finally:
        await nc.close()
    return times


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# ------------------------------------------------------------------------------------------- the realistic mix
# Frames of the real captures (sample_data/ticks, SOURCES.md), each source in the channels our connectors subscribe
# by default, cycled in capture order with their ids and times rewritten so that every event is new: Binance spot
# and USD-M (aggTrade ids a/f/l, bookTicker update ids u, times T/E), Massive trades (i, q, t), Alpaca stocks and
# crypto (i, t), Databento live records (ts_event, ts_recv, sequence, in the DBN record headers). Shares of the
# frames per source: an assumption, not a measurement of the firm's traffic (crypto books quote the most).
MIX = (  # (source, capture, channel kinds kept (None: every data record), share of the frames)
    ("binance", "ticks/binance_spot_combined_stream_2021-10-12.txt", ("aggTrade", "bookTicker"), 30),
    ("binance_futures", "ticks/binance_usdm_combined_stream_2021-07-22.txt", ("aggTrade", "bookTicker"), 20),
    ("polygon", "ticks/polygon_stocks_trades.jsonl", ("T",), 15),
    ("alpaca", "ticks/alpaca_v2_sip_session.txt", ("t", "q"), 15),
    ("alpaca_crypto", "ticks/alpaca_v1beta3_crypto_us_session.txt", ("t", "q"), 5),
    ("databento", "ticks/databento/live_glbx-mdp3_esz4.dbn.zst", None, 15),
)
# The docs' crypto trade (the session capture holds a quote only), sent as the one-message array Alpaca frames are.
ALPACA_CRYPTO_EXTRA = ("ticks/alpaca_docs_crypto_trade_AVAX.json", "ticks/alpaca_docs_crypto_quote_BAT.json")
DATABENTO_FRAME_RECORDS = 8  # market records per Databento frame (the connector cuts up to 256 as they come)
_SENTINEL = "QPBENCH"


class _Template:
    """One real frame with the fields to rewrite cut out: render(values) puts new ids and times in their places, the
    rest of the vendor's bytes (as JSON re-serialised compactly) unchanged."""

    def __init__(self, doc, fields: list[tuple[str, tuple, str]]):
        import copy
        import json
        import re

        d = copy.deepcopy(doc)
        tokens = []
        for n, (_, path, typ) in enumerate(fields):
            target = d
            for key in path[:-1]:
                target = target[key]
            token = str(9 * 10**18 + n) if typ == "int" else f"{_SENTINEL}{n}{_SENTINEL}"
            target[path[-1]] = int(token) if typ == "int" else token
            tokens.append(token)
        text = json.dumps(d, separators=(",", ":"))
        rx = re.compile("|".join(re.escape(t) for t in tokens)) if tokens else None
        self.parts = rx.split(text) if rx else [text]
        self.order = [tokens.index(m) for m in rx.findall(text)] if rx else []
        self.names = [name for name, _, _ in fields]
        self.ticks = 0  # what the adapter makes of one rendering (set once the mix is checked)

    def render(self, values: dict) -> bytes:
        vals = [str(values[name]) for name in self.names]
        out = [self.parts[0]]
        for i, k in enumerate(self.order):
            out.append(vals[k])
            out.append(self.parts[i + 1])
        return "".join(out).encode()


@dataclass
class _DbnTemplate:
    meta: bytes
    mapping: bytes
    records: list[bytes]
    ticks: int = 0


def _rfc3339(ns: int) -> str:
    s, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


class Mix:
    """Frame makers per source, from the real captures (see MIX). make(source, i, t_ns) renders the i-th frame of a
    source at time t_ns (its received_at; exchange times follow it), with ids nobody used before in this mix."""

    def __init__(self, master=None):
        from quant_platform.market.instruments import InstrumentMaster

        self.master = master or InstrumentMaster.load()
        self.templates: dict[str, list] = {}
        self.counters: dict[tuple, int] = {}
        for source, rel, kinds, _ in MIX:
            self.templates[source] = (self._databento(rel) if source == "databento"
                                      else self._json(source, rel, kinds))
        self.share = {source: w / sum(w for *_, w in MIX) for source, *_, w in MIX}
        self._check()

    # ---------------------------------------------------------------------------------------------- templates
    def _json(self, source: str, rel: str, kinds) -> list[_Template]:
        import json

        from quant_platform.market.connectors.replay import read_capture
        from quant_platform.platform.sample_data import sample_file

        frames = [json.loads(f) for f in read_capture(source, sample_file(rel))]
        if source == "alpaca_crypto":
            frames += [[json.loads(sample_file(x).read_text())] for x in ALPACA_CRYPTO_EXTRA]
        out = []
        for doc in frames:
            if source.startswith("binance"):
                d = doc.get("data", {})
                kind = d.get("e") or doc.get("stream", "").split("@")[-1]
                if kind not in kinds:
                    continue
                fields = [("a", ("data", "a"), "int"), ("f", ("data", "f"), "int"), ("l", ("data", "l"), "int"),
                          ("ms", ("data", "T"), "int"), ("ms", ("data", "E"), "int")] if kind == "aggTrade" else \
                    [("u", ("data", "u"), "int")] + [("ms", ("data", k), "int") for k in ("T", "E") if k in d]
                t = _Template(doc, fields)
                t.kind, t.symbol = kind, d["s"]
            else:  # Massive / Alpaca: an array of events, each rewritten
                events = [e for e in doc if isinstance(e, dict) and e.get("ev", e.get("T")) in kinds]
                if not events or len(events) != len(doc):
                    continue  # control frames (status, success, subscription) are not traffic
                fields = []
                for n, e in enumerate(doc):
                    if source == "polygon":
                        fields += [(f"i{n}", (n, "i"), "str"), (f"q{n}", (n, "q"), "int"), ("ms", (n, "t"), "int")]
                    else:
                        fields += [(f"ts{n}", (n, "t"), "str")] + ([(f"i{n}", (n, "i"), "int")] if "i" in e else [])
                t = _Template(doc, fields)
                t.kind, t.symbol = "events", None
            out.append(t)
        if not out:
            raise ValueError(f"no {source} frames of kinds {kinds} in {rel}")
        return out

    def _databento(self, rel: str) -> list:
        """The live capture's metadata, the ESZ4 symbol mapping record and its trade and mbp-1 records: frames of
        DATABENTO_FRAME_RECORDS of those, as the connector cuts them (records are rewritten in place: header ts_event,
        ts_recv and sequence, the DBN layout of trades and mbp-1)."""
        from quant_platform.market.adapters.databento import dbn_parts
        from quant_platform.market.connectors.databento import read_dbn
        from quant_platform.platform.sample_data import sample_file

        meta, records = dbn_parts(read_dbn(sample_file(rel)))
        mapping = next(r for r in records if r[1] == 0x16)
        market = [r for r in records if r[1] in (0x00, 0x01)]  # trades, mbp-1
        return [_DbnTemplate(meta, mapping, [market[i % len(market)] for i in range(DATABENTO_FRAME_RECORDS)])]

    # ---------------------------------------------------------------------------------------------- frames
    def _next(self, key: tuple, start: int, n: int = 1) -> int:
        v = self.counters.get(key, start)
        self.counters[key] = v + n
        return v

    def make(self, source: str, i: int, t_ns: int):
        from quant_platform.market.contracts import RawFrame

        templates = self.templates[source]
        t = templates[i % len(templates)]
        if source == "databento":
            return RawFrame(t_ns, self._dbn(t, t_ns))
        values: dict = {"ms": (t_ns - 50_000_000) // 1_000_000}
        if source.startswith("binance"):
            if t.kind == "aggTrade":
                a = self._next((source, t.symbol, "a"), 10**9)
                f = self._next((source, t.symbol, "f"), 10**9, 4)
                values.update(a=a, f=f, l=f + 3)
            else:
                values["u"] = self._next((source, t.symbol, "u"), 10**12)
        else:
            for name in t.names:
                if name.startswith("q"):
                    values[name] = self._next((source, "q"), 10**7)
                elif name.startswith("i"):
                    v = self._next((source, "i"), 10**6)
                    values[name] = str(v) if source == "polygon" else v
                elif name.startswith("ts"):
                    values[name] = _rfc3339(t_ns - 20_000_000 + int(name[2:]))
        return RawFrame(t_ns, t.render(values))

    def _dbn(self, t, t_ns: int) -> bytes:
        import struct

        from quant_platform.market.adapters.databento import encode_frame

        meta, mapping, records = t.meta, t.mapping, t.records
        out = []
        for k, rec in enumerate(records):
            r = bytearray(rec)
            ts = t_ns - 30_000_000 + k
            struct.pack_into("<Q", r, 8, ts)  # ts_event
            struct.pack_into("<Q", r, 32, ts + 20_000)  # ts_recv
            struct.pack_into("<I", r, 44, self._next(("databento", "seq"), 1) & 0xFFFFFFFF)  # sequence
            out.append(bytes(r))
        return encode_frame(meta, [mapping, *out])

    def frames(self, source: str, n: int, t0_ns: int, step_ns: int) -> list:
        return [self.make(source, i, t0_ns + i * step_ns) for i in range(n)]

    # ---------------------------------------------------------------------------------------------- checks
    def _check(self) -> None:
        """Each template, rendered once, normalises without a reject into a known number of ticks."""
        from quant_platform.market.adapters import normalize_batch

        now = time.time_ns()
        for source, templates in self.templates.items():
            for k in range(len(templates)):
                frame = self.make(source, k, now + k)
                table, rejected, _ = normalize_batch(source, [frame], 1, self.master)
                if rejected:
                    raise AssertionError(f"bench mix: a {source} frame is rejected: {rejected[0].reason}")
                templates[k].ticks = table.num_rows
            self.counters = {}  # the check's ids are used again by the run: nothing of them is published

    def ticks_per_frame(self, source: str) -> float:
        templates = self.templates[source]
        return sum(t.ticks for t in templates) / len(templates)

    def mean_ticks_per_frame(self) -> float:
        return sum(self.share[s] * self.ticks_per_frame(s) for s in self.share)

    def split(self, frames_total: int) -> dict[str, int]:
        return {s: max(1, round(frames_total * w)) for s, w in self.share.items()}


def published_ids(master, frames_by_source: dict[str, list], chunk: int = 500) -> dict[str, list[str]]:
    """The event ids the adapters make of the published frames (normalised here, after the measured run, by the
    normalizer's own code path): what must land."""
    from quant_platform.market.adapters import normalize_messages
    from quant_platform.market.contracts import encode_batch

    out: dict[str, list[str]] = {}
    for source, frames in frames_by_source.items():
        ids: list[str] = []
        for k in range(0, len(frames), chunk):
            done = normalize_messages(source, [(k + 1, encode_batch(frames[k:k + chunk]))], master)
            ids += done.table["event_id"].to_pylist()
        out[source] = ids
    return out


def compare_ids(lake: Path, expected: dict[str, list[str]]) -> dict:
    """Published event ids against the landed ones (DuckDB over the landing files): lost, unexpected, duplicates."""
    import duckdb
    import pyarrow as pa

    files = [str(p) for p in (lake / "ticks" / "landing").rglob("*.parquet") if "source=_schema" not in str(p)]
    con = duckdb.connect()
    try:
        con.register("published", pa.table({"event_id": [i for ids in expected.values() for i in ids]}))
        if files:
            con.execute("CREATE TEMP TABLE landed AS SELECT event_id FROM read_parquet(?)", [files])
        else:
            con.execute("CREATE TEMP TABLE landed (event_id VARCHAR)")
        published, distinct_published = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM published").fetchone()
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT event_id) FROM landed").fetchone()
        lost = con.execute("SELECT count(*) FROM (SELECT event_id FROM published EXCEPT SELECT event_id FROM landed)"
                           ).fetchone()[0]
        unexpected = con.execute("SELECT count(*) FROM (SELECT event_id FROM landed EXCEPT SELECT event_id FROM "
                                 "published)").fetchone()[0]
    finally:
        con.close()
    return {"events_published": int(published), "events_published_distinct": int(distinct_published),
            "events_landed": int(distinct), "lost": int(lost), "unexpected": int(unexpected),
            "duplicates": int(rows - distinct), "landed_rows": int(rows),
            "landed_bytes": sum(Path(f).stat().st_size for f in files), "landed_files": len(files)}


def _workers(url: str, lake: Path, normalizers: int) -> list[subprocess.Popen]:
    procs = []
    for role in ["normalizer"] * normalizers + ["lander"]:
        procs.append(subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", role, "--nats",
                                       url, "--lake", str(lake)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
    return procs


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


async def _drained(url: str, timeout_s: float) -> None:
    import nats

    from quant_platform.market.streams import stream_state

    nc = await nats.connect(url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            st = await stream_state(js)
            raw, norm = st["TICKS_RAW"], st["TICKS"]
            n, la = raw["consumers"].get("normalizer", {}), norm["consumers"].get("lander", {})
            if (raw["last_seq"] and n.get("ack_floor_stream_seq") == raw["last_seq"]
                    and la.get("ack_floor_stream_seq") == norm["last_seq"] and not la.get("num_ack_pending")):
                return
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    raise TimeoutError("pipeline did not drain in time")


async def _workers_ready(url: str, normalizers: int, timeout_s: float = 60.0) -> None:
    """Every worker connected and pulling (a waiting pull request per worker on its consumer)."""
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            n, la = await js.consumer_info("TICKS_RAW", "normalizer"), await js.consumer_info("TICKS", "lander")
            if (n.num_waiting or 0) >= normalizers and (la.num_waiting or 0) >= 1:
                return
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
    raise TimeoutError("workers did not start pulling in time")


def _landed_file_latencies(lake: Path) -> list[float]:
    """Seconds from receipt to the landing file's rename (mtime), for every landed tick."""
    import duckdb

    files = [p for p in (lake / "ticks" / "landing").rglob("*.parquet") if "source=_schema" not in str(p)]
    con = duckdb.connect()
    con.execute("CREATE TABLE f (filename VARCHAR, mtime_ns BIGINT)")
    con.executemany("INSERT INTO f VALUES (?, ?)", [(str(p), p.stat().st_mtime_ns) for p in files])
    lat = con.execute(
        "SELECT (f.mtime_ns - epoch_ns(t.received_at)) / 1e9 FROM read_parquet(?, filename = true) t "
        "JOIN f USING (filename)", [[str(p) for p in files]]).fetchall()
    con.close()
    return [x[0] for x in lat]


async def _declare_streams(url: str) -> None:
    import nats

    from quant_platform.market.streams import ensure_streams

    nc = await nats.connect(url)
    try:
        await ensure_streams(nc.jetstream())
    finally:
        await nc.close()


async def _publish_mix(url: str, frames: dict[str, list], tag: str) -> dict:
    """Every source's frames at once, each on its own connection and publisher (as the connectors are), unpaced,
    500 frames per raw message at most; waits until all are stored."""
    from quant_platform.market.publisher import publish_frames

    outs = await asyncio.gather(*(publish_frames(url, source, fr, connection_id=f"{tag}-{source}")
                                  for source, fr in frames.items()))
    return {k: sum(o.get(k, 0) for o in outs) for k in ("batches_sent", "resends", "duplicates", "frames_acked")}


def deployed_publisher() -> dict:
    """How the paced run's connectors batch: the settings a connector of this deployment uses (worker.
    publisher_options: QP_PUBLISH_EAGER, default 0, and QP_PUBLISH_MAX_DELAY_MS, default 5), read the same way.
    Eager sending (a frame alone whenever no batch awaits its ack) paid for one connector per server; six connectors
    sending eagerly at 10k ticks/s made ~1,100 fsync'd batches/s, more than this host's disk keeps up with (the
    ingest path alone measured p50 570 ms, p99 2.3 s, against 8.9 ms / 113 ms with the defaults)."""
    from quant_platform.market.worker import publisher_options

    opts = publisher_options()
    return {"eager_inflight": opts["eager_inflight"], "max_delay_ms": opts["max_delay_s"] * 1000}


QUERY_INTERVAL_S = 0.2
MARKER_EVERY = 25  # every 25th tick-making frame of a source is looked for by the OLAP query


async def _paced(url: str, mix: Mix, rate_frames: float, seconds: float, tag: str, olap: Path | None,
                 publisher: dict) -> dict:
    """Every source at its share of `rate_frames` (frames made at emission, so received_at is the real receipt
    instant), batched as live connectors batch (`publisher`: deployed_publisher()). With `olap`, an analyst's query runs every
    QUERY_INTERVAL_S over the OLAP views (market.ticks_recent) looking for marker frames: receipt -> queryable is
    the time from a marker's receipt to the end of the first query that returned it. Also samples the event loop's
    lag, so a slow ack can be told from a busy publisher."""
    import nats

    from quant_platform.market.publisher import LatencyHistogram, RawPublisher

    markers: dict[tuple[str, int], float | None] = {}  # (source, received_at ns) -> seen at (ns) or None
    published: dict[str, list] = {}
    lags: list[float] = []
    done = asyncio.Event()

    async def loop_probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append(time.perf_counter() - t - 0.002)

    async def source_run(source: str, rate: float) -> tuple[LatencyHistogram, dict]:
        nc = await nats.connect(url, name=f"qp-bench-{source}")
        pub = RawPublisher(nc, source, f"{tag}-{source}", max_delay_s=publisher["max_delay_ms"] / 1000,
                           eager_inflight=publisher["eager_inflight"])
        await pub.start()
        n = max(1, int(rate * seconds))
        frames = published.setdefault(source, [])
        templates = mix.templates[source]
        made = 0
        t0 = time.monotonic()
        try:
            for i in range(n):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
                f = mix.make(source, i, time.time_ns())
                frames.append(f)
                if templates[i % len(templates)].ticks:
                    made += 1
                    if olap is not None and made % MARKER_EVERY == 1:
                        markers[(source, f.received_at_ns)] = None
                await pub.add(f)
            await pub.close(timeout=120)
        finally:
            await nc.close()
        return pub.latency, pub.stats()

    async def query_probe() -> dict:
        import duckdb

        con = duckdb.connect(str(olap), read_only=True)
        durations: list[float] = []
        try:
            while True:
                finished = done.is_set()
                pending = [k for k, v in markers.items() if v is None]
                if pending:
                    t = time.perf_counter()
                    rows = await asyncio.to_thread(lambda p=pending: con.execute(
                        "SELECT DISTINCT source, epoch_ns(received_at) FROM market.ticks_recent "
                        "WHERE epoch_ns(received_at) IN (SELECT unnest(?::BIGINT[]))",
                        [[ns for _, ns in p]]).fetchall())
                    seen = time.time_ns()
                    durations.append(time.perf_counter() - t)
                    for src, ns in rows:
                        if markers.get((src, ns), 0) is None:
                            markers[(src, ns)] = seen
                elif finished:
                    break
                if finished and not pending:
                    break
                if finished and time.monotonic() > drain_deadline:
                    break
                await asyncio.sleep(QUERY_INTERVAL_S)
        finally:
            con.close()
        return {"queries": len(durations), "query_s": {"p50": round(_pct(durations, 0.5), 3),
                                                       "p99": round(_pct(durations, 0.99), 3)}}

    drain_deadline = float("inf")
    probe = asyncio.create_task(loop_probe())
    query = asyncio.create_task(query_probe()) if olap is not None else None
    try:
        results = await asyncio.gather(*(source_run(s, rate_frames * w) for s, w in mix.share.items()))
    finally:
        drain_deadline = time.monotonic() + 60
        done.set()
        await probe
    queries = await query if query is not None else {}
    hist = LatencyHistogram()
    for h, _ in results:
        hist.merge(h)
    seen = [(v - ns) / 1e9 for (_, ns), v in markers.items() if v is not None]
    return {"latency": hist.summary(), "batches": sum(st["batches_sent"] for _, st in results),
            "frames": sum(len(f) for f in published.values()), "published": published,
            "loop_lag_ms": {"p50": round(_pct(lags, 0.5) * 1e3, 3), "p99": round(_pct(lags, 0.99) * 1e3, 3)},
            "markers": len(markers), "markers_seen": len(seen), "queryable": seen, **queries}


def _ms(ns) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def run_ingest_benchmark(ticks: int = 2_000_000, normalizers: int = 1, paced_seconds: float = 10.0, *,
                         keep: bool = False) -> dict:
    """`ticks`: about this many canonical ticks (the frames of the mix make 1-8 each; the exact count is the number
    of event ids the adapters make of what was published)."""
    home = Path(tempfile.mkdtemp(prefix="qp-bench-ingest-"))
    try:
        return _measure(home, ticks, normalizers, paced_seconds, keep)
    finally:
        if not keep:  # the two NATS stores and the lake: about 1 GB a run
            shutil.rmtree(home, ignore_errors=True)


def _measure(home: Path, ticks: int, normalizers: int, paced_seconds: float, keep: bool) -> dict:
    from quant_platform.market.lake_landing import ensure_olap_views, ensure_schema_anchor
    from quant_platform.market.nats_server import EmbeddedNats

    mix = Mix()
    per_frame = mix.mean_ticks_per_frame()
    counts = mix.split(max(1, round(ticks / per_frame)))
    t0 = time.time_ns()
    frames = {s: mix.frames(s, n, t0, 1_000) for s, n in counts.items()}
    n_frames = sum(counts.values())
    # The prebuilt frames are benchmark input, not pipeline state: keep the collector from rescanning them (a
    # connector holds no such backlog; a full collection over millions of objects costs tens of ms each time).
    gc.collect()
    gc.freeze()

    # 1. Baseline: raw JetStream publish of the same frames (same batching, fsync before ack), no workers.
    # Its CPU per tick is the yardstick of the pipeline's (a ratio holds when the machine's speed does not).
    with EmbeddedNats(home / "nats-baseline", sync_always=True).start() as srv:
        srv_cpu0, self0 = _cpu_seconds(srv.pid), time.process_time()
        t = time.perf_counter()
        base = asyncio.run(_publish_mix(srv.url, frames, "baseline"))
        baseline_s = time.perf_counter() - t
        base_cpu_by = {"nats_server": _cpu_seconds(srv.pid) - srv_cpu0, "publisher": time.process_time() - self0}

    # 2. End to end, unpaced: publish -> normalizer(s) -> TICKS -> lander -> Parquet, until drained.
    lake = home / "lake"
    ensure_schema_anchor(lake)
    with EmbeddedNats(home / "nats-e2e", sync_always=True).start() as srv:
        asyncio.run(_declare_streams(srv.url))
        procs = _workers(srv.url, lake, normalizers)
        asyncio.run(_workers_ready(srv.url, normalizers))
        roles = [f"normalizer{i}" for i in range(normalizers)] + ["lander"]
        cpu0 = {r: _cpu_seconds(p.pid) for r, p in zip(roles, procs, strict=True)} | {"nats_server": _cpu_seconds(srv.pid)}
        self0 = time.process_time()
        t = time.perf_counter()
        asyncio.run(_publish_mix(srv.url, frames, "e2e"))
        asyncio.run(_drained(srv.url, timeout_s=900))
        e2e_s = time.perf_counter() - t
        cpu_by = {r: _cpu_seconds(p.pid) - cpu0[r] for r, p in zip(roles, procs, strict=True)}
        cpu_by["nats_server"] = _cpu_seconds(srv.pid) - cpu0["nats_server"]
        cpu_by["publisher"] = time.process_time() - self0
        cpu = sum(cpu_by.values())
        _stop(procs)
        store_bytes = sum(f.stat().st_size for f in (home / "nats-e2e").rglob("*") if f.is_file())
    gc.unfreeze()
    # What must have landed: the event ids the adapters make of the published frames (outside the timed part).
    master = mix.master
    e2e_ids = compare_ids(lake, published_ids(master, frames))
    n_ticks = e2e_ids["events_published"]
    del frames
    gc.collect()

    # 3. Paced at ~10k ticks/s: receipt -> durable ack, and receipt -> queryable by a DuckDB query over the OLAP
    # views while the pipeline runs.
    lake2 = home / "lake-paced"
    ensure_schema_anchor(lake2)
    olap = home / "olap.duckdb"
    ensure_olap_views(olap, lake2, retention_days=3)
    rate_frames = 10_000 / per_frame
    publisher = deployed_publisher()
    # The disk's own fsync latency, measured here on the disk of the NATS store, just before and after each paced run.
    fsync_before = fsync_samples(home)
    with EmbeddedNats(home / "nats-paced", sync_always=True).start() as srv:
        asyncio.run(_declare_streams(srv.url))
        procs = _workers(srv.url, lake2, normalizers)
        asyncio.run(_workers_ready(srv.url, normalizers))
        paced = asyncio.run(_paced(srv.url, mix, rate_frames, paced_seconds, "paced", olap, publisher))
        asyncio.run(_drained(srv.url, timeout_s=300))
        # Read while the lander still runs: when it stops it rolls its small files up, and a rolled file's mtime is
        # the rollup's, not the landing's (measured that way: p50 5.7 s, p99 10.6 s, against 0.47 s to queryable).
        landed_file = _landed_file_latencies(lake2)
        _stop(procs)
    fsync = fsync_summary(fsync_before, fsync_samples(home))
    paced_ids = compare_ids(lake2, published_ids(master, paced.pop("published")))
    queryable = paced.pop("queryable")
    lat = paced["latency"]

    # 4. The same paced publish with no workers running: the ingest path alone (connector -> server -> ack), as
    # where connectors and the server have their own cores. Tells server-side contention from the rest.
    fsync_before = fsync_samples(home)
    with EmbeddedNats(home / "nats-paced-alone", sync_always=True).start() as srv:
        asyncio.run(_declare_streams(srv.url))
        alone = asyncio.run(_paced(srv.url, mix, rate_frames, paced_seconds, "alone", None, publisher))
        # 5. JetStream's own floor on this machine: one publish at a time, awaited (no batching wait, no load).
        floor = asyncio.run(_publish_floor(srv.url))
    fsync_alone = fsync_summary(fsync_before, fsync_samples(home))
    alone.pop("published")
    lat_alone = alone["latency"]
    floor_p99 = round(_pct(floor, 0.99), 3)

    result = {
        "benchmark": "ingest",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "note": "a shared 2-core host whose speed varies ~2x with other work: compare a figure with the "
                            "baseline of its own run"},
        "durability": "sync_interval: always (fsync before ack), single node, file storage",
        "mix": {
            "what": "frames of the real captures (sample_data/ticks) with rewritten ids and times, in the channels "
                    "the connectors subscribe by default",
            "frame_share": {s: round(w, 3) for s, w in mix.share.items()},
            "ticks_per_frame": {s: round(mix.ticks_per_frame(s), 3) for s in mix.share},
            "captures": {s: rel for s, rel, *_ in MIX},
        },
        "frames": n_frames,
        "ticks": n_ticks,
        "frames_per_raw_message": 500,
        "normalizer_processes": normalizers,
        "end_to_end": {
            "seconds": round(e2e_s, 3),
            "ticks_per_s": round(n_ticks / e2e_s),
            "frames_per_s": round(n_frames / e2e_s),
            "lost": e2e_ids["lost"],
            "unexpected": e2e_ids["unexpected"],
            "duplicates": e2e_ids["duplicates"],
            "loss_check": "event ids the adapters make of the published frames vs distinct event ids landed",
            "cpu_seconds_per_million_ticks": round(cpu / n_ticks * 1e6, 2),
            "cpu_seconds_per_million_ticks_by_process": {r: round(c / n_ticks * 1e6, 2) for r, c in cpu_by.items()},
            "landed_parquet_bytes_per_tick": round(e2e_ids["landed_bytes"] / max(e2e_ids["landed_rows"], 1), 2),
            "jetstream_store_bytes_per_tick": round(store_bytes / n_ticks, 2),
            "landed_files": e2e_ids["landed_files"],
        },
        "paced_10k_ticks_per_s": {
            "frames": paced["frames"],
            "ticks": paced_ids["events_published"],
            "seconds": paced_seconds,
            "lost": paced_ids["lost"],
            "unexpected": paced_ids["unexpected"],
            "duplicates": paced_ids["duplicates"],
            "publisher": publisher,
            "publisher_note": "the deployed connector settings (QP_PUBLISH_EAGER, QP_PUBLISH_MAX_DELAY_MS as a "
                              "connector reads them; defaults 0 and 5 ms)",
            "receipt_to_durable_ack_ms": {"p50": _ms(lat.get("p50_ns")), "p99": _ms(lat.get("p99_ns"))},
            "disk_fsync_ms": fsync,
            "p99_durable_ack_vs_disk_fsync_p99": _ratio(_ms(lat.get("p99_ns")), fsync["p99"]),
            "receipt_to_queryable_s": {"p50": round(_pct(queryable, 0.5), 3), "p99": round(_pct(queryable, 0.99), 3),
                                       "what": f"receipt of a marker frame (every {MARKER_EVERY}th tick-making frame "
                                               "of each source) to the end of the first DuckDB query over "
                                               f"market.ticks_recent (every {QUERY_INTERVAL_S} s) that returned it",
                                       "markers": paced["markers"], "markers_seen": paced["markers_seen"],
                                       "queries": paced.get("queries"), "query_seconds": paced.get("query_s")},
            "receipt_to_landed_file_s": {"p50": round(_pct(landed_file, 0.5), 3),
                                         "p99": round(_pct(landed_file, 0.99), 3)},
            "publisher_event_loop_lag_ms": paced["loop_lag_ms"],
            "batches": paced["batches"],
            "ingest_path_alone": {
                "what": "same paced publish, no normalizer or lander running on the machine",
                "receipt_to_durable_ack_ms": {"p50": _ms(lat_alone.get("p50_ns")), "p99": _ms(lat_alone.get("p99_ns"))},
                "disk_fsync_ms": fsync_alone,
                "p99_durable_ack_vs_disk_fsync_p99": _ratio(_ms(lat_alone.get("p99_ns")), fsync_alone["p99"]),
                "publisher_event_loop_lag_ms": alone["loop_lag_ms"],
            },
            "jetstream_publish_ack_floor_ms": {
                "what": f"{len(floor)} publishes of {FSYNC_BLOCK} bytes to the raw stream of the ingest path alone's "
                        "server, one at a time, each awaited (nats-py, fsync before ack): the receipt -> durable ack "
                        "of a frame that waits for no batch, with nothing else running",
                "count": len(floor), "p50": round(_pct(floor, 0.5), 3), "p99": floor_p99,
                "p99_vs_disk_fsync_p99": _ratio(floor_p99, fsync_alone["p99"]),
            },
        },
        "baseline": {
            "what": "raw JetStream publish of the same frames, same batching, fsync before ack, no workers",
            "seconds": round(baseline_s, 3),
            "ticks_per_s": round(n_ticks / baseline_s),
            "cpu_seconds_per_million_ticks": round(sum(base_cpu_by.values()) / n_ticks * 1e6, 2),
            "cpu_seconds_per_million_ticks_by_process": {r: round(c / n_ticks * 1e6, 2) for r, c in base_cpu_by.items()},
            "publisher": base,
        },
        "end_to_end_vs_baseline": {"throughput": round(baseline_s / e2e_s, 3),
                                   "cpu_per_tick": round(cpu / max(sum(base_cpu_by.values()), 1e-9), 2)},
        "goals": GOALS,
        "ratio_goals": RATIO_GOALS,
        "seed_claim_to_beat": "10k ticks/s with sub-10 ms ingestion",
        "qp_home": str(home) if keep else "removed (--keep keeps it)",
    }
    q = result["paced_10k_ticks_per_s"]
    result["met"] = {
        "ticks_per_s_end_to_end": result["end_to_end"]["ticks_per_s"] >= GOALS["ticks_per_s_end_to_end"]
        and result["end_to_end"]["lost"] == 0,
        "p99_receipt_to_durable_ms_at_10k": (_ms(lat.get("p99_ns")) or 1e9) <= GOALS["p99_receipt_to_durable_ms_at_10k"],
        "p99_receipt_to_durable_ms_at_10k_ingest_path_alone":
            (_ms(lat_alone.get("p99_ns")) or 1e9) <= GOALS["p99_receipt_to_durable_ms_at_10k"],
        "p99_receipt_to_queryable_s": q["receipt_to_queryable_s"]["markers_seen"] == q["receipt_to_queryable_s"]["markers"]
        and q["receipt_to_queryable_s"]["p99"] <= GOALS["p99_receipt_to_queryable_s"],
        "throughput_vs_raw_publish": result["end_to_end_vs_baseline"]["throughput"]
        >= RATIO_GOALS["throughput_vs_raw_publish"] and result["end_to_end"]["lost"] == 0,
        "p99_durable_ack_vs_disk_fsync_p99": (q["p99_durable_ack_vs_disk_fsync_p99"] or 1e9)
        <= RATIO_GOALS["p99_durable_ack_vs_disk_fsync_p99"],
        "p99_durable_ack_vs_disk_fsync_p99_ingest_path_alone":
            (q["ingest_path_alone"]["p99_durable_ack_vs_disk_fsync_p99"] or 1e9)
            <= RATIO_GOALS["p99_durable_ack_vs_disk_fsync_p99"],
    }
    return result
