"""The history `quant-platform up` loads on its first start: the last few years of each history report up to the
newest week its vendor serves, in the background, as single-run backfills on the platform's Dagster instance.

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
HEADLESS_YEARS = 1  # `up --headless` (the smoke test) loads one year unless QP_FIRST_START_HISTORY_YEARS says
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


def ranges(now: datetime, years: int, newest: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(asset, first week, last week) of each history report: `years` years up to the newest week its vendor serves
    (`newest`, by asset; default: the newest scheduled release), never past the newest scheduled release."""
    from quant_platform.macro.definitions import MACRO_LANE

    out = []
    for asset in ASSETS:
        report = next(r for r in MACRO_LANE.reports if r.asset_key.to_user_string() == asset)
        last = report.calendar.latest_released(now)
        if newest is not None:
            if asset not in newest:
                continue
            last = min(last, datetime.fromisoformat(newest[asset]).date())
        first = max(last - timedelta(weeks=52 * years - 1), datetime.fromisoformat(
            report.calendar.partitions_start).date())
        out.append((asset, first.isoformat(), last.isoformat()))
    return out


def newest_served() -> dict[str, str]:
    """The newest week each history report's vendor serves now, from the file its release sensor polls (one GET
    each); a report whose file is not served (HTTP 404) or unreadable is left out, with a line that says why."""
    from quant_platform.errors import QuantPlatformError
    from quant_platform.macro.definitions import MACRO_LANE
    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.vendor_http import VendorClient

    settings = load_settings()
    client = VendorClient(timeout_s=settings.http_timeout_s, attempts=2)
    out = {}
    for asset in ASSETS:
        report = next(r for r in MACRO_LANE.reports if r.asset_key.to_user_string() == asset)
        try:
            body = client.get(report.release_route.url(settings)).body
            out[asset] = report.release_partition(body)
        except QuantPlatformError as exc:
            print(f"{asset}: no history loaded ({str(exc)[:160]})", flush=True)
    return out


def start(env: dict, home: Path, headless: bool = False) -> subprocess.Popen | None:
    """Start the first-start history load in the background (its output in QP_HOME/first_start_history.log), or
    None when it was done before or QP_FIRST_START_HISTORY_YEARS is 0. Headless, one year unless the variable says."""
    if headless and not env.get(YEARS_ENV, "").strip():
        env = {**env, YEARS_ENV: str(HEADLESS_YEARS)}
    if env.get(YEARS_ENV, "").strip() in ("0", "0.0") or (home / MARKER).exists():
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
    for asset, first, last in ranges(datetime.now(UTC), history_years(), newest_served()):
        failed += cli(["backfill", asset, first, last, "--triggered-by", "first-start-history"]) != 0
    if not failed:
        (home / MARKER).write_text(f"loaded {datetime.now(UTC).isoformat()}\n")
    print(f"first-start history: {'done' if not failed else f'{failed} backfill(s) failed; tried again next start'}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
