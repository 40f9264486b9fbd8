"""Calendar-aware polling: sensors poll while a release is due or overdue, and stay quiet otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

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
