"""The Dagster UI in a real browser: headless Debian Chromium, driven by Playwright, against a real
dagster-webserver serving the platform's definitions after real runs.

It checks what an analyst sees: the catalog lists the assets with the descriptions the Definitions carry,
the global lineage graph draws their nodes, and an asset page shows its checks (with their results) and
its freshness policy. Its screenshots, taken in this run into the test's tmp_path, must be real PNGs of a
drawn page (not a blank one); with UPDATE_SCREENSHOTS=1 they replace docs/img/ui_catalog.png and
docs/img/ui_lineage.png, the README's.

Never use Playwright's own browser download: the browser is Debian's /usr/bin/chromium (`make browser`).
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from quant_platform_tests.conftest import REPO_ROOT, free_port, port_open
from quant_platform_tests.release_helpers import check_results, evaluate_sensor, execute_requests

CHROMIUM = Path("/usr/bin/chromium")
# The flags checked on this kind of machine (../shared/README.md); without the background-networking
# ones Chromium keeps trying hosts that the closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync"]
IMG_DIR = REPO_ROOT / "docs" / "img"
ASSETS = ("macro/eia_wpsr", "marts/us_crude_balance_weekly")
UI_TIMEOUT_MS = 60_000  # two shared cores: the first page load compiles nothing, but can still be slow
ASSET_NODES_QUERY = "{ assetNodes { assetKey { path } } }"
VIEWPORT = {"width": 1440, "height": 900}
SCREENSHOTS = ("ui_catalog.png", "ui_lineage.png")
# Decoded by the browser itself (an <img> drawn on a canvas): distinct RGBA values and the most common one's share.
COLOUR_STATS_JS = """async (b64) => {
  const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const px = new Uint32Array(ctx.getImageData(0, 0, c.width, c.height).data.buffer);
  const counts = new Map(); for (const v of px) counts.set(v, (counts.get(v) || 0) + 1);
  let top = 0; for (const n of counts.values()) top = Math.max(top, n);
  return {width: c.width, height: c.height, colours: counts.size, top_share: top / px.length};
}"""
# A drawn Dagster page has thousands of colours (antialiased text, icons); a blank render has one.
MIN_COLOURS = 256
MAX_TOP_SHARE = 0.98


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height of a well-formed 8-bit PNG: signature, IHDR first, IEND last, every chunk's CRC, and
    image data that inflates to exactly one filter byte plus one row of pixels per line."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    pos, kinds, idat = 8, [], b""
    while pos < len(data):
        assert pos + 12 <= len(data), f"{path.name}: truncated"
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        assert pos + 12 + length <= len(data), f"{path.name}: truncated in chunk {kind!r}"
        body, (crc,) = data[pos + 8:pos + 8 + length], struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path.name}: bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            width, height, depth, colour_type = struct.unpack(">IIBB", body[:10])
        idat += body if kind == b"IDAT" else b""
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds, (path.name, kinds)
    assert depth == 8 and colour_type in (2, 6), (path.name, depth, colour_type)  # RGB or RGBA
    row = 1 + width * (3 if colour_type == 2 else 4)
    assert len(zlib.decompress(idat)) == height * row, f"{path.name}: image data does not fill {width}x{height}"
    return width, height


def _colour_stats(page, path: Path) -> dict:
    return page.evaluate(COLOUR_STATS_JS, base64.b64encode(path.read_bytes()).decode())


def _assert_drawn_screenshots(browser, tmp_path: Path) -> None:
    """This run's screenshots are PNGs of the viewport's size with a drawn page in them; the same measure
    calls a blank render of the same size blank, so it can tell."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto("about:blank")
        blank = tmp_path / "blank.png"
        page.screenshot(path=str(blank))
        assert _colour_stats(page, blank)["colours"] == 1
        digests = set()
        for name in SCREENSHOTS:
            shot = tmp_path / name
            assert shot.is_file(), f"{name} was not taken in this run"
            assert shot.stat().st_size > 20_000, f"{name} looks empty"
            assert _png_size(shot) == (VIEWPORT["width"], VIEWPORT["height"]), name
            stats = _colour_stats(page, shot)
            assert (stats["width"], stats["height"]) == (VIEWPORT["width"], VIEWPORT["height"]), (name, stats)
            assert stats["colours"] >= MIN_COLOURS and stats["top_share"] <= MAX_TOP_SHARE, (name, stats)
            digests.add(hashlib.sha256(shot.read_bytes()).hexdigest())
        assert len(digests) == len(SCREENSHOTS), "two screenshots are the same picture"
    finally:
        page.close()


def _group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the webserver's whole process group (it and its code server), SIGKILL what lingers."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_members(proc.pid):
                return
            time.sleep(0.2)
    proc.wait(timeout=5)


def _materialize_with_the_real_definitions(defs, qp_home: Path) -> None:
    """Load a WPSR week and the EIA series through their release sensors, then build the crude balance mart,
    so that materializations and check results exist for the UI to show."""
    import dagster as dg

    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.warehouse import Warehouse

    wh = Warehouse(load_settings().warehouse_url)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    wh.dispose()
    with dg.DagsterInstance.from_config(str(qp_home / "dagster")) as instance:
        results = []
        for sensor in ("eia_wpsr_release_sensor", "eia_series_release_sensor"):
            reqs, _, _ = evaluate_sensor(defs, sensor, instance, None)
            assert reqs, f"{sensor} requested no run"
            results += execute_requests(defs, instance, reqs)
        mart = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey.from_user_string(ASSETS[1])})
        results.append(mart.execute_in_process(instance=instance, raise_on_error=False))
    assert all(r.success for r in results)
    checks = {name: ok for r in results for name, ok in check_results(r).items()}
    assert checks and all(checks.values()), checks  # so the UI must show every check as succeeded


def _wait_for_catalog(port: int, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-3000:]}"
        try:
            r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": ASSET_NODES_QUERY}, timeout=5)
            nodes = r.json().get("data", {}).get("assetNodes") if r.ok else None
            if nodes:
                return {"/".join(n["assetKey"]["path"]) for n in nodes}
        except (requests.RequestException, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"dagster-webserver did not serve the catalog:\n{log.read_text()[-3000:]}")


def _skip_community_modal(page) -> None:
    """A fresh instance greets the first visit with "Join the Dagster community": skip it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    skip = page.get_by_role("button", name="Skip", exact=True)
    try:
        skip.wait_for(state="visible", timeout=15_000)
    except PlaywrightTimeout:  # not shown (already dismissed on this instance): nothing to skip
        return
    skip.click()
    skip.wait_for(state="hidden", timeout=UI_TIMEOUT_MS)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cron_deadline_pattern(cron: str) -> re.Pattern:
    """What the UI prints for a weekly deadline cron such as '30 11 * * 3': '... 11:30 AM ... Wednesday'."""
    minute, hour, _dom, _month, dow = cron.split()
    h = int(hour)
    weekday = calendar.day_name[(int(dow) - 1) % 7]  # cron counts from Sunday = 0, calendar from Monday
    return re.compile(rf"Deadline:.*\b{h % 12 or 12}:{int(minute):02d} {'AM' if h < 12 else 'PM'}\b.*{weekday}")


@pytest.mark.slow
# Collected as a test in test_daemons.py, with the suite's other Dagster daemons and webservers: one file, so
# `--dist loadfile` runs them one after another in one test process.
def _test_dagster_ui_shows_catalog_lineage_checks_and_freshness(simulator, qp_home, tmp_path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium)")
    import dagster as dg
    from playwright.sync_api import expect, sync_playwright

    from quant_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = [dg.AssetKey.from_user_string(a) for a in ASSETS]
    nodes = {k: graph.get(k) for k in keys}
    checks = {k: sorted(c.name for c in graph.asset_check_keys if c.asset_key == k) for k in keys}
    assert all(n.description for n in nodes.values()) and all(checks.values())

    _materialize_with_the_real_definitions(defs, qp_home)

    groups = sorted({n.group_name for n in nodes.values()})
    selection = " or ".join(f'group:"{g}"' for g in groups)
    port = free_port()
    log = tmp_path / "webserver.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        web = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-m", "quant_platform.definitions", "-h", "127.0.0.1",
             "-p", str(port)], env=dict(os.environ), cwd=str(tmp_path), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        assert set(ASSETS) <= _wait_for_catalog(port, web, log)
        for name in SCREENSHOTS:  # this run's screenshots only
            (tmp_path / name).unlink(missing_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(UI_TIMEOUT_MS)
            try:
                # 1. Catalog, filtered to the two assets' groups (the full list outgrows a screen and the
                # UI renders only the rows in view): both listed, with the description their Definitions carry.
                page.goto(f"{base}/assets?asset-selection={quote(selection)}")
                _skip_community_modal(page)
                # Should the modal come back over a later page, it is skipped before Playwright acts there.
                page.add_locator_handler(page.get_by_role("button", name="Skip", exact=True),
                                         lambda btn: btn.click())
                for key in keys:
                    path = "/".join(key.path)
                    expect(page.locator(f'a[href="/assets/{path}"]').first).to_be_visible(timeout=UI_TIMEOUT_MS)
                    described = _one_line(nodes[key].description)
                    shown = page.get_by_text(described[:60]).first
                    expect(shown).to_be_visible(timeout=UI_TIMEOUT_MS)
                    text = _one_line(shown.inner_text()).rstrip("…").rstrip()
                    # The catalog row may cut a long description short, never change it.
                    assert described.startswith(text) and len(text) >= min(len(described), 100), (path, text)
                # Statuses load after the rows: the mart shows its materialization, nothing still loading.
                mart_row = page.locator('[class*="VirtualizedTable_row"]').filter(has=page.locator(f'a[href="/assets/{ASSETS[1]}"]'))
                expect(mart_row.first).to_contain_text("Materialized", timeout=UI_TIMEOUT_MS)
                expect(page.get_by_text(re.compile(r"^(Loading|- partitions)"))).to_have_count(
                    0, timeout=UI_TIMEOUT_MS)
                page.screenshot(path=str(tmp_path / "ui_catalog.png"))

                # 2. Global asset lineage of the mart and what it reads (the whole groups outgrow the screen,
                # and the graph renders only the nodes in view), their groups expanded: a node per asset, edges.
                lineage = f'+key:"{ASSETS[1]}"'
                expanded = ",".join(f"global@global:{g}" for g in groups)
                page.goto(f"{base}/asset-groups~{quote(lineage, safe=':')}?expanded={quote(expanded)}")
                expect(page.get_by_text("Global asset lineage")).to_be_visible(timeout=UI_TIMEOUT_MS)
                for key in keys:
                    n = len(checks[key])
                    box = page.locator("foreignObject").filter(
                        has=page.get_by_text(key.path[-1], exact=True)).filter(has_text="Asset checks")
                    expect(box.first).to_be_visible(timeout=UI_TIMEOUT_MS)
                    expect(box.first).to_contain_text(f"{n} / {n} Passed", timeout=UI_TIMEOUT_MS)
                # One drawn edge (a path straight under the graph's svg; arrowheads sit in <marker>) per
                # dependency between assets of these groups in the Definitions.
                shown = {keys[1], *graph.get(keys[1]).parent_keys}
                assert keys[0] in shown, "the mart no longer reads the WPSR"
                deps = [(p, k) for k in shown for p in graph.get(k).parent_keys if p in shown]
                assert deps, f"no dependency among {shown}"
                expect(page.locator("svg:has(foreignObject) > path")).to_have_count(len(deps), timeout=UI_TIMEOUT_MS)
                _frame_the_graph(page)
                page.screenshot(path=str(tmp_path / "ui_lineage.png"))

                # 3. Asset pages: the checks with their results, and the freshness policy.
                for key in keys:
                    path = "/".join(key.path)
                    page.goto(f"{base}/assets/{path}")
                    expect(page.get_by_text("Latest check results")).to_be_visible(timeout=UI_TIMEOUT_MS)
                    expect(page.get_by_text("Freshness policy").first).to_be_visible(timeout=UI_TIMEOUT_MS)
                    policy = nodes[key].freshness_policy
                    assert policy is not None, f"{path} declares no freshness policy"
                    expect(page.get_by_text(_cron_deadline_pattern(policy.deadline_cron)).first).to_be_visible(
                        timeout=UI_TIMEOUT_MS)
                    page.goto(f"{base}/assets/{path}?view=checks")
                    expect(page.get_by_text(f"Checks ({len(checks[key])})")).to_be_visible(timeout=UI_TIMEOUT_MS)
                    for name in checks[key]:
                        row = page.locator(f'span:has(> div[title="{name}"])').first
                        expect(row).to_contain_text("Succeeded", timeout=UI_TIMEOUT_MS)

                _assert_drawn_screenshots(browser, tmp_path)
            except Exception:
                with contextlib.suppress(Exception):  # the page as the failing step saw it
                    page.screenshot(path=str(tmp_path / "failure.png"))
                raise
            finally:
                browser.close()
    finally:
        _stop_group(web)
    # Nothing is left behind: no process of the webserver's group, its port closed.
    assert not _group_members(web.pid) and not port_open(port)
    # The README's screenshots are replaced only on request, and only by checked ones.
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        IMG_DIR.mkdir(parents=True, exist_ok=True)
        for name in SCREENSHOTS:
            shutil.copyfile(tmp_path / name, IMG_DIR / name)


def _frame_the_graph(page) -> None:
    """Zoom out one step and drag the canvas so that the group frames start just below the toolbar."""
    page.locator("button").filter(has=page.get_by_role("img", name="zoom_out")).click()
    page.wait_for_timeout(500)
    toolbar = page.get_by_label("Search and filter assets").first.bounding_box()
    frames = [page.locator("foreignObject.group").nth(i).bounding_box()
              for i in range(page.locator("foreignObject.group").count())]
    top = min(f["y"] for f in frames if f)
    shift = toolbar["y"] + toolbar["height"] + 36 - top
    if shift > 0:
        x = toolbar["x"] + toolbar["width"] / 2
        page.mouse.move(x, 500)
        page.mouse.down()
        page.mouse.move(x, 500 + shift, steps=5)
        page.mouse.up()
    page.wait_for_timeout(500)
