"""Databento DBN on real GLBX.MDP3 bytes (databento-python's test data): the adapter against values decoded from
the files by databento_dbn itself, `ingest replay` through NATS into the lake, and the live connector (the
vendor's Live client) against a small local gateway that speaks Databento's live protocol, as the client's own
tests do with their mock gateway.

Never contact Databento: the gateway here is on 127.0.0.1 and the API key is a made-up one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets

import databento_dbn
import pytest
import zstandard

from quant_platform.market.adapters import normalize_batch
from quant_platform.market.adapters.databento import dbn_parts
from quant_platform.market.contracts import RawFrame
from quant_platform.market.instruments import InstrumentMaster
from quant_platform_tests.conftest import SAMPLE_DATA

DBN = SAMPLE_DATA / "ticks" / "databento"
TRADES = DBN / "glbx-mdp3_esh1_2020-12-28.trades.dbn.zst"
MBP1 = DBN / "glbx-mdp3_esh1_2020-12-28.mbp-1.dbn.zst"
TBBO = DBN / "glbx-mdp3_esh1_2020-12-28.tbbo.dbn.zst"
LIVE = DBN / "live_glbx-mdp3_esz4.dbn.zst"
FAKE_KEY = "db-" + "T" * 24 + "qptst"  # the shape of a key (32 chars, bucket = last 5); not a real one


def _raw(path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()


def _decoded(path) -> tuple[databento_dbn.Metadata, list]:
    dec = databento_dbn.DBNDecoder()
    dec.write(_raw(path))
    out = dec.decode()
    return out[0], out[1:]


def _normalize(payloads, master=None):
    master = master or InstrumentMaster.load()
    return normalize_batch("databento", [RawFrame(1_700_000_000_000_000_000 + i, p) for i, p in enumerate(payloads)],
                           7, master)


def _reason(reject) -> str:
    """The reason of one reject of normalize_batch (a (frame, reason) pair, or a record with .reason)."""
    return getattr(reject, "reason", None) or reject[1]


def _frames(path, **kw):
    """The raw frame payloads of a DBN file, as `ingest replay` reads them (read_capture), or cut smaller."""
    from quant_platform.market.connectors.databento import dbn_file_frames
    from quant_platform.market.connectors.replay import read_capture

    return dbn_file_frames(path, **kw) if kw else read_capture("databento", path)


# ------------------------------------------------------------------------------------------------ adapter
def test_trades_file_becomes_trades_with_the_files_values():
    meta, records = _decoded(TRADES)
    table, rejected, ignored = _normalize(_frames(TRADES))
    assert not rejected and ignored == 0
    rows = table.to_pylist()
    assert len(rows) == len(records) == 4
    symbol = next(iter(meta.mappings))  # ESH1, mapped to the records' instrument_id for the file's day
    assert {int(s["symbol"]) for s in meta.mappings[symbol]} == {r.instrument_id for r in records}
    for r, got in zip(records, rows, strict=True):
        assert got["event"] == "trade" and got["venue_symbol"] == symbol == "ESH1"
        assert got["instrument_id"] == "FUT:ES:2021-03"
        assert got["price"] == r.price / 1e9 == r.pretty_price
        assert got["size"] == r.size
        assert got["ts"].value == r.ts_event
        assert got["vendor_seq"] == r.sequence
        assert got["exchange"] == "GLBX"
    assert table.column("size").to_pylist() and sum(table.column("size").to_pylist()) == sum(r.size for r in records)


def test_mbp1_file_becomes_quotes_with_the_top_of_book():
    _, records = _decoded(MBP1)
    table, rejected, ignored = _normalize(_frames(MBP1))
    assert not rejected and ignored == 0
    rows = table.to_pylist()
    assert [r["event"] for r in rows] == ["quote"] * len(records)
    for r, got in zip(records, rows, strict=True):
        lvl = r.levels[0]
        assert (got["bid"], got["bid_size"], got["ask"], got["ask_size"]) == (
            lvl.pretty_bid_px, lvl.bid_sz, lvl.pretty_ask_px, lvl.ask_sz)
        assert got["ts"].value == r.ts_event and got["vendor_seq"] == r.sequence


def test_tbbo_file_gives_each_trade_once_and_the_book_before_it():
    _, records = _decoded(TBBO)
    table, rejected, _ = _normalize(_frames(TBBO))
    assert not rejected
    rows = table.to_pylist()
    trades = [r for r in rows if r["event"] == "trade"]
    quotes = [r for r in rows if r["event"] == "quote"]
    assert len(trades) == len(quotes) == len(records)
    assert [t["price"] for t in trades] == [r.pretty_price for r in records]
    assert [q["bid"] for q in quotes] == [r.levels[0].pretty_bid_px for r in records]
    # the same trades as in the trades file of the same day: same vendor sequence numbers, prices and sizes
    _, trade_records = _decoded(TRADES)
    assert [(t["vendor_seq"], t["price"], t["size"]) for t in trades] == \
        [(r.sequence, r.pretty_price, r.size) for r in trade_records]
    assert len({r["event_id"] for r in rows}) == len(rows)


def test_frames_carry_the_vendor_bytes_verbatim():
    raw = _raw(TRADES)
    meta, records = dbn_parts(raw)
    frames = _frames(TRADES, max_records=3)
    assert len(frames) == 2
    decoded = [base64.b64decode(f) for f in frames]
    assert all(d.startswith(meta) for d in decoded)
    assert meta + b"".join(d[len(meta):] for d in decoded) == raw  # every byte of the file, in order, once
    # the split is the vendor's: each record's bytes are what databento_dbn decodes (and re-encodes) as it
    _, objs = _decoded(TRADES)
    assert [bytes(o) for o in objs] == records


def test_live_capture_resolves_symbols_from_mapping_records_and_ignores_other_schemas():
    """databento-python's real live-session capture: ESZ4 is named only by SymbolMappingMsg records; MBO,
    MBP-10, OHLCV, statistics and definitions are valid records that are not ticks."""
    _, records = _decoded(LIVE)
    table, rejected, ignored = _normalize(_frames(LIVE))
    assert not rejected
    trades = [r for r in records if isinstance(r, databento_dbn.TradeMsg)]
    mbp1 = [r for r in records if isinstance(r, databento_dbn.MBP1Msg)]
    rows = table.to_pylist()
    assert sum(r["event"] == "trade" for r in rows) == len(trades) > 0
    # in a session with several schemas (metadata schema None) an mbp-1 record is a quote, never a second trade
    assert sum(r["event"] == "quote" for r in rows) == len(mbp1) > 0
    assert ignored == len(records) - len(trades) - len(mbp1)
    assert {r["instrument_id"] for r in rows} == {"FUT:ES:2024-12"}
    assert {r["venue_symbol"] for r in rows} == {"ESZ4"}


def test_bad_frames_are_rejected_with_a_reason():
    raw = _raw(TRADES)
    meta, records = dbn_parts(raw)
    cut = base64.b64encode(raw[:-10])  # a record cut short (built in memory from the real bytes)
    not_b64 = b'{"this": "is json"}'
    _, rejected, _ = _normalize([cut, not_b64])
    reasons = [_reason(r) for r in rejected]
    assert len(reasons) == 2 and all("not a base64 DBN stream" in r for r in reasons)
    # a root the master does not list: the symbol is refused, never guessed
    master = InstrumentMaster.from_dict({"instruments": [{"instrument_id": "X", "asset_class": "x",
                                                          "venues": {"x": ["X"]}}],
                                         "futures": [{"root": "CL", "sources": ["databento"]}]})
    _, rejected, _ = _normalize([base64.b64encode(raw)], master)
    assert [_reason(r) for r in rejected] == ["unknown symbol databento:ESH1"]


# ------------------------------------------------------------------------------------------------ replay
@pytest.fixture
def nats_server(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats

    with EmbeddedNats(tmp_path / "nats").start() as srv:
        yield srv


def test_replay_lands_the_files_trades_and_quotes(nats_server, tmp_path):
    """`ingest replay --source databento FILE.dbn.zst` path: file -> TICKS_RAW -> normalizer -> lander."""
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames
    from quant_platform_tests.market_helpers import landed_table, wait_for

    payloads = _frames(TBBO) + _frames(MBP1)
    _, tbbo = _decoded(TBBO)
    _, mbp1 = _decoded(MBP1)
    lake = tmp_path / "lake"

    async def run():
        stop = asyncio.Event()
        nstats, lstats = NormalizerStats(), LanderStats()
        tasks = [asyncio.create_task(run_normalizer(nats_server.url, stop, stats=nstats)),
                 asyncio.create_task(run_lander(nats_server.url, lake, stop, max_age_s=0.2, stats=lstats))]
        await publish_frames(nats_server.url, "databento",
                             [RawFrame(1_700_000_000_000_000_000 + i, p) for i, p in enumerate(payloads)])
        await wait_for(lambda: lstats.rows >= 2 * len(tbbo) + len(mbp1), timeout_s=30)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    rows = landed_table(lake).to_pylist()
    assert sum(r["event"] == "trade" for r in rows) == len(tbbo)
    assert sum(r["event"] == "quote" for r in rows) == len(tbbo) + len(mbp1)
    assert sum(r["size"] for r in rows if r["event"] == "trade") == sum(r.size for r in tbbo)
    assert {r["source"] for r in rows} == {"databento"}


def test_cli_replay_accepts_databento():
    from quant_platform.cli import build_parser

    args = build_parser().parse_args(["ingest", "replay", "--source", "databento", str(TRADES)])
    assert args.source == "databento"


# ------------------------------------------------------------------------------------------------ live
class LocalGateway:
    """Databento's live (LSG) protocol as the client speaks it, on 127.0.0.1: greeting and CRAM challenge lines,
    the client's `auth=<sha256(cram|key)>-<bucket>|dataset=...` line answered `success=1|session_id=...` (or
    `success=0|error=...`), subscription lines until `start_session`, then the DBN bytes of a real file as the
    stream, after which it hangs up (the client sees the session end)."""

    def __init__(self, key: str, dbn: bytes):
        self.key, self.dbn = key, dbn
        self.sessions = 0
        self.auth_failures = 0
        self.subscriptions: list[dict[str, str]] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    @staticmethod
    def _fields(line: bytes) -> dict[str, str]:
        return dict(tok.split("=", 1) for tok in line.decode().strip().split("|") if "=" in tok)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            cram = secrets.token_hex(16)
            writer.write(b"lsg_version=0.4.2\n" + f"cram={cram}\n".encode())
            auth = self._fields(await reader.readline())
            expected = hashlib.sha256(f"{cram}|{self.key}".encode()).hexdigest() + "-" + self.key[-5:]
            if auth.get("auth") != expected or auth.get("dataset") != "GLBX.MDP3":
                self.auth_failures += 1
                writer.write(b"success=0|error=Authentication failed.\n")
                await writer.drain()
                return
            self.sessions += 1
            writer.write(f"success=1|session_id={self.sessions}\n".encode())
            while True:
                line = await reader.readline()
                if not line:
                    return
                fields = self._fields(line)
                if "start_session" in fields:
                    break
                self.subscriptions.append(fields)
            for i in range(0, len(self.dbn), 100):  # in pieces, as TCP may deliver them
                writer.write(self.dbn[i:i + 100])
                await writer.drain()
            await asyncio.sleep(0.2)
        finally:
            writer.close()


def test_live_connector_streams_a_real_session_through_the_live_client(monkeypatch):
    from quant_platform.market.connectors import build_connector
    from quant_platform.market.connectors.base import Backoff

    raw = _raw(TBBO)
    gateway = LocalGateway(FAKE_KEY, raw)
    monkeypatch.setenv("QP_DATABENTO_API_KEY", FAKE_KEY)
    frames: list[RawFrame] = []

    async def run():
        port = await gateway.start()
        monkeypatch.setenv("QP_DATABENTO_GATEWAY", f"127.0.0.1:{port}")
        conn = build_connector("databento", [], schemas=("tbbo",),
                               backoff=Backoff(initial=0.05, max_delay=0.1))
        stop = asyncio.Event()

        async def sink(frame: RawFrame) -> None:
            frames.append(frame)

        task = asyncio.create_task(conn.run(sink, stop))
        for _ in range(200):  # the gateway hangs up after each session: the connector comes back
            if gateway.sessions >= 2 and conn.records >= 8:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        await gateway.close()
        return conn

    conn = asyncio.run(run())
    assert gateway.sessions >= 2 and conn.reconnects >= 1 and gateway.auth_failures == 0
    # one subscription per schema: the master's futures roots as Databento parent symbols
    sub = gateway.subscriptions[0]
    assert sub["schema"] == "tbbo" and sub["stype_in"] == "parent"
    assert set(sub["symbols"].split(",")) == {"CL.FUT", "BZ.FUT", "NG.FUT", "HO.FUT", "RB.FUT", "ES.FUT"}
    # the records of the first session, verbatim and in order, and the ticks they make
    _, records = dbn_parts(raw)
    payload_records = [rec for f in frames for rec in dbn_parts(base64.b64decode(f.payload))[1]]
    assert payload_records[:len(records)] == records
    table, rejected, _ = _normalize([f.payload for f in frames])
    assert not rejected
    _, tbbo = _decoded(TBBO)
    trades = [r for r in table.to_pylist() if r["event"] == "trade"]
    assert [t["price"] for t in trades[:len(tbbo)]] == [r.pretty_price for r in tbbo]
    assert {t["instrument_id"] for t in trades} == {"FUT:ES:2021-03"}


def test_live_connector_replays_from_its_last_record_after_a_lost_session(monkeypatch):
    """Intraday replay: the session after a lost one subscribes with `start` = the ts_event of the last market
    record received (DBN header field, the record is not decoded), and each session's window is recorded (the
    first as the process's start, the next as a reconnect naming the replay)."""
    from quant_platform.market.connectors import build_connector
    from quant_platform.market.connectors.base import Backoff

    raw = _raw(TBBO)
    gateway = LocalGateway(FAKE_KEY, raw)
    monkeypatch.setenv("QP_DATABENTO_API_KEY", FAKE_KEY)
    windows: list[dict] = []

    async def run():
        port = await gateway.start()
        monkeypatch.setenv("QP_DATABENTO_GATEWAY", f"127.0.0.1:{port}")
        conn = build_connector("databento", ["ESH1"], schemas=("tbbo",), backoff=Backoff(initial=0.05, max_delay=0.1))

        async def control(record: dict) -> None:
            windows.append(record)

        async def sink(frame: RawFrame) -> None:
            pass

        conn.control_sink = control
        conn.replay_limit_ns = 10 * 365 * 86_400 * 10**9  # the sample is from 2020: a gateway that keeps years
        stop = asyncio.Event()
        task = asyncio.create_task(conn.run(sink, stop))
        for _ in range(200):
            if gateway.sessions >= 2 and len(gateway.subscriptions) >= 2:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        await gateway.close()
        return conn

    conn = asyncio.run(run())
    _, tbbo = _decoded(TBBO)
    last_ts_event = max(r.ts_event for r in tbbo)
    first, second = gateway.subscriptions[:2]
    assert not first.get("start")  # the process's first session: live only
    assert int(second["start"]) == last_ts_event and conn.replays >= 1
    assert windows[0]["cause"] == "start" and windows[0]["lost_ns"] is None
    assert windows[1]["cause"] == "reconnect" and windows[1]["replay_from_ns"] == last_ts_event
    assert windows[1]["lost_ns"] <= windows[1]["regained_ns"] and conn.windows >= 2


def test_live_connector_stops_on_a_refused_key(monkeypatch):
    from quant_platform.market.connectors import build_connector
    from quant_platform.market.connectors.base import AuthenticationError

    gateway = LocalGateway(FAKE_KEY, _raw(TRADES))
    monkeypatch.setenv("QP_DATABENTO_API_KEY", "db-" + "W" * 24 + "wrong")

    async def run():
        port = await gateway.start()
        monkeypatch.setenv("QP_DATABENTO_GATEWAY", f"127.0.0.1:{port}")
        conn = build_connector("databento", ["ESH1"])
        try:
            with pytest.raises(AuthenticationError):
                await asyncio.wait_for(conn.run(lambda f: asyncio.sleep(0), asyncio.Event()), 20)
        finally:
            await gateway.close()
        return conn

    conn = asyncio.run(run())
    assert gateway.auth_failures == 1 and gateway.sessions == 0  # asked once, never retried
    assert "QP_DATABENTO_API_KEY was rejected" in conn.last_error


def test_live_connector_needs_the_key(monkeypatch):
    from quant_platform.errors import ConfigError
    from quant_platform.market.connectors import build_connector

    monkeypatch.delenv("QP_DATABENTO_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="QP_DATABENTO_API_KEY"):
        build_connector("databento", [])


def test_every_databento_sample_has_its_origin_recorded():
    sources = (SAMPLE_DATA / "SOURCES.md").read_text(encoding="utf-8")
    for path in DBN.iterdir():
        assert f"| ticks/databento/{path.name} |" in sources, path.name
    assert "Apache License" in (SAMPLE_DATA / "licenses" / "databento-python-LICENSE.txt").read_text()[:200]
