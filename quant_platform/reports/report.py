"""The daily report: the top findings detected in the days up to a report date, grouped by desk (crude, gas,
crypto, equities, then the platform's own), each with a plot of its series, the detectors' predictive band and
the change points, outliers and trends found in it; written as HTML (inline SVG, no script, nothing fetched),
Markdown and JSON to the lake (reports/daily/date=D/) and indexed in reports.daily_reports.

Never put anything in a report that is not in reports.findings or the series it plots, and never reach the
network from a report page: it must render offline, in a mail client as in a browser.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from quant_platform.reports import metrics as mt
from quant_platform.reports.findings import read_scored
from quant_platform.reports.tables import DAILY_REPORTS, DESKS

REPORTS_DIR = "reports/daily"
WINDOW_DAYS = 7
PER_DESK = 6
PLOT_POINTS = 90
DESK_TITLES = {"crude": "Crude", "gas": "Gas", "crypto": "Crypto", "equities": "Equities",
               "platform": "Platform (our own pipelines)"}
KIND_TITLES = {"change_point": "Change point", "outlier": "Outlier", "trend": "Trend"}


@dataclass(frozen=True)
class BuiltReport:
    day: str
    html_path: Path
    markdown_path: Path
    json_path: Path
    findings_shown: int
    findings_in_window: int
    content_sha256: str
    desks: dict[str, int]


def report_dir(lake_root: Path, day: str) -> Path:
    return lake_root / REPORTS_DIR / f"date={day}"


# ------------------------------------------------------------------------------ data
def window_findings(warehouse, day: str, window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    until = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC) + timedelta(days=1)
    since = until - timedelta(days=window_days)
    return warehouse.query_df(
        "SELECT * FROM reports.findings WHERE detected_at >= :since AND detected_at < :until "
        "ORDER BY score DESC, probability DESC, finding_id", {"since": since, "until": until})


def select_top(findings: pd.DataFrame, per_desk: int = PER_DESK) -> pd.DataFrame:
    """At most `per_desk` findings per desk, one per series (its best), best score first; desks in DESKS order."""
    if findings.empty:
        return findings
    f = findings.sort_values(["score", "probability", "finding_id"], ascending=[False, False, True])
    f = f.drop_duplicates("series_id", keep="first")
    parts = [f[f["desk"] == d].head(per_desk) for d in DESKS]
    return pd.concat(parts, ignore_index=True)


def series_history(lake_root: Path, top: pd.DataFrame, until: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Per shown series: its last PLOT_POINTS observations up to `until`, with predictive mean and sd where the
    detectors scored them."""
    out: dict[str, pd.DataFrame] = {}
    until_ns = until.value
    for family, group in top.groupby("family"):
        series = set(group["series_id"])
        scored = read_scored(lake_root, family, series, 0, until_ns)
        chunks = mt.list_chunks(lake_root, family)
        raw = mt.read_observations([c for c in chunks if c.min_time <= until_ns])
        raw = raw[raw["series_id"].isin(series) & (raw["time"].astype("int64") <= until_ns)]
        for s in series:
            r = raw[raw["series_id"] == s][["time", "value"]]
            sc = scored[scored["series_id"] == s][["time", "pred_mean", "pred_sd"]]
            h = r.merge(sc, on="time", how="left").sort_values("time").tail(PLOT_POINTS)
            out[s] = h.reset_index(drop=True)
    return out


# ------------------------------------------------------------------------------ plots
def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step) * step
    return [start + k * step for k in range(int((hi - start) / step) + 1)]


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def svg_plot(history: pd.DataFrame, marks: pd.DataFrame, title: str, width: int = 640, height: int = 210) -> str:
    """A line chart of the series with its predictive band (mean +- 2 sd), change points as dashed verticals,
    outliers as red circles and trends as arrows from where they start."""
    left, right, top, bottom = 56, 12, 22, 28
    pw, ph = width - left - right, height - top - bottom
    esc = html.escape
    if history.empty:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="60" role="img">'
                f'<title>{esc(title)}</title><text x="8" y="30">no observations to plot</text></svg>')
    t = history["time"].astype("int64").to_numpy().astype(float)
    v = history["value"].to_numpy(dtype=float)
    mean = history["pred_mean"].to_numpy(dtype=float) if "pred_mean" in history else np.full(len(v), np.nan)
    sd = history["pred_sd"].to_numpy(dtype=float) if "pred_sd" in history else np.full(len(v), np.nan)
    band_ok = np.isfinite(mean) & np.isfinite(sd)
    lo_band, hi_band = mean - 2 * sd, mean + 2 * sd
    ys = np.concatenate([v[np.isfinite(v)], lo_band[band_ok], hi_band[band_ok]])
    y0, y1 = float(ys.min()), float(ys.max())
    if y1 <= y0:
        y0, y1 = y0 - 1, y1 + 1
    pad = (y1 - y0) * 0.06
    y0, y1 = y0 - pad, y1 + pad
    t0, t1 = float(t.min()), float(t.max())
    if t1 <= t0:
        t0, t1 = t0 - 1, t1 + 1

    def X(tt):
        return left + (np.asarray(tt, dtype=float) - t0) / (t1 - t0) * pw

    def Y(yy):
        return top + (1 - (np.asarray(yy, dtype=float) - y0) / (y1 - y0)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fbfbfd" stroke="#d0d4dc"/>']
    for tick in _nice_ticks(y0, y1):
        yy = float(Y(tick))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e6e8ee"/>'
                     f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end" font-size="10" fill="#555">'
                     f'{esc(_fmt(tick))}</text>')
    for frac in (0.0, 0.5, 1.0):
        tt = t0 + frac * (t1 - t0)
        label = pd.Timestamp(int(tt), tz="UTC")
        text = label.strftime("%Y-%m-%d %H:%M") if (t1 - t0) < 3 * 86400e9 else label.strftime("%Y-%m-%d")
        anchor = {0.0: "start", 0.5: "middle", 1.0: "end"}[frac]
        parts.append(f'<text x="{float(X(tt)):.1f}" y="{height - 8}" text-anchor="{anchor}" font-size="10" '
                     f'fill="#555">{text}</text>')
    if band_ok.sum() >= 2:
        idx = np.flatnonzero(band_ok)
        upper = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(X(t[idx]), Y(hi_band[idx]), strict=True))
        lower = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(X(t[idx][::-1]), Y(lo_band[idx][::-1]), strict=True))
        parts.append(f'<polygon class="band" points="{upper} {lower}" fill="#9ec5fe" fill-opacity="0.45" '
                     'stroke="none"><title>predictive mean +- 2 sd</title></polygon>')
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(X(t[idx]), Y(mean[idx]), strict=True))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#5b8def" stroke-width="1" '
                     'stroke-dasharray="3 2"/>')
    ok = np.isfinite(v)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(X(t[ok]), Y(v[ok]), strict=True))
    parts.append(f'<polyline class="series" points="{pts}" fill="none" stroke="#1f2937" stroke-width="1.4"/>')
    if ok.sum() <= 40:
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" fill="#1f2937"/>'
                  for x, y in zip(X(t[ok]), Y(v[ok]), strict=True)]
    for m in marks.itertuples(index=False):
        ts = pd.Timestamp(m.occurred_at).value
        if not t0 <= ts <= t1:
            continue
        x = float(X(ts))
        tip = f"{KIND_TITLES[m.kind]} p={m.probability:.3f}"
        if m.kind == "change_point":
            parts.append(f'<line class="changepoint" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" '
                         f'stroke="#d97706" stroke-width="2" stroke-dasharray="5 3"><title>{esc(tip)}</title></line>')
        elif m.kind == "outlier":
            y = float(Y(m.estimate_after)) if np.isfinite(m.estimate_after) else top + ph / 2
            parts.append(f'<circle class="outlier" cx="{x:.1f}" cy="{y:.1f}" r="6" fill="none" stroke="#dc2626" '
                         f'stroke-width="2"><title>{esc(tip)}</title></circle>')
        else:
            x2 = float(X(min(pd.Timestamp(m.detected_at).value, t1)))
            ya, yb = float(Y(m.estimate_before)), float(Y(m.estimate_after))
            if np.isfinite(ya) and np.isfinite(yb):
                parts.append(f'<line class="trend" x1="{x:.1f}" y1="{ya:.1f}" x2="{x2:.1f}" y2="{yb:.1f}" '
                             f'stroke="#059669" stroke-width="2.5"><title>{esc(tip)}</title></line>')
    parts.append(f'<text x="{left}" y="14" font-size="11" fill="#111">{esc(title)}</text></svg>')
    return "".join(parts)


# ------------------------------------------------------------------------------ bodies
def _num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:,.4g}"


def _describe(f) -> str:
    if f.kind == "change_point":
        return (f"level {_num(f.estimate_before)} → {_num(f.estimate_after)} {f.unit} "
                f"({f.magnitude_sd:+.1f} sd)")
    if f.kind == "outlier":
        return f"{_num(f.estimate_after)} {f.unit} where {_num(f.estimate_before)} was expected ({f.magnitude_sd:+.1f} sd)"
    return f"slope {_num(f.magnitude)} {f.unit} per observation, {_num(f.estimate_before)} → {_num(f.estimate_after)}"


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#111;max-width:980px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;border-bottom:2px solid #e5e7eb;padding-bottom:4px;margin-top:28px}
.meta{color:#555;font-size:13px} .finding{border:1px solid #e5e7eb;border-radius:6px;padding:10px 12px;margin:12px 0}
.finding h3{font-size:15px;margin:0 0 4px} .kind{font-size:12px;padding:1px 6px;border-radius:4px;color:#fff}
.change_point{background:#d97706} .outlier{background:#dc2626} .trend{background:#059669}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left}
.small{font-size:12px;color:#555} svg.plot{max-width:100%;height:auto}
"""


def render(day: str, top: pd.DataFrame, window: pd.DataFrame, histories: dict[str, pd.DataFrame],
           generated_at: datetime, window_days: int) -> tuple[str, str, dict]:
    """(HTML, Markdown, JSON) of the report."""
    esc = html.escape
    counts = {d: int((top["desk"] == d).sum()) for d in DESKS} if len(top) else dict.fromkeys(DESKS, 0)
    h = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Daily report {day}</title>"
         f"<style>{CSS}</style></head><body>",
         f"<h1>Daily report {esc(day)}</h1>",
         f"<p class='meta'>Findings detected in the {window_days} days to {esc(day)} (UTC): {len(window)} in all, "
         f"the {len(top)} best shown (one per series, at most {PER_DESK} per desk), ranked by probability x size. "
         f"Generated {generated_at:%Y-%m-%d %H:%M} UTC by the platform's online Bayesian detectors.</p>",
         "<table><tr><th>desk</th><th>shown</th></tr>"
         + "".join(f"<tr><td>{DESK_TITLES[d]}</td><td>{counts[d]}</td></tr>" for d in DESKS) + "</table>"]
    md = [f"# Daily report {day}", "",
          f"Findings detected in the {window_days} days to {day} (UTC): {len(window)} in all, the {len(top)} best "
          f"shown. Plots are in the HTML version.", ""]
    items = []
    for desk in DESKS:
        rows = top[top["desk"] == desk] if len(top) else top
        h.append(f"<h2 id='desk-{desk}'>{DESK_TITLES[desk]}</h2>")
        md += [f"## {DESK_TITLES[desk]}", ""]
        if rows.empty:
            h.append("<p class='small'>No findings in the window.</p>")
            md += ["No findings in the window.", ""]
            continue
        md += ["| kind | series | when | probability | what |", "|---|---|---|---|---|"]
        for f in rows.itertuples(index=False):
            hist = histories.get(f.series_id, pd.DataFrame())
            marks = window[window["series_id"] == f.series_id]
            title = f"{f.entity} · {f.metric}"
            when = pd.Timestamp(f.occurred_at).strftime("%Y-%m-%d %H:%M")
            h.append(f"<div class='finding' id='f-{f.finding_id}'><h3><span class='kind {f.kind}'>"
                     f"{KIND_TITLES[f.kind]}</span> {esc(title)}</h3>"
                     f"<div>{esc(_describe(f))}; probability {f.probability:.3f}, surprise {f.surprise:.1f}</div>"
                     f"<div class='small'>at {when} UTC, confirmed {pd.Timestamp(f.detected_at):%Y-%m-%d %H:%M}; "
                     f"from {esc(f.source_asset)} partition {esc(str(f.source_partition))}; id {f.finding_id}</div>"
                     + svg_plot(hist, marks, title) + "</div>")
            md.append(f"| {KIND_TITLES[f.kind]} | {f.entity} {f.metric} | {when} | {f.probability:.3f} | "
                      f"{_describe(f)} |")
            items.append({
                "finding_id": f.finding_id, "desk": desk, "family": f.family, "series_id": f.series_id,
                "entity": f.entity, "metric": f.metric, "unit": f.unit, "kind": f.kind,
                "occurred_at": pd.Timestamp(f.occurred_at).isoformat(),
                "detected_at": pd.Timestamp(f.detected_at).isoformat(),
                "probability": float(f.probability), "surprise": float(f.surprise),
                "magnitude": mt.finite(float(f.magnitude)) if f.magnitude is not None else None,
                "magnitude_sd": mt.finite(float(f.magnitude_sd)) if f.magnitude_sd is not None else None,
                "estimate_before": mt.finite(float(f.estimate_before)),
                "estimate_after": mt.finite(float(f.estimate_after)),
                "source_asset": f.source_asset, "source_partition": f.source_partition,
                "series": [{"time": pd.Timestamp(r.time).isoformat(), "value": mt.finite(float(r.value)),
                            "pred_mean": mt.finite(float(r.pred_mean)) if pd.notna(r.pred_mean) else None,
                            "pred_sd": mt.finite(float(r.pred_sd)) if pd.notna(r.pred_sd) else None}
                           for r in hist.itertuples(index=False)],
            })
        md.append("")
    h.append("<p class='small'>Band: the detectors' predictive mean ± 2 sd before each observation. Dashed "
             "orange: change points; red circles: outliers; green: trends. Source: reports.findings.</p></body></html>")
    body = {"report_date": day, "window_days": window_days, "generated_at": generated_at.isoformat(),
            "findings_in_window": int(len(window)), "findings_shown": len(items), "desks": counts,
            "findings": items}
    return "".join(h), "\n".join(md) + "\n", body


def build_report(lake_root: Path, warehouse, day: str, *, window_days: int = WINDOW_DAYS,
                 generated_at: datetime | None = None) -> BuiltReport:
    """Build and publish the report of `day`: bodies to the lake (written, then renamed), then its row."""
    generated_at = generated_at or datetime.now(UTC)
    window = window_findings(warehouse, day, window_days)
    top = select_top(window)
    until = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
    histories = series_history(lake_root, top, until) if len(top) else {}
    page, markdown, body = render(day, top, window, histories, generated_at, window_days)
    folder = report_dir(lake_root, day)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(body, indent=1, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    paths = {}
    for name, content in (("report.html", page), ("report.md", markdown), ("report.json", text)):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, folder / name)
        paths[name] = folder / name
    row = pd.DataFrame([{
        "report_date": date.fromisoformat(day), "window_days": window_days, "findings_shown": body["findings_shown"],
        "findings_in_window": body["findings_in_window"],
        "desks": ", ".join(f"{d}:{n}" for d, n in body["desks"].items() if n),
        "html_path": str(paths["report.html"].relative_to(lake_root)),
        "markdown_path": str(paths["report.md"].relative_to(lake_root)),
        "json_path": str(paths["report.json"].relative_to(lake_root)),
        "content_sha256": digest, "generated_at": generated_at}])
    warehouse.replace_rows(DAILY_REPORTS, row, [date.fromisoformat(day)])
    return BuiltReport(day, paths["report.html"], paths["report.md"], paths["report.json"], body["findings_shown"],
                       body["findings_in_window"], digest, body["desks"])
