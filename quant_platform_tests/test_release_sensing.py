"""Calendar-aware polling: sensors poll while a release is due or overdue, densely in the minute after it, and
stay quiet otherwise."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from quant_platform.macro.cftc.cot import cot_should_poll
from quant_platform.macro.release_sensing import CursorState, url_ext
from quant_platform.macro.reports.eia_wpsr.report import wpsr_should_poll

NY_WED_1029 = datetime(2026, 4, 29, 14, 29, tzinfo=UTC)  # Wed 10:29 New York, a minute before release
NY_WED_1031 = datetime(2026, 4, 29, 14, 31, tzinfo=UTC)
NY_MON = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)  # Monday after, well outside every window


def test_wpsr_polls_when_the_due_week_is_missing():
    poll, why = wpsr_should_poll({"partition": "2026-04-17"}, NY_WED_1031)
    assert poll and "2026-04-24" in why and "not loaded" in why


def test_wpsr_polls_just_before_the_release_and_in_the_revision_window():
    assert wpsr_should_poll({"partition": "2026-04-17"}, NY_WED_1029)[0]  # early window of week 04-24
    assert wpsr_should_poll({"partition": "2026-04-24"}, NY_WED_1031)[0]  # revisions after release


def test_wpsr_stays_quiet_between_releases_once_loaded():
    poll, why = wpsr_should_poll({"partition": "2026-04-24"}, NY_MON)
    assert not poll
    assert "next release Wed 2026-05-06 10:30" in why


def test_cot_polls_on_friday_and_rests_midweek():
    fri = datetime(2026, 5, 1, 19, 31, tzinfo=UTC)  # Fri 15:31 New York: as-of 2026-04-28 just released
    assert cot_should_poll({"partition": "2026-04-21"}, fri)[0]
    wed = datetime(2026, 5, 6, 15, 0, tzinfo=UTC)
    poll, why = cot_should_poll({"partition": "2026-04-28"}, wed)
    assert not poll and "next release Fri 2026-05-08 15:30" in why


def test_cursor_state_survives_garbage_and_round_trips():
    assert CursorState.load("not json").entries == {}
    c = CursorState.load(None)
    c.get("eia_wpsr")["sha256"] = "abc"
    assert CursorState.load(c.dump()).get("eia_wpsr")["sha256"] == "abc"


def test_archive_extension_follows_the_vendor_url():
    assert url_ext("http://x/wpsr/table1.csv") == "csv"
    assert url_ext("http://x/dnav/pet/hist/LeafHandler.ashx?n=PET&s=WCESTUS1&f=W") == "csv"
    assert url_ext("http://x/v2/petroleum/stoc/wstk/data/") == "json"
    assert url_ext("http://x/files/dea/history/deacot2021.zip") == "zip"


def test_the_sensor_polls_densely_in_the_minute_after_a_release(simulator, instance, monkeypatch):
    """A tick that starts two seconds before a scheduled release waits for it and polls once a second: the file
    the vendor posts at the scheduled time is seen within about a second, in the same tick."""
    import threading
    import time

    from quant_platform.definitions import defs
    from quant_platform.macro.release_sensing import CLOCK_SHIFT_ENV
    from quant_platform.platform.calendars import WPSR_RELEASE_CALENDAR
    from quant_platform.vendors.simulator import next_wpsr_week
    from quant_platform_tests.conftest import SAMPLE_DATA
    from quant_platform_tests.release_helpers import evaluate_sensor

    real = (SAMPLE_DATA / "eia" / "wpsr_table1_2026-05-01.csv").read_bytes()
    reqs, cursor, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, None)
    assert [r.partition_key for r in reqs] == ["2026-04-24"]

    release = WPSR_RELEASE_CALENDAR.release_at(date(2026, 5, 1))  # Wed 2026-05-06 10:30 New York
    shift = release - timedelta(seconds=2) - datetime.now(UTC)
    monkeypatch.setenv(CLOCK_SHIFT_ENV, str(shift.total_seconds()))
    posted: list[float] = []

    def vendor_posts_on_time() -> None:
        body = next_wpsr_week(real, weeks=1)
        time.sleep(2)
        posted.append(time.time())
        simulator.publish("/wpsr/table1.csv", body)

    threading.Thread(target=vendor_posts_on_time, daemon=True).start()
    started = time.time()
    reqs, cursor, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, cursor)
    assert [r.partition_key for r in reqs] == ["2026-05-01"]
    seen = datetime.fromisoformat(reqs[0].tags["qp/first_seen_at"]).timestamp()
    assert -0.1 <= seen - posted[0] <= 1.5, (seen - posted[0])  # first sight: when the poll that got it began
    assert time.time() - started < 10

    # A minute and a half after the release, with the week in: an ordinary quick tick, nothing new.
    monkeypatch.setenv(CLOCK_SHIFT_ENV, str((release + timedelta(seconds=90) - datetime.now(UTC)).total_seconds()))
    started = time.time()
    reqs, _, skip = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, cursor)
    assert reqs == [] and "polled" not in (skip or "")
    assert time.time() - started < 5
