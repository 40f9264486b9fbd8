"""The history `quant-platform up` loads on its first start: the last few years of each history report, in the
background, as single-run backfills on the platform's Dagster instance (the catalog shows filled partitions).

Never load it on every start: a marker in QP_HOME says it was done (delete it to load again); a failed load leaves
no marker, so the next start tries again.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

YEARS_ENV = "QP_FIRST_START_HISTORY_YEARS"  # 0 turns the first-start history load off
DEFAULT_YEARS = 3
MARKER = "first_start_history.done"
LOG = "first_start_history.log"
# The reports whose history is loaded, biggest first; their backfill policy loads each range in one run.
ASSETS = (
    "macro/eia_wpsr_tables",
    "macro/cftc_cot_legacy",
    "macro/cftc_cot_disaggregated",
    "macro/cftc_cot_legacy_combined",
    "macro/cftc_cot_disaggregated_combined",
    "macro/eia_gas_storage",
)


def history_years() -> int:
    from quant_platform.platform.settings import bounded_env

    return int(bounded_env(YEARS_ENV, DEFAULT_YEARS, 0, 50, integer=True))


def ranges(now: datetime, years: int) -> list[tuple[str, str, str]]:
    """(asset, first week, newest released week) of each history report: `years` years up to its newest release."""
    from quant_platform.macro.definitions import MACRO_LANE

    out = []
    for asset in ASSETS:
        report = next(r for r in MACRO_LANE.reports if r.asset_key.to_user_string() == asset)
        last = report.calendar.latest_released(now)
        first = max(last - timedelta(weeks=52 * years - 1), datetime.fromisoformat(
            report.calendar.partitions_start).date())
        out.append((asset, first.isoformat(), last.isoformat()))
    return out


def start(env: dict, home: Path) -> subprocess.Popen | None:
    """Start the first-start history load in the background (its output in QP_HOME/first_start_history.log), or
    None when it was done before or QP_FIRST_START_HISTORY_YEARS is 0."""
    if history_years() == 0 or (home / MARKER).exists():
        return None
    log = (home / LOG).open("ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "quant_platform.first_start"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def main() -> int:
    """Backfill each report's range, one after the other; the marker is written when every backfill ran."""
    from quant_platform.cli import main as cli
    from quant_platform.platform.settings import load_settings

    home = load_settings().home
    failed = 0
    for asset, first, last in ranges(datetime.now(UTC), history_years()):
        failed += cli(["backfill", asset, first, last, "--triggered-by", "first-start-history"]) != 0
    if not failed:
        (home / MARKER).write_text(f"loaded {datetime.now(UTC).isoformat()}\n")
    print(f"first-start history: {'done' if not failed else f'{failed} backfill(s) failed; tried again next start'}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
