"""Mirrors Dagster's event log into governance.load_audit and governance.check_results, so every load and
every check outcome is queryable with SQL, whatever triggered it.

Never rewrite an audit row: rows are keyed by the event's storage id and only ever inserted once; a tick
writes both tables in one transaction and skips ids already there, so a retry after any failure succeeds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster import DagsterEventType, EventRecordsFilter

from quant_platform.governance.tables import CHECK_RESULTS, LOAD_AUDIT
from quant_platform.platform.warehouse import Warehouse, vetted
from quant_platform.resources import WarehouseResource

BATCH = 500


def triggered_by(tags: dict) -> str:
    if tags.get("dagster/sensor_name"):
        sensor = tags["dagster/sensor_name"]
        return "automation" if tags.get("dagster/from_automation_condition") else f"sensor:{sensor}"
    if tags.get("dagster/schedule_name"):
        return f"schedule:{tags['dagster/schedule_name']}"
    if tags.get("dagster/backfill"):
        return f"backfill:{tags['dagster/backfill']}"
    if tags.get("qp/triggered_by"):
        return str(tags["qp/triggered_by"])
    if tags.get("user"):
        return f"user:{tags['user']}"
    return "manual"


def _meta_value(meta: dict, key: str):
    v = meta.get(key)
    return getattr(v, "value", v) if v is not None else None


def _source(meta: dict, deps: str) -> tuple[str, str | None]:
    if _meta_value(meta, "raw_sha256"):
        return "file_sha256", str(_meta_value(meta, "raw_sha256"))
    if _meta_value(meta, "watermark_range"):
        return "watermark", str(_meta_value(meta, "watermark_range"))
    if _meta_value(meta, "stream_seq_range"):
        return "stream_seq", str(_meta_value(meta, "stream_seq_range"))
    if deps:
        return "derived", deps
    return "unknown", None


def _json_meta(meta: dict) -> str:
    out = {}
    for k, v in meta.items():
        val = getattr(v, "value", v)
        try:
            json.dumps(val)
            out[k] = val
        except TypeError:
            out[k] = str(val)
    return json.dumps(out, sort_keys=True)


def mirror_events(instance: dg.DagsterInstance, wh: Warehouse, after: int, upstream_of=None) -> tuple[int, dict]:
    """Copy materializations and check evaluations with storage id > `after`; returns the new cursor."""
    runs: dict[str, dg.DagsterRun | None] = {}
    starts: dict[str, datetime | None] = {}

    def run_info(run_id: str):
        if run_id not in runs:
            runs[run_id] = instance.get_run_by_id(run_id)
            rec = instance.get_run_record_by_id(run_id)
            starts[run_id] = (datetime.fromtimestamp(rec.start_time, UTC) if rec and rec.start_time else None)
        return runs[run_id], starts[run_id]

    fetched = {
        t: instance.get_event_records(EventRecordsFilter(event_type=t, after_cursor=after), limit=BATCH,
                                      ascending=True)
        for t in (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION)
    }
    # A full batch of one type may stop short of the other's events: advance only as far as both are read.
    full = [recs[-1].storage_id for recs in fetched.values() if len(recs) == BATCH]
    every = [r.storage_id for recs in fetched.values() for r in recs]
    cursor = min(full) if full else max(every, default=after)
    mats, checks = [], []
    for event_type, records in fetched.items():
        for rec in records:
            if rec.storage_id > cursor:
                continue
            entry = rec.event_log_entry
            run, started = run_info(entry.run_id)
            tags = dict(run.tags) if run else {}
            at = datetime.fromtimestamp(entry.timestamp, UTC)
            if event_type == DagsterEventType.ASSET_MATERIALIZATION:
                m = entry.asset_materialization
                key = m.asset_key.to_user_string()
                meta = dict(m.metadata)
                deps = upstream_of(m.asset_key) if upstream_of else ""
                kind, ref = _source(meta, deps)
                rows = _meta_value(meta, "dagster/row_count")
                mats.append({
                    "event_id": rec.storage_id, "asset_key": key, "partition_key": m.partition or "",
                    "run_id": entry.run_id, "row_count": int(rows) if rows is not None else None,
                    "source_kind": kind, "source_ref": ref, "code_version": tags.get("dagster/code_version")
                    or (m.tags or {}).get("dagster/code_version"), "started_at": started, "finished_at": at,
                    "triggered_by": triggered_by(tags),
                })
            else:
                ev = entry.dagster_event.event_specific_data
                checks.append({
                    "event_id": rec.storage_id, "asset_key": ev.asset_key.to_user_string(),
                    "check_name": ev.check_name, "partition_key": ev.partition or tags.get("dagster/partition", ""),
                    "run_id": entry.run_id, "passed": bool(ev.passed), "severity": ev.severity.value,
                    "blocking": bool(ev.blocking), "metadata_json": _json_meta(dict(ev.metadata)),
                    "evaluated_at": at,
                })
    counts = {}
    # One transaction for both tables: a failure leaves neither half-written and the cursor where it was.
    with wh.transaction() as con:
        for spec, rows in ((LOAD_AUDIT, mats), (CHECK_RESULTS, checks)):
            new = _not_yet_audited(wh, con, spec, rows)
            if new:
                wh.append_rows(spec, pd.DataFrame(new, columns=spec.column_names), con=con)
            counts[spec.name] = len(new)
    return cursor, counts


def _not_yet_audited(wh: Warehouse, con, spec, rows: list[dict]) -> list[dict]:
    """The rows whose event id is not in the table yet (a replayed cursor, or rows an older tick left)."""
    if not rows:
        return []
    have = wh.run(con, f"SELECT event_id FROM {vetted(spec.qualified_name)} WHERE event_id IN :ids",  # noqa: S608
                  {"ids": [r["event_id"] for r in rows]}) or []
    known = {int(r[0]) for r in have}
    return [r for r in rows if r["event_id"] not in known]


def governance_audit_sensor_factory(asset_graph_parents) -> dg.SensorDefinition:
    @dg.sensor(
        name="governance_audit_sensor",
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Copies every materialization into governance.load_audit and every asset check outcome "
        "into governance.check_results (cursor = event log storage id; each event once).",
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
        after = int(context.cursor or 0)
        wh = warehouse.open()
        try:
            if not wh.table_exists("governance.load_audit"):
                return dg.SkipReason("governance tables missing: run `quant-platform warehouse init`")
            try:
                cursor, counts = mirror_events(context.instance, wh, after, asset_graph_parents)
            except Exception as exc:
                if "run-sharded" in str(exc):
                    return dg.SkipReason("the instance's event log is run-sharded SQLite: use the platform's "
                                         "instance config (ConsolidatedSqliteEventLogStorage) or PostgreSQL")
                raise
        finally:
            wh.dispose()
        context.update_cursor(str(cursor))
        if not any(counts.values()):
            return dg.SkipReason("no new events")
        context.log.info(f"audited {counts['load_audit']} loads and {counts['check_results']} check results")
        return dg.SkipReason(f"audited {counts['load_audit']} loads, {counts['check_results']} check results")

    return _sensor
