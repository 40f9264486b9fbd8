"""The Dagster instance for embedded use: SQLite storage under DAGSTER_HOME, telemetry off, one slot
for the warehouse writer pool. Production uses the repository's dagster.yaml (dagster-postgres).

Never put credentials in an instance file: the production file reads them from the environment.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_DAGSTER_YAML = """\
# Written by quant-platform for the embedded default: SQLite storage in this folder.
# Production: see dagster.yaml at the repository root (dagster-postgres storage).
# One consolidated SQLite event log (not one file per run), so the governance audit sensor can read
# every event in order by storage id.
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {history_dir}
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    # DuckDB allows one writing process: assets in pool 'warehouse_writer' run one at a time.
    default_limit: 1
    granularity: op
    # One more run may be launched while its steps wait for a slot: its process starts (a few seconds of
    # imports) while another run holds the writer, so consecutive loads do not pay the start-up in series.
    op_granularity_run_buffer: 1
# A queued run starts within a second (default 5 s): a release's rows are due in the warehouse within 15 s.
run_queue:
  dequeue_interval_seconds: 1
sensors:
  use_threads: true
  num_workers: 4
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
"""


def prepare_embedded_instance(dagster_home: Path) -> Path:
    """ensure_embedded_instance, then create and stamp the SQLite storage (runs, event log, schedules) in this
    one process. Call it before starting Dagster processes on a new DAGSTER_HOME: several processes that
    create the same fresh SQLite storage at once (the webserver, the daemon, their code servers) can each
    stamp its alembic version table, and from then on every process that opens the instance fails with
    "Version table 'alembic_version' has more than one head present": the daemon then ticks no sensor."""
    import dagster as dg

    cfg = ensure_embedded_instance(dagster_home)
    with dg.DagsterInstance.from_config(str(dagster_home)):
        pass  # building the instance creates each storage's tables and stamps its version
    return cfg


def ensure_embedded_instance(dagster_home: Path) -> Path:
    """Create DAGSTER_HOME with the embedded dagster.yaml unless one is already there."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    cfg = dagster_home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(EMBEDDED_DAGSTER_YAML.format(history_dir=dagster_home.resolve() / "history"))
    return cfg
