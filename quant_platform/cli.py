"""`quant-platform`: the command line of the platform (up, warehouse, vendors, backfill, bench).

Never print a traceback for a user error: QuantPlatformError and bad arguments end in one clear line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from quant_platform.errors import ConfigError, QuantPlatformError

_WEEK = timedelta(days=7)


def sql_dir() -> Path:
    """The packaged warehouse DDL (or $QP_SQL_DIR); imported late so `--help` stays fast."""
    from quant_platform.platform.warehouse import sql_dir as packaged_sql_dir

    return packaged_sql_dir()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"quant-platform: error: {message} (see --help)\n")


# ---------------------------------------------------------------------------------------------- warehouse
def init_warehouse(url: str) -> tuple[str, list[str], list[str]]:
    """Bring a warehouse to this release's schema: add the columns older tables lack (before the views that
    may read them are created), then apply the DDL. Returns the backend, the files applied, the columns added."""
    from quant_platform.platform.ddl import all_tables
    from quant_platform.platform.warehouse import Warehouse

    wh = Warehouse(url)
    try:
        added = wh.add_missing_columns(all_tables())
        applied = wh.apply_sql_dir(sql_dir())
    finally:
        wh.dispose()
    return wh.backend, applied, added


def cmd_warehouse_init(args) -> int:
    from quant_platform.platform.settings import load_settings

    backend, applied, added = init_warehouse(args.url or load_settings().warehouse_url)
    print(f"warehouse {backend} ready: applied {', '.join(applied)}"
          + (f"; added columns {', '.join(added)}" if added else ""))
    return 0


def cmd_warehouse_ddl(args) -> int:
    from quant_platform.platform.ddl import stale_files, write_sql_dir

    if args.write:
        for p in write_sql_dir(sql_dir()):
            print(f"wrote {p}")
        return 0
    stale = stale_files(sql_dir())
    if stale:
        print(f"out of date with the TableSpecs: {', '.join(stale)} (run `quant-platform warehouse ddl --write`)")
        return 1
    print("sql/ matches the TableSpecs")
    return 0


# ---------------------------------------------------------------------------------------------- vendors
def cmd_vendors_serve(args) -> int:
    from quant_platform.vendors.simulator import serve

    serve(args.host, args.port, Path(args.data_dir) if args.data_dir else None,
          release_next_wpsr_every_s=args.release_next_wpsr_every)
    return 0


# ---------------------------------------------------------------------------------------------- backfill
def cmd_backfill(args) -> int:
    import dagster as dg

    from quant_platform.definitions import defs

    key = dg.AssetKey.from_user_string(args.asset)
    repo = defs.get_repository_def()
    if key not in repo.asset_graph.get_all_asset_keys():
        raise ConfigError(f"unknown asset {args.asset!r}; try one of "
                          f"{sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys())}")
    assets_def = repo.assets_defs_by_key[key]
    pdef = assets_def.partitions_def
    if pdef is None:
        raise ConfigError(f"{args.asset} is not partitioned; materialize it from the UI or `dagster asset`")
    keys = backfill_keys(args.asset, pdef, args.start, args.end)
    from quant_platform.instance import ensure_embedded_instance
    from quant_platform.platform.settings import load_settings

    settings = load_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    ensure_embedded_instance(Path(os.environ["DAGSTER_HOME"]))
    instance = dg.DagsterInstance.get()
    single = assets_def.backfill_policy and assets_def.backfill_policy.max_partitions_per_run is None
    batches = [keys] if single else [[k] for k in keys]
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={key})
    failed = 0
    for batch in batches:
        tags = {"qp/triggered_by": args.triggered_by, **({"qp/refetch": "true"} if args.refetch else {})}
        if len(batch) > 1:
            tags.update({"dagster/asset_partition_range_start": batch[0],
                         "dagster/asset_partition_range_end": batch[-1]})
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False,
                                        partition_key=batch[0] if len(batch) == 1 else None)
        state = "ok" if result.success else "FAILED"
        failed += 0 if result.success else 1
        mats = result.asset_materializations_for_node("__".join(key.path)) if result.success else []
        meta = {k: getattr(v, "value", v) for k, v in (mats[-1].metadata if mats else {}).items()}
        rows = f", {meta['dagster/row_count']} rows" if "dagster/row_count" in meta else ""
        print(f"{args.asset} {batch[0]}..{batch[-1]}: {state} ({len(batch)} partitions{rows}; run {result.run_id})",
              flush=True)
        for event in ([] if result.success else result.all_events):
            if event.event_type_value == "STEP_FAILURE" and event.event_specific_data.error:
                print(f"{args.asset}: {event.event_specific_data.error.message.strip().splitlines()[-1][:400]}",
                      flush=True)
        if meta.get("partitions_vendor_missing"):
            print(f"{args.asset}: {meta['partitions_vendor_missing']} of {len(batch)} partitions vendor_missing (never published "
                  f"by the vendor; recorded, left empty, not retried): {meta.get('vendor_missing_partitions', '')}",
                  flush=True)
    return 1 if failed else 0


def backfill_keys(asset: str, pdef, start: str | None, end: str | None) -> list[str]:
    """The partition keys START..END (default: the first partition, the newest released one). For a report on a
    release calendar, keys whose release is still ahead are left out, with a line that says so."""
    import dagster as dg

    from quant_platform.macro.definitions import MACRO_LANE

    all_keys = pdef.get_partition_keys()
    if not all_keys:
        raise ConfigError(f"{asset} has no partitions")
    report = next((r for r in MACRO_LANE.reports if r.asset_key.to_user_string() == asset), None)
    last = all_keys[-1]
    if report is not None and report.on_calendar:
        from datetime import UTC, datetime

        newest = report.calendar.latest_released(datetime.now(UTC))
        released = newest.isoformat()
        if (end or last) > released:
            upcoming = report.calendar.release_at(newest + _WEEK)
            print(f"{asset}: partitions after {released} are not released yet (next release "
                  f"{upcoming:%Y-%m-%d %H:%M %Z}); left out", flush=True)
        last = min(released, end or released)
    else:
        last = end or last
    first = start or all_keys[0]
    for value in (first, last):
        if not pdef.has_partition_key(value):
            raise ConfigError(f"{value!r} is not a partition of {asset} (first {all_keys[0]}, last {all_keys[-1]})")
    keys = pdef.get_partition_keys_in_range(dg.PartitionKeyRange(first, last)) \
        if hasattr(pdef, "get_partition_keys_in_range") else [first]
    if not keys:
        raise ConfigError(f"no partition of {asset} between {first} and {last}")
    return keys


# ---------------------------------------------------------------------------------------------- up
def cmd_up(args) -> int:
    from quant_platform.instance import prepare_embedded_instance
    from quant_platform.platform.redaction import redact
    from quant_platform.platform.settings import load_settings

    settings = load_settings()
    env = dict(os.environ)
    env["QP_HOME"] = str(settings.home)
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    prepare_embedded_instance(settings.dagster_home)  # before any Dagster process: see its docstring
    children: list[subprocess.Popen] = []
    one_shot: list[subprocess.Popen] = []
    simulator: subprocess.Popen | None = None

    def _terminate(signum, _frame):  # SIGTERM/SIGHUP stop everything like Ctrl-C does
        raise KeyboardInterrupt

    def _ignore(signum, _frame):
        pass

    # The handlers are this command's only: restored when it returns (a caller in the same process, a test say,
    # must not keep them, and a SIG_IGN left behind would be inherited by every process it starts later).
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGTERM, _terminate)
    if previous[signal.SIGHUP] != signal.SIG_IGN:  # under nohup, a hangup still does not stop it
        signal.signal(signal.SIGHUP, _terminate)
    if previous[signal.SIGINT] == signal.SIG_IGN:
        # Started with Ctrl-C ignored (a background job of a script, say): `up` ignores it too, through a handler
        # rather than SIG_IGN, because an ignored signal stays ignored in the processes it starts and a handled
        # one is reset to the default. `dagster dev` and the Dagster daemon handle SIGTERM with SIGINT's handler:
        # inheriting SIGINT ignored, they ignored SIGTERM as well, so stopping `up` waited out its 30 s for them
        # and then swept their process groups (measured: 36 s, Dagster never shut its services down).
        signal.signal(signal.SIGINT, _ignore)
    try:
        if not args.no_simulator and not os.environ.get("QP_EIA_BASE_URL"):
            from quant_platform.vendors.simulator import build_catalog, resolve_data_dir

            build_catalog(resolve_data_dir())  # a missing or wrong sample folder is one line here, not a wait
            sim_port = args.simulator_port
            cmd = [sys.executable, "-m", "quant_platform.cli", "vendors", "serve", "--port", str(sim_port)]
            if args.release_every:
                cmd += ["--release-next-wpsr-every", str(args.release_every)]
            simulator = subprocess.Popen(cmd, env=env, start_new_session=True)
            children.append(simulator)
            base = f"http://127.0.0.1:{sim_port}"
            env.update(QP_EIA_BASE_URL=base, QP_CFTC_BASE_URL=base)
            env.setdefault("QP_EIA_SERIES", "WCESTUS1")
            os.environ.update({k: env[k] for k in ("QP_EIA_BASE_URL", "QP_CFTC_BASE_URL", "QP_EIA_SERIES")})
            _wait_http(base + "/_sim/state", 20, simulator, "the vendor simulator")
        if not any(os.environ.get(v) for v in ("QP_CRM_URL", "QP_HR_URL", "QP_ERP_URL")) and not (
                settings.home / "sources" / "hr.db").exists():
            from quant_platform.internal.sources import seed_sources

            counts = seed_sources()
            print("seeded demo operational databases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        init_warehouse(env.get("QP_WAREHOUSE_URL") or settings.warehouse_url)
        one_shot: list[subprocess.Popen] = []
        from quant_platform import first_start

        args.history_load = first_start.start(env, settings.home, args.headless)  # report history, on first start
        if args.history_load is not None:
            one_shot.append(args.history_load)
            print(f"loading report history in the background (first start; log {settings.home / first_start.LOG})",
                  flush=True)
        if not args.no_market:
            from quant_platform.demo import start_ingest, start_replays

            if env.get("QP_NATS_URL"):  # an existing server must answer now, not after a silent retry loop
                import asyncio

                from quant_platform.market.observe import probe_nats

                asyncio.run(probe_nats(env["QP_NATS_URL"]))
            children.append(start_ingest(env, settings.home))
            one_shot += start_replays(env)
        if args.headless:
            return _run_headless(args, env, settings, children, one_shot)
        ui = f"http://{args.host}:{args.port}"
        children.append(subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", "quant_platform.definitions", "-h", args.host,
             "-p", str(args.port)], env=env, start_new_session=True))
        print(
            f"quant-platform is starting.\n"
            f"  Dagster UI:    {ui}\n"
            f"  Vendors:       {redact(env.get('QP_EIA_BASE_URL', 'real EIA/CFTC hosts'))}\n"
            f"  Warehouse:     {redact(env.get('QP_WAREHOUSE_URL') or settings.warehouse_url)}\n"
            f"  Ticks:         NATS {redact(_running_nats_url()) if not args.no_market else 'off'}"
            f"; OLAP views in {settings.home / 'olap.duckdb'} (market.ticks_recent, market.bars_1m_recent)\n"
            f"  State:         {settings.home}\n"
            "What to look at: Catalog (groups macro, marts, internal, market) - the release sensors load each new\n"
            "report by themselves (Runs); market/tick_stream's Observations show the stream's lag and rates; the\n"
            "real captures' days (2021-10-12, 2022-05-04, ...) are compacted into market/ticks_daily with their\n"
            "checks; Automation lists the sensors. Ctrl-C stops everything.",
            flush=True,
        )
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        return next((c.returncode for c in children if c.returncode), 0)
    except KeyboardInterrupt:
        return 0
    finally:
        try:
            # The vendor simulator last: Dagster's sensors and runs and the history load still call it while
            # they stop (stopped with the rest, it filled the log with failed vendor calls at every Ctrl-C).
            _stop_all([c for c in children + one_shot if c is not simulator], then=[simulator] if simulator else [])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _run_headless(args, env: dict, settings, children: list, one_shot: list) -> int:
    """The same platform without the UI: the Dagster daemon runs what the sensors request; stop when every
    lane has data and nothing is in flight (or after --duration), then print the summary."""
    import dagster as dg

    from quant_platform.demo import done, print_summary, progress, summary

    children.append(subprocess.Popen(
        # `python -m dagster._daemon` is the dagster-daemon script's module: this interpreter, whatever is on PATH.
        [sys.executable, "-m", "dagster._daemon", "run", "-m", "quant_platform.definitions"],
        env=env, start_new_session=True))
    print(f"quant-platform headless: running for up to {args.duration:.0f} s (state in {settings.home})", flush=True)
    deadline = time.monotonic() + args.duration
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        while time.monotonic() < deadline:
            if not all(c.poll() is None for c in children):
                print("a platform process exited early", file=sys.stderr, flush=True)
                break
            time.sleep(5)
            history = getattr(args, "history_load", None)  # the first-start history load, when it runs
            if done(progress(instance)) and (history is None or history.poll() is not None):
                time.sleep(2)
                break
        report = summary(instance, env.get("QP_WAREHOUSE_URL") or settings.warehouse_url,
                         env.get("QP_LAKE_URL") or settings.lake_url, settings.home)
    print_summary(report)
    return 0 if report["ok"] else 1


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    """Wait until `url` answers; a child `proc` that exits meanwhile is reported at once, in one line."""
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise QuantPlatformError(f"{what or 'a child process'} exited with code {proc.returncode} before "
                                     f"{url} answered (its own message is above)")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise QuantPlatformError(f"{url} did not answer within {timeout_s:.0f}s")


def _stop_all(children: list[subprocess.Popen], then: list[subprocess.Popen] | None = None) -> None:
    """SIGTERM each child and let it stop its own processes in order (the ingest supervisor stops its workers,
    which finish their batch, before its NATS server), then each of `then` once the others are gone (or 30 s
    have passed); then sweep every process group (SIGTERM, then SIGKILL) so nothing outlives `up`, whatever a
    child did."""
    # Once stopping, a second Ctrl-C or SIGTERM must not abort the cleanup halfway (a KeyboardInterrupt
    # inside the waits below would skip the SIGKILL fallback). The caller restores its handlers afterwards.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    deadline = time.monotonic() + 30
    then = then or []
    for wave in (children, then):
        for c in wave:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in wave:
            try:
                c.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    children = [*children, *then]
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        alive = [c for c in children if _group_alive(c.pid)]
        for c in alive:
            try:
                os.killpg(c.pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + grace
        while grace and time.monotonic() < end and any(_group_alive(c.pid) for c in alive):
            time.sleep(0.2)
    for c in children:
        if c.poll() is None:
            c.wait()


def _group_alive(pgid: int) -> bool:
    """Whether any process (not a zombie) is left in process group `pgid`."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# ---------------------------------------------------------------------------------------------- sources
def cmd_sources_seed(args) -> int:
    from quant_platform.internal.sources import seed_sources

    counts = seed_sources(clients=args.clients, employees=args.employees, suppliers=args.suppliers, seed=args.seed)
    print("seeded operational databases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_sources_churn(args) -> int:
    from quant_platform.internal.sources import churn_sources

    changed = churn_sources(updates=args.updates, deletes=args.deletes, inserts=args.inserts, seed=args.seed)
    for what, per_table in changed.items():
        print(f"{what}: " + ", ".join(f"{t} {len(ids)}" for t, ids in per_table.items()))
    return 0


# ---------------------------------------------------------------------------------------------- ingest
def _nats_url_file() -> Path:
    from quant_platform.market.observe import nats_url_file
    from quant_platform.platform.settings import load_settings

    return nats_url_file(load_settings().home)


def _running_nats_url() -> str:
    from quant_platform.market.observe import running_nats_url
    from quant_platform.platform.settings import load_settings

    url = running_nats_url(load_settings().home)
    if not url:
        raise ConfigError("no NATS server: start `quant-platform ingest run` (embedded NATS) or set QP_NATS_URL")
    return url


def cmd_ingest_run(args) -> int:
    import asyncio
    import logging

    from quant_platform.market.fanout import load_destinations
    from quant_platform.market.lake_landing import ensure_olap_views
    from quant_platform.market.nats_server import nats_url_or_embedded
    from quant_platform.market.supervisor import ScalePolicy, Supervisor
    from quant_platform.platform.redaction import redact
    from quant_platform.platform.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from quant_platform.market.tick_store import is_object_store

    settings = load_settings()
    object_store = is_object_store(settings.lake_url)
    lake_root = settings.lake_url if object_store else Path(settings.lake_url)
    url, embedded = nats_url_or_embedded(settings.home)
    if embedded:
        _nats_url_file().write_text(url)
    if object_store:  # DuckDB reads the Iceberg tables' current files per connection (TickStore.register_olap)
        import duckdb

        from quant_platform.market.tick_store import TickStore

        views = TickStore(settings.lake_url).register_olap(duckdb.connect())
    else:
        views = ensure_olap_views(settings.home / "olap.duckdb", lake_root, args.retention_days)
    connectors = [f"connector:{s}" for s in args.sources.split(",") if s] + (["simulator"] if args.simulator else [])
    sup = Supervisor(
        nats_url=url, lake_root=lake_root, connectors=connectors,
        fanouts=[d.name for d in load_destinations()],
        normalizer_policy=ScalePolicy("normalizer", args.min_workers, args.max_workers, args.lag_per_worker),
        metrics_base_port=args.metrics_port,
    )
    print(f"ingest running: NATS {redact(url)}{' (embedded)' if embedded else ''}; lake {lake_root}; OLAP "
          f"{settings.home / 'olap.duckdb'} ({', '.join(views)}); Ctrl-C stops.", flush=True)
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        if args.duration:
            loop.call_later(args.duration, stop.set)
        await sup.run(stop)

    try:
        asyncio.run(main())
    finally:
        if embedded:
            embedded.stop()
            _nats_url_file().unlink(missing_ok=True)
    return 0


ROLE_URL_ENV = {"normalizer": "QP_NATS_URL_NORMALIZER", "lander": "QP_NATS_URL_LANDER"}


def cmd_ingest_scale(args) -> int:
    """The normalizers and landers of an existing NATS deployment, scaled on their consumers' lag by the same
    supervisor `ingest run` uses: compose's `stream-workers` service (Kubernetes uses KEDA instead)."""
    import asyncio
    import logging

    from quant_platform.market.supervisor import ScalePolicy, Supervisor
    from quant_platform.market.tick_store import is_object_store
    from quant_platform.platform.redaction import redact
    from quant_platform.platform.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    url = os.environ.get("QP_NATS_URL", "").strip()
    if not url:
        raise ConfigError("ingest scale needs QP_NATS_URL (a user that may read stream and consumer info)")
    role_urls = {role: os.environ[var].strip() for role, var in ROLE_URL_ENV.items() if os.environ.get(var, "").strip()}
    for role, value in [("", url), *role_urls.items()]:
        if not value.startswith(("nats://", "tls://")):
            raise ConfigError(f"{ROLE_URL_ENV.get(role, 'QP_NATS_URL')} must be a nats:// or tls:// URL")
    for name, lo, hi in (("workers", args.min_workers, args.max_workers),
                         ("landers", args.min_landers, args.max_landers)):
        if not 1 <= lo <= hi:
            raise ConfigError(f"--min-{name} {lo} / --max-{name} {hi}: need 1 <= min <= max")
    lake = load_settings().lake_url
    sup = Supervisor(
        nats_url=url, lake_root=lake if is_object_store(lake) else Path(lake), role_urls=role_urls, declare=False,
        normalizer_policy=ScalePolicy("normalizer", args.min_workers, args.max_workers, args.lag_per_worker),
        lander_policy=ScalePolicy("lander", args.min_landers, args.max_landers, args.lander_lag_per_worker),
        metrics_base_port=args.metrics_port)
    print(f"ingest scale: NATS {redact(url)}; normalizers {args.min_workers}-{args.max_workers} (one per "
          f"{args.lag_per_worker} pending), landers {args.min_landers}-{args.max_landers} (one per "
          f"{args.lander_lag_per_worker}); lake {lake}; workers' users: "
          f"{', '.join(f'{r}={redact(u)}' for r, u in role_urls.items()) or 'QP_NATS_URL'}", flush=True)
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.duration:
            loop.call_later(args.duration, stop.set)
        await sup.run(stop)

    asyncio.run(main())
    return 0


def cmd_ingest_replay(args) -> int:
    import asyncio

    from quant_platform.market.connectors.replay import read_capture
    from quant_platform.market.publisher import publish_frames

    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(f"capture file {path} not found")
    import time

    from quant_platform.market.contracts import RawFrame

    payloads = read_capture(args.source, path)
    url = _running_nats_url()
    from quant_platform.market.observe import probe_nats

    asyncio.run(probe_nats(url))  # the publisher reconnects forever: fail fast here when nothing is there

    async def as_live():  # received_at is the instant each frame is emitted, as if it came off the wire
        for p in payloads:
            yield RawFrame(time.time_ns(), p)

    result = asyncio.run(publish_frames(url, args.source, as_live(), rate=args.rate))
    print(json.dumps({"source": args.source, "file": str(path), "frames": len(payloads), **result}, default=str))
    return 0


def cmd_ingest_redrive(args) -> int:
    import asyncio

    from quant_platform.market.observe import probe_nats
    from quant_platform.market.redrive import redrive

    if args.since_seq is not None and args.since_seq < 1:
        raise ConfigError("--since-seq must be a TICKS_DLQ sequence >= 1")
    url = _running_nats_url()
    asyncio.run(probe_nats(url))
    result = asyncio.run(redrive(url, source=args.source, since_seq=args.since_seq, dry_run=args.dry_run))
    print(json.dumps(result, default=str))
    return 0


def cmd_ingest_status(args) -> int:
    import asyncio

    from quant_platform.market.observe import probe_nats
    from quant_platform.market.status import print_status

    url = _running_nats_url()
    asyncio.run(probe_nats(url))
    asyncio.run(print_status(url, watch=args.watch, interval_s=args.interval))
    return 0


# ---------------------------------------------------------------------------------------------- catalog
def cmd_catalog_export(args) -> int:
    from quant_platform.governance.dictionary import dictionary_problems, export_dictionary

    paths = export_dictionary(Path(args.out), formats=args.format)
    for p in paths:
        print(f"wrote {p}")
    if args.strict:
        from quant_platform.governance.dictionary import build_dictionary

        problems = dictionary_problems(build_dictionary())
        if problems:
            print("documentation gaps:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
    return 0


# ---------------------------------------------------------------------------------------------- bench
def cmd_bench_release(args) -> int:
    from quant_platform.bench.release import run_release_benchmark

    print(json.dumps(run_release_benchmark(sensor_interval_s=args.sensor_interval, timeout_s=args.timeout),
                     indent=2))
    return 0


def cmd_bench_backfill(args) -> int:
    from quant_platform.bench.backfill import run_backfill_benchmark

    print(json.dumps(run_backfill_benchmark(years=args.years, weeks=args.weeks, workdir=args.workdir, keep=args.keep),
                     indent=2))
    return 0


def cmd_bench_ingest(args) -> int:
    from quant_platform.bench.ingest import run_ingest_benchmark

    print(json.dumps(run_ingest_benchmark(ticks=args.ticks, normalizers=args.normalizers,
                                          paced_seconds=args.paced_seconds, keep=args.keep), indent=2))
    return 0


def cmd_bench_compaction(args) -> int:
    from quant_platform.bench.compaction import run_compaction_benchmark

    print(json.dumps(run_compaction_benchmark(ticks=args.ticks, workdir=args.workdir, keep=args.keep,
                                              tick_rate=args.tick_rate, rollup=not args.no_rollup), indent=2))
    return 0


def cmd_bench_scd2(args) -> int:
    from quant_platform.bench.scd2 import run_scd2_benchmark

    print(json.dumps(run_scd2_benchmark(rows=args.rows, url=args.url, workdir=args.workdir, keep=args.keep), indent=2))
    return 0


def cmd_bench_changepoints(args) -> int:
    from quant_platform.bench.changepoints import run_changepoint_benchmark

    result = run_changepoint_benchmark()
    if not args.per_series:
        result.pop("per_series")
    print(json.dumps(result, indent=2))
    return 0


def cmd_bench_reports(args) -> int:
    from quant_platform.bench.reports import run_reports_benchmark

    print(json.dumps(run_reports_benchmark(series=args.series, steps=args.steps, instruments=args.instruments,
                                           metrics=args.metrics, days=args.days, workdir=args.workdir,
                                           keep=args.keep), indent=2))
    return 0


# ---------------------------------------------------------------------------------------------- reports
def cmd_reports_serve(args) -> int:
    from quant_platform.reports.api import serve

    serve(args.host, args.port, args.url)
    return 0


def cmd_reports_build(args) -> int:
    from datetime import date

    from quant_platform.market.tick_store import compute_root
    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.warehouse import Warehouse
    from quant_platform.reports.findings import run_family
    from quant_platform.reports.report import build_report
    from quant_platform.reports.tables import FAMILIES

    try:
        date.fromisoformat(args.day)
    except ValueError as exc:
        raise ConfigError(f"the report day must be YYYY-MM-DD, got {args.day!r}") from exc
    settings = load_settings()
    wh = Warehouse(args.url or settings.warehouse_url)
    try:
        if args.run_detectors:
            for family in FAMILIES:
                run = run_family(compute_root(settings.lake_url, settings.home), family, wh)
                print(f"{family}: {run.observations} new observations, {len(run.findings)} findings")
        built = build_report(compute_root(settings.lake_url, settings.home), wh, args.day)
    finally:
        wh.dispose()
    print(f"report {built.day}: {built.findings_shown} findings shown of {built.findings_in_window}; {built.html_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="quant-platform", description="Data platform of the trading firm (Dagster asset graph).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="run the platform on embedded defaults with the Dagster UI",
                        description="Start the vendor simulator (unless vendor URLs are set), initialise the "
                        "warehouse, start the tick lane (embedded NATS, ingest supervisor with the market simulator, "
                        "replays of the real captures) and run `dagster dev` (webserver + daemon), or with "
                        "--headless only the daemon and a summary at the end. Ctrl-C stops everything.")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=3000)
    up.add_argument("--simulator-port", type=int, default=8765)
    up.add_argument("--no-simulator", action="store_true", help="talk to the real vendors")
    up.add_argument("--release-every", type=float, default=None, metavar="SECONDS",
                    help="have the simulator release a new (derived) WPSR week every SECONDS")
    up.add_argument("--no-market", action="store_true",
                    help="without the tick lane (embedded NATS, ingest supervisor, market simulator, replays)")
    up.add_argument("--headless", action="store_true",
                    help="no UI: the daemon runs what the sensors request; print a summary and exit")
    up.add_argument("--duration", type=float, default=600, metavar="SECONDS",
                    help="headless: stop after SECONDS at the latest (default 600; earlier once every lane has data)")
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="same as `up`", description="Alias of `up`.")
    for a in up._actions[1:]:
        demo._add_action(a)
    demo.set_defaults(func=cmd_up)

    wh = sub.add_parser("warehouse", help="warehouse administration",
                        description="Create and inspect the warehouse schemas and tables.")
    whs = wh.add_subparsers(dest="warehouse_command", required=True, parser_class=_Parser)
    init = whs.add_parser("init", help="apply sql/ idempotently", description="Apply sql/*.sql then "
                          "sql/<backend>/*.sql to QP_WAREHOUSE_URL (or --url). Safe to run again.")
    init.add_argument("--url", help="warehouse URL (default: QP_WAREHOUSE_URL)")
    init.set_defaults(func=cmd_warehouse_init)
    ddl = whs.add_parser("ddl", help="check or regenerate the table DDL from the TableSpecs",
                         description="Without --write, exit 1 if sql/ differs from the TableSpecs.")
    ddl.add_argument("--write", action="store_true")
    ddl.set_defaults(func=cmd_warehouse_ddl)

    ven = sub.add_parser("vendors", help="vendor simulator", description="Local stand-ins for EIA and CFTC.")
    vens = ven.add_subparsers(dest="vendors_command", required=True, parser_class=_Parser)
    serve = vens.add_parser("serve", help="serve the real vendor files under the vendors' URL paths",
                            description="Serve the packaged sample data (or --data-dir, or $QP_SAMPLE_DATA) under EIA and CFTC URL paths, "
                            "with release and fault-injection endpoints under /_sim/.")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--data-dir", default=None)
    serve.add_argument("--release-next-wpsr-every", type=float, default=None, metavar="SECONDS")
    serve.set_defaults(func=cmd_vendors_serve)

    bf = sub.add_parser("backfill", help="materialize a partition range of an asset",
                        description="Materialize partitions START..END of ASSET (e.g. macro/cftc_cot_legacy "
                        "2025-01-07 2025-03-18; default: every released partition) on the instance in DAGSTER_HOME; "
                        "single-run backfill policies load the range in one run, reading each history file once. "
                        "Partitions the vendor never published are reported (vendor_missing) and left empty.")
    bf.add_argument("asset")
    bf.add_argument("start", nargs="?", default=None, help="first partition (default: the asset's first)")
    bf.add_argument("end", nargs="?", default=None,
                    help="last partition (default: the newest released; later ones are left out)")
    bf.add_argument("--refetch", action="store_true",
                    help="download the vendor's files again instead of reusing the archived ones")
    bf.add_argument("--triggered-by", default="cli-backfill", help=argparse.SUPPRESS)
    bf.set_defaults(func=cmd_backfill)

    src = sub.add_parser("sources", help="operational databases (CRM, HR, ERP) for demos and tests",
                         description="Seed or change the operational databases at QP_CRM_URL, QP_HR_URL, QP_ERP_URL "
                         "(SQLite files under QP_HOME/sources when unset).")
    srcs = src.add_subparsers(dest="sources_command", required=True, parser_class=_Parser)
    seed = srcs.add_parser("seed", help="(re)create and fill the operational tables",
                           description="Drop, create and fill clients, employees and suppliers deterministically.")
    seed.add_argument("--clients", type=int, default=3000)
    seed.add_argument("--employees", type=int, default=800)
    seed.add_argument("--suppliers", type=int, default=1200)
    seed.add_argument("--seed", type=int, default=7)
    seed.set_defaults(func=cmd_sources_seed)
    churn = srcs.add_parser("churn", help="simulate time passing: updates, deletes, inserts",
                            description="Update, delete and insert random rows now, keeping references valid.")
    churn.add_argument("--updates", type=int, default=50)
    churn.add_argument("--deletes", type=int, default=5)
    churn.add_argument("--inserts", type=int, default=10)
    churn.add_argument("--seed", type=int, default=11)
    churn.set_defaults(func=cmd_sources_churn)

    ing = sub.add_parser("ingest", help="the real-time tick pipeline", description="Tick ingestion on NATS "
                         "JetStream: connectors, normalizers, lake lander, fan-out.")
    ings = ing.add_subparsers(dest="ingest_command", required=True, parser_class=_Parser)
    run = ings.add_parser("run", help="run the pipeline (embedded NATS unless QP_NATS_URL), autoscaled",
                          description="Start NATS (embedded unless QP_NATS_URL), the streams, connectors, "
                          "normalizers (scaled on lag), the lander and fan-out destinations. Ctrl-C stops.")
    run.add_argument("--sources", default="", help="comma-separated live connectors, e.g. binance,polygon")
    run.add_argument("--simulator", action="store_true", help="also run the market simulator")
    run.add_argument("--min-workers", type=int, default=1)
    run.add_argument("--max-workers", type=int, default=4)
    run.add_argument("--lag-per-worker", type=int, default=20_000)
    run.add_argument("--retention-days", type=int, default=int(os.environ.get("QP_OLAP_RETENTION_DAYS", "3")))
    run.add_argument("--metrics-port", type=int, default=0, help="base port for /metrics (0: off)")
    run.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    run.set_defaults(func=cmd_ingest_run)
    sc = ings.add_parser("scale", help="normalizers and landers on an existing NATS, scaled on lag",
                         description="Run the normalizer and lander pools of an existing NATS deployment under the "
                         "lag autoscaler of `ingest run` (no connectors, no embedded server, no stream declaration). "
                         "QP_NATS_URL: the autoscaler's own user (stream and consumer info); QP_NATS_URL_NORMALIZER "
                         "and QP_NATS_URL_LANDER: the users the workers of each role connect as (default "
                         "QP_NATS_URL). Worker /metrics on the ports after --metrics-port. SIGTERM stops.")
    sc.add_argument("--min-workers", type=int, default=1, help="normalizers at least (default 1)")
    sc.add_argument("--max-workers", type=int, default=4, help="normalizers at most (default 4)")
    sc.add_argument("--lag-per-worker", type=int, default=20_000,
                    help="one more normalizer per this many pending TICKS_RAW messages (default 20000)")
    sc.add_argument("--min-landers", type=int, default=1)
    sc.add_argument("--max-landers", type=int, default=2)
    sc.add_argument("--lander-lag-per-worker", type=int, default=200_000,
                    help="one more lander per this many pending TICKS messages (default 200000)")
    sc.add_argument("--metrics-port", type=int, default=0, help="the autoscaler's /metrics (0: off); workers above")
    sc.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    sc.set_defaults(func=cmd_ingest_scale)
    rep = ings.add_parser("replay", help="publish a capture file as if live",
                          description="Publish the vendor frames of a capture file into TICKS_RAW.")
    from quant_platform.market.connectors.replay import replay_sources

    rep.add_argument("--source", required=True, choices=replay_sources(),
                     help="a source with a capture format, its own or its configured format's (instruments.yaml)")
    rep.add_argument("file")
    rep.add_argument("--rate", type=float, default=None, help="frames per second (default: as fast as acked)")
    rep.set_defaults(func=cmd_ingest_replay)
    rd = ings.add_parser("redrive", help="publish TICKS_DLQ rejects to TICKS_RAW again, after a fix",
                         description="Read the normalizer's TICKS_DLQ records and publish each rejected frame or event "
                         "again to TICKS_RAW (verbatim, with the original raw reference), so the fixed normalizer "
                         "takes exactly what was rejected. Idempotent: a record already redriven is skipped, and "
                         "each publish carries a Nats-Msg-Id derived from the original raw message. Prints JSON.")
    rd.add_argument("--source", default=None, help="only this source's records (default: every source)")
    rd.add_argument("--since-seq", type=int, default=None, help="from this TICKS_DLQ sequence (default: the first)")
    rd.add_argument("--dry-run", action="store_true", help="count what would be published, publish nothing")
    rd.set_defaults(func=cmd_ingest_redrive)
    st = ings.add_parser("status", help="live table of stream rates and consumer lag",
                         description="Stream messages and rates, consumer pending / ack floor / lag.")
    st.add_argument("--watch", action="store_true")
    st.add_argument("--interval", type=float, default=2.0)
    st.set_defaults(func=cmd_ingest_status)

    cat = sub.add_parser("catalog", help="the data dictionary", description="Export the catalog.")
    cats = cat.add_subparsers(dest="catalog_command", required=True, parser_class=_Parser)
    exp = cats.add_parser("export", help="write the data dictionary (Markdown and HTML) from the Definitions",
                          description="Generate data_dictionary.md / .html from the Dagster Definitions: every "
                          "asset, description, owner, columns (type, unit, PII), freshness, checks, lineage.")
    exp.add_argument("--out", default="data_dictionary", help="output folder (default: ./data_dictionary)")
    exp.add_argument("--format", default="md,html", help="comma-separated: md, html")
    exp.add_argument("--strict", action="store_true", help="exit 1 if any asset lacks documentation")
    exp.set_defaults(func=cmd_catalog_export)

    bench = sub.add_parser("bench", help="benchmarks that print JSON", description="Benchmarks.")
    bs = bench.add_subparsers(dest="bench_command", required=True, parser_class=_Parser)
    rel = bs.add_parser("release", help="release -> in-warehouse seconds through the real daemon",
                        description="Start the simulator and a Dagster daemon, release a new WPSR week, and "
                        "time until its rows are in the warehouse (sensor interval included).")
    rel.add_argument("--sensor-interval", type=int, default=30)
    rel.add_argument("--timeout", type=float, default=300)
    rel.set_defaults(func=cmd_bench_release)
    bb = bs.add_parser("backfill", help="history backfill of WPSR (every table) and COT weeks, vs the parse alone (JSON)",
                       description="Backfill --years of WPSR weeks (every table's workbook) and of the COT reports "
                       "through the vendor simulator, one single-run backfill per report, into a DuckDB warehouse: "
                       "partitions/s and rows/s against the same files parsed alone in the same run.")
    bb.add_argument("--years", type=int, default=10)
    bb.add_argument("--weeks", type=int, default=None, help="weeks per report instead of --years")
    bb.add_argument("--workdir", default=None)
    bb.add_argument("--keep", action="store_true")
    bb.set_defaults(func=cmd_bench_backfill)
    bi = bs.add_parser("ingest", help="the tick path end to end on the embedded server (JSON)",
                       description="Ticks/s end to end with fsync before ack, lost/duplicates, latency at 10k "
                       "ticks/s, CPU and bytes per tick, against a raw JetStream publish baseline.")
    bi.add_argument("--ticks", type=int, default=2_000_000)
    bi.add_argument("--normalizers", type=int, default=1)
    bi.add_argument("--paced-seconds", type=float, default=10.0)
    bi.add_argument("--keep", action="store_true", help="keep the run's QP_HOME (NATS stores and lake, ~1 GB)")
    bi.set_defaults(func=cmd_bench_ingest)
    bc = bs.add_parser("compaction", help="compact a synthetic tick day, check it, time the 1-minute VWAP query",
                       description="Daily compaction of N ticks (dedup, sort, Parquet, completeness and rules) and "
                       "a 1-minute VWAP per instrument over the result, against a plain copy of the same files.")
    bc.add_argument("--ticks", type=int, default=10_000_000)
    bc.add_argument("--workdir", default=None, help="where to build the lake (default: a temp folder)")
    bc.add_argument("--keep", action="store_true", help="keep the generated lake")
    bc.add_argument("--tick-rate", type=float, default=2_000.0,
                    help="ticks/s while the day's ticks flow: sets how many files the lander's flushes make "
                    "(default 2000, the simulator worker's QP_SIM_RATE default)")
    bc.add_argument("--no-rollup", action="store_true",
                    help="leave every small landing file in place (as before the lander rolled them up)")
    bc.set_defaults(func=cmd_bench_compaction)
    b2 = bs.add_parser("scd2", help="set-based SCD2 merge of N changed rows with its audit (JSON)",
                       description="Close N current versions and insert N new ones (staging, audit, publish) "
                       "against a plain insert of the same rows, on a DuckDB file or --url.")
    b2.add_argument("--rows", type=int, default=200_000)
    b2.add_argument("--url", default=None, help="warehouse URL (default: a DuckDB file in a temp folder)")
    b2.add_argument("--workdir", default=None)
    b2.add_argument("--keep", action="store_true", help="keep the DuckDB file")
    b2.set_defaults(func=cmd_bench_scd2)
    bcp = bs.add_parser("changepoints", help="detector quality on annotated real series vs two baselines (JSON)",
                        description="Run the online detectors with default parameters over the packaged TCPD "
                        "series and score F1 and cover (margin 5) against the human annotations, next to 'no "
                        "change point' and ruptures binary segmentation in the same run.")
    bcp.add_argument("--per-series", action="store_true", help="include every series' scores and locations")
    bcp.set_defaults(func=cmd_bench_changepoints)
    brp = bs.add_parser("reports", help="detector updates/s and a 1,000 x 20 daily report, timed (JSON)",
                        description="Online updates per second across --series series on one core, then "
                        "--instruments x --metrics daily series over --days days through the detectors, findings "
                        "and the report, in a temporary warehouse and lake.")
    brp.add_argument("--series", type=int, default=1000)
    brp.add_argument("--steps", type=int, default=400)
    brp.add_argument("--instruments", type=int, default=1000)
    brp.add_argument("--metrics", type=int, default=20)
    brp.add_argument("--days", type=int, default=120)
    brp.add_argument("--workdir", default=None)
    brp.add_argument("--keep", action="store_true")
    brp.set_defaults(func=cmd_bench_reports)

    rp = sub.add_parser("reports", help="the daily reports and their REST API",
                        description="Serve the reports API, or build a report outside Dagster.")
    rps = rp.add_subparsers(dest="reports_command", required=True, parser_class=_Parser)
    rserve = rps.add_parser("serve", help="read-only REST API over reports and findings (OpenAPI at /docs)",
                            description="Serve GET /health, /reports, /reports/{day} (JSON, .html, .md) and "
                            "/findings?metric=&kind=&desk=&since=&until=&min_probability= from QP_WAREHOUSE_URL "
                            "and the lake. Read only.")
    rserve.add_argument("--host", default="127.0.0.1")
    rserve.add_argument("--port", type=int, default=8088)
    rserve.add_argument("--url", default=None, help="warehouse URL (default: QP_WAREHOUSE_URL)")
    rserve.set_defaults(func=cmd_reports_serve)
    rbuild = rps.add_parser("build", help="build one day's report from the findings in the warehouse",
                            description="Build reports/daily/date=DAY/ and its reports.daily_reports row (what the "
                            "reports/daily_report asset does), optionally running every family's detectors first.")
    rbuild.add_argument("day", help="YYYY-MM-DD")
    rbuild.add_argument("--run-detectors", action="store_true")
    rbuild.add_argument("--url", default=None)
    rbuild.set_defaults(func=cmd_reports_build)
    return p


def _one_line(exc: BaseException) -> str:
    from quant_platform.platform.redaction import redact

    return " ".join(redact(str(exc)).split())


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster's beta/preview notices (e.g. backfill_policy) are for developers, not CLI users.
    warnings.filterwarnings("ignore", message=r".*(beta|preview).*", category=Warning)
    try:
        import dagster as dg

        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except QuantPlatformError as exc:  # one line, through the platform's one redaction rule
        print(f"quant-platform: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # a folder not writable, a port taken, a server gone: the environment, not a bug
        if os.environ.get("QP_DEBUG"):
            raise
        print(f"quant-platform: error: {type(exc).__name__}: {_one_line(exc)} "
              "(set QP_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
