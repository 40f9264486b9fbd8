"""Fan-out: each destination has its own consumer and position; one that is down is retried and receives
everything once it is back, without slowing the others (files, PostgreSQL, webhook, re-publish).
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from quant_platform_tests.market_helpers import sim_frames, wait_for


class _Receiver:
    """A team's webhook: answers 503 until `up` is set, then stores every tick it receives."""

    def __init__(self):
        self.up = threading.Event()
        self.ids: list[str] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not receiver.up.is_set():
                    receiver.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.ids += [json.loads(line)["event_id"] for line in body.splitlines() if line]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ticks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def nats_server(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats

    with EmbeddedNats(tmp_path / "nats").start() as srv:
        yield srv


def test_a_destination_down_for_a_while_receives_everything_when_back(nats_server, tmp_path, fresh_pg_database):
    import nats

    from quant_platform.market.fanout import Destination, FanoutStats, run_destination
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.streams import ensure_streams

    hook = _Receiver()
    dests = [
        Destination("crude_webhook", "webhook", "ticks.norm.>", {"url": hook.url, "timeout_s": 2}),
        Destination("crude_files", "files", "ticks.norm.simulator.FUT_CL", {"path": str(tmp_path / "crude"),
                                                                           "format": "parquet"}),
        Destination("risk_pg", "postgres", "ticks.norm.>", {"url": fresh_pg_database, "table": "risk.ticks"}),
        Destination("quant_republish", "republish", "ticks.norm.>", {"subject": "team.quant.ticks"}),
    ]
    frames = sim_frames(6000)

    async def run():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        await js.add_stream(name="TEAM_QUANT", subjects=["team.quant.>"])
        stop = asyncio.Event()
        stats = {d.name: FanoutStats() for d in dests}
        tasks = [asyncio.create_task(run_normalizer(nats_server.url, stop, stats=NormalizerStats()))]
        tasks += [asyncio.create_task(run_destination(nats_server.url, d, stop, max_backoff_s=1, stats=stats[d.name]))
                  for d in dests]
        await publish_frames(nats_server.url, "simulator", frames)
        # The other destinations finish while the webhook is still down.
        await wait_for(lambda: stats["risk_pg"].delivered_rows >= 6000, timeout_s=60)
        await wait_for(lambda: stats["quant_republish"].delivered_rows >= 6000, timeout_s=60)
        assert stats["crude_webhook"].delivered_rows == 0 and hook.refused >= 1
        hook.up.set()
        await wait_for(lambda: len(set(hook.ids)) >= 6000, timeout_s=60)
        info = await js.stream_info("TEAM_QUANT")
        stop.set()
        await asyncio.gather(*tasks)
        await nc.close()
        return stats, info

    stats, team = asyncio.run(run())
    hook.server.shutdown()
    assert len(set(hook.ids)) == 6000
    assert stats["crude_webhook"].failures >= 1
    crude = ds.dataset(str(tmp_path / "crude"), format="parquet").to_table()
    assert crude.num_rows == 2000 and set(crude["instrument_id"].to_pylist()) == {"FUT:CL"}
    eng = sa.create_engine(fresh_pg_database.replace("postgresql://", "postgresql+psycopg2://"))
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT count(DISTINCT event_id) FROM risk.ticks")).scalar() == 6000
    eng.dispose()
    assert team.state.messages >= 1


def test_fanout_config_is_validated(tmp_path):
    from quant_platform.errors import ConfigError
    from quant_platform.market.fanout import load_destinations

    cfg = tmp_path / "fanout.yaml"
    cfg.write_text("destinations:\n  - {name: ok_one, kind: files, path: /tmp/x, format: csv}\n"
                   "  - {name: Bad-Name, kind: files}\n")
    with pytest.raises(ConfigError, match="name must match"):
        load_destinations(cfg)
    cfg.write_text("destinations:\n  - {name: a, kind: ftp}\n")
    with pytest.raises(ConfigError, match="kind must be one of"):
        load_destinations(cfg)
    cfg.write_text("destinations:\n  - {name: a, kind: files, path: /tmp/x, filter_subject: 'other.>'}\n")
    with pytest.raises(ConfigError, match="filter_subject"):
        load_destinations(cfg)
    cfg.write_text("destinations:\n  - {name: a, kind: webhook, url: 'http://h/x', filter_subject: 'ticks.norm.binance.>'}\n")
    (d,) = load_destinations(cfg)
    assert d.consumer == "fanout_a" and d.filter_subject == "ticks.norm.binance.>"


def test_an_instrument_filter_reads_its_source_and_keeps_its_rows():
    """Normalizers publish a fetched set's instruments together (ticks.norm.<source>.batch): an instrument's
    filter subject becomes its source's on the consumer, and the fan-out keeps that instrument's rows."""
    from quant_platform.market.adapters import normalize_messages
    from quant_platform.market.contracts import encode_batch
    from quant_platform.market.fanout import Destination
    from quant_platform.market.instruments import InstrumentMaster

    ticks = normalize_messages("simulator", [(1, encode_batch(sim_frames(30, symbols=("CL", "NG", "BZ"))))],
                               InstrumentMaster.load()).table
    crude = Destination("crude", "files", "ticks.norm.simulator.FUT_CL")
    assert crude.consumer_filter == "ticks.norm.simulator.>"
    kept = crude.keep_rows(ticks)
    assert set(kept["instrument_id"].to_pylist()) == {"FUT:CL"}
    assert kept.num_rows == ticks["instrument_id"].to_pylist().count("FUT:CL") > 0
    anywhere = Destination("any_ng", "files", "ticks.norm.*.FUT_NG")
    assert anywhere.consumer_filter == "ticks.norm.*.>" and anywhere.keep_rows(ticks).num_rows == 10
    everything = Destination("all", "files", "ticks.norm.simulator.>")
    assert everything.consumer_filter == "ticks.norm.simulator.>" and everything.keep_rows(ticks) is ticks
    sets = Destination("sets", "files", "ticks.norm.simulator.batch")  # the sets' own subject: every row
    assert sets.consumer_filter == "ticks.norm.simulator.batch" and sets.keep_rows(ticks) is ticks


def test_a_fetch_of_large_ticks_messages_asks_for_fewer_of_them():
    """A TICKS message holds a whole fetched set (up to 4 MiB): the lander and the fan-outs size their next
    fetch by the messages they got, so a backlog of large ones is not pulled 512 at a time (2 GiB)."""
    from types import SimpleNamespace

    from quant_platform.market.connection import FETCH_MAX_BYTES, FetchSizer

    sizer = FetchSizer(512)
    assert sizer.count() == 512  # nothing seen yet
    sizer.seen([SimpleNamespace(data=b"x" * 2000)] * 10)
    assert sizer.count() == 512  # small messages: the configured batch
    for _ in range(6):
        sizer.seen([SimpleNamespace(data=b"x" * (4 << 20))] * 2)
    assert 16 <= sizer.count() <= 17 and sizer.count() * sizer.mean_bytes <= FETCH_MAX_BYTES
    sizer.seen([SimpleNamespace(data=b"x" * (200 << 20))])  # one message larger than the budget
    assert sizer.count() == 1
    sizer.seen([])  # an empty fetch changes nothing
    assert sizer.count() == 1
