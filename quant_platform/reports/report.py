"""The daily report: per metric family, the findings that are recent for that family's frequency (daily families:
confirmed by an observation of the 7 UTC days to the report date; weekly families: by one of their last 4 weekly
observations up to their latest at or before the report date), the best of them grouped by desk (crude, gas,
crypto, equities, then the platform's own); for a family with nothing recent, its latest earlier findings,
marked as such. Each finding with when it happened, the observation that confirmed it, when the platform first
detected it, and a plot of its series around it (the detectors' predictive band, the change points, outliers and
trends found); written as HTML (inline SVG, no script, nothing fetched), Markdown and JSON to the lake
(reports/daily/date=D/) and indexed in reports.daily_reports.

Never put anything in a report that is not in reports.findings or the metric series the detectors watch, never
show a finding confirmed after the report date, and never reach the network from a report page: it must render
offline, in a mail client as in a browser.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from quant_platform.reports import metrics as mt
from quant_platform.reports.findings import read_scored
from quant_platform.reports.tables import DAILY_REPORTS, DESKS, FAMILIES

REPORTS_DIR = "reports/daily"
WINDOW_DAYS = 7  # daily families: the UTC days ending the report date
WEEKLY_WINDOW_OBS = 4  # weekly families: their last weekly observations up to the latest at or before the date
EARLIER_PER_FAMILY = 3  # a family with nothing recent: its latest earlier findings, for context
PER_DESK = 6
PLOT_POINTS = 90
PLOT_AFTER = 20  # points after a finding's confirming observation, when the series goes on
DESK_TITLES = {"crude": "Crude", "gas": "Gas", "crypto": "Crypto", "equities": "Equities",
               "platform": "Platform (our own pipelines)"}
KIND_TITLES = {"change_point": "Change point", "outlier": "Outlier", "trend": "Trend"}
FREQUENCY = {"market_daily": "daily", "market_intraday": "per minute", "macro_wpsr": "weekly",
             "macro_cot": "weekly", "platform": "daily"}
FAMILY_TITLES = {"market_daily": "Market, per instrument and day", "market_intraday": "Market, per instrument and minute",
                 "macro_wpsr": "WPSR crude balance, week on week vs 5-year range",
                 "macro_cot": "COT net positioning by trader category", "platform": "Platform pipelines"}
_PERIOD = {"daily": pd.Timedelta(days=1), "per minute": pd.Timedelta(minutes=1), "weekly": pd.Timedelta(days=7)}


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
    findings_recent_shown: int = 0


@dataclass(frozen=True)
class FamilyWindow:
    """What 'recent' means for one family in the report of one day: findings whose confirming observation
    (detected_at) is in [start, end)."""

    family: str
    frequency: str
    start: pd.Timestamp | None  # None: the family has no observation up to the report date
    end: pd.Timestamp | None
    latest_observation: pd.Timestamp | None
    rule: str

    def as_json(self) -> dict:
        return {"family": self.family, "frequency": self.frequency, "rule": self.rule,
                "window_start": self.start.isoformat() if self.start is not None else None,
                "window_end": self.end.isoformat() if self.end is not None else None,
                "latest_observation": (self.latest_observation.isoformat()
                                       if self.latest_observation is not None else None)}


def report_dir(lake_root: Path, day: str) -> Path:
    return lake_root / REPORTS_DIR / f"date={day}"


def _day_end(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)


# ------------------------------------------------------------------------------ data
def latest_observation(lake_root: Path, family: str, before: pd.Timestamp) -> pd.Timestamp | None:
    """The family's latest observation time before `before` (from the chunks' time ranges; a chunk that spans
    `before`, such as a year of weekly data, is read for its times)."""
    limit = before.value
    best: int | None = None
    for c in mt.list_chunks(lake_root, family):
        if c.min_time >= limit:
            continue
        if c.max_time < limit:
            best = c.max_time if best is None else max(best, c.max_time)
            continue
        times = pq.read_table(c.path, columns=["time"]).column("time").to_pandas()
        times = times[times.astype("int64") < limit]
        if len(times):
            t = int(times.astype("int64").max())
            best = t if best is None else max(best, t)
    return None if best is None else pd.Timestamp(best, tz="UTC")


def family_windows(lake_root: Path, day: str, window_days: int = WINDOW_DAYS) -> dict[str, FamilyWindow]:
    end = _day_end(day)
    out = {}
    for family in FAMILIES:
        freq = FREQUENCY[family]
        latest = latest_observation(lake_root, family, end)
        if freq == "weekly":
            rule = (f"confirmed by one of the family's last {WEEKLY_WINDOW_OBS} weekly observations up to its latest "
                    f"at or before {day}")
            if latest is None:
                out[family] = FamilyWindow(family, freq, None, None, None, rule)
                continue
            start = (latest - pd.Timedelta(days=7 * WEEKLY_WINDOW_OBS - 1)).normalize()
            out[family] = FamilyWindow(family, freq, start, latest + pd.Timedelta(days=1), latest, rule)
        else:
            rule = f"confirmed by an observation of the {window_days} UTC days to {day}"
            out[family] = FamilyWindow(family, freq, end - pd.Timedelta(days=window_days), end, latest, rule)
    return out


def recent_findings(warehouse, windows: dict[str, FamilyWindow], day: str) -> pd.DataFrame:
    """Every finding in its family's recent window (never one confirmed after the report date)."""
    end = _day_end(day)
    parts = []
    for w in windows.values():
        if w.start is None:
            continue
        parts.append(warehouse.query_df(
            "SELECT * FROM reports.findings WHERE family = :f AND detected_at >= :a AND detected_at < :b",
            {"f": w.family, "a": w.start.to_pydatetime(), "b": min(w.end, end).to_pydatetime()}))
    return _sorted(parts)


def earlier_findings(warehouse, windows: dict[str, FamilyWindow], recent: pd.DataFrame, day: str,
                     per_family: int = EARLIER_PER_FAMILY) -> pd.DataFrame:
    """For each family with nothing recent: its latest findings confirmed before its window (or, with no
    window, before the report date's end), newest first."""
    end = _day_end(day)
    parts = []
    for w in windows.values():
        if len(recent) and (recent["family"] == w.family).any():
            continue
        before = w.start if w.start is not None else end
        parts.append(warehouse.query_df(
            "SELECT * FROM reports.findings WHERE family = :f AND detected_at < :b "
            "ORDER BY detected_at DESC, score DESC, finding_id LIMIT :n",
            {"f": w.family, "b": min(before, end).to_pydatetime(), "n": per_family}))
    frames = [p for p in parts if len(p)]
    if not frames:
        return parts[0].iloc[0:0] if parts else pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _sorted(parts: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [p for p in parts if len(p)]
    if not frames:
        return parts[0].iloc[0:0] if parts else pd.DataFrame()
    f = pd.concat(frames, ignore_index=True)
    return f.sort_values(["score", "probability", "finding_id"], ascending=[False, False, True], ignore_index=True)


def select_top(findings: pd.DataFrame, per_desk: int = PER_DESK) -> pd.DataFrame:
    """At most `per_desk` findings per desk, one per series (its best), best score first; desks in DESKS order."""
    if findings.empty:
        return findings
    f = findings.sort_values(["score", "probability", "finding_id"], ascending=[False, False, True])
    f = f.drop_duplicates("series_id", keep="first")
    parts = [f[f["desk"] == d].head(per_desk) for d in DESKS]
    return pd.concat(parts, ignore_index=True)


def finding_histories(lake_root: Path, shown: pd.DataFrame, day: str) -> dict[str, pd.DataFrame]:
    """Per shown finding: up to PLOT_POINTS observations of its series around it (ending PLOT_AFTER points
    after its confirming observation, or at the report date), with predictive mean and sd where the detectors
    scored them. Never an observation after the report date."""
    out: dict[str, pd.DataFrame] = {}
    end_ns = _day_end(day).value - 1
    for family, group in shown.groupby("family"):
        period = _PERIOD[FREQUENCY.get(family, "daily")]
        t_lo = pd.Timestamp(group["occurred_at"].min()).value - (2 * PLOT_POINTS * period).value
        t_hi = min(end_ns, pd.Timestamp(group["detected_at"].max()).value + (2 * PLOT_AFTER * period).value)
        series = set(group["series_id"])
        chunks = [c for c in mt.list_chunks(lake_root, family) if c.max_time >= t_lo and c.min_time <= t_hi]
        raw = mt.read_observations(chunks)
        ts = raw["time"].astype("int64")
        raw = raw[raw["series_id"].isin(series) & (ts >= t_lo) & (ts <= end_ns)]
        scored = read_scored(lake_root, family, series, t_lo, end_ns)
        for s in series:
            r = raw[raw["series_id"] == s][["time", "value"]]
            sc = scored[scored["series_id"] == s][["time", "pred_mean", "pred_sd"]]
            h = r.merge(sc, on="time", how="left").sort_values("time", ignore_index=True)
            times = h["time"].astype("int64").to_numpy()
            for f in group[group["series_id"] == s].itertuples(index=False):
                last = int(np.searchsorted(times, pd.Timestamp(f.detected_at).value, side="right"))
                stop = min(len(h), last + PLOT_AFTER)
                out[f.finding_id] = h.iloc[max(0, stop - PLOT_POINTS):stop].reset_index(drop=True)
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


def _sd(v) -> str:
    return f"{v:+.1f} sd" if v is not None and isinstance(v, float) and math.isfinite(v) else "– sd"


def _describe(f) -> str:
    if f.kind == "change_point":
        return f"level {_num(f.estimate_before)} → {_num(f.estimate_after)} {f.unit} ({_sd(f.magnitude_sd)})"
    if f.kind == "outlier":
        return f"{_num(f.estimate_after)} {f.unit} where {_num(f.estimate_before)} was expected ({_sd(f.magnitude_sd)})"
    return f"slope {_num(f.magnitude)} {f.unit} per observation, {_num(f.estimate_before)} → {_num(f.estimate_after)}"


def _when(t, family: str) -> str:
    """An observation time as its family counts time: a day (daily and weekly families) or a minute."""
    ts = pd.Timestamp(t)
    return ts.strftime("%Y-%m-%d %H:%M UTC") if FREQUENCY.get(family) == "per minute" else ts.strftime("%Y-%m-%d")


def _age(days: int) -> str:
    return f"{days} days" + (f" ({days / 365.25:.1f} years)" if days > 365 else "")


def _first_detected(f) -> pd.Timestamp:
    t = pd.Timestamp(f.recorded_at)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _age_days(f, day: str) -> int:
    return (date.fromisoformat(day) - pd.Timestamp(f.detected_at).date()).days


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#111;max-width:980px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;border-bottom:2px solid #e5e7eb;padding-bottom:4px;margin-top:28px}
.meta{color:#555;font-size:13px} .finding{border:1px solid #e5e7eb;border-radius:6px;padding:10px 12px;margin:12px 0}
.finding.earlier{background:#fafafa} .finding h3{font-size:15px;margin:0 0 4px}
.kind,.badge{font-size:12px;padding:1px 6px;border-radius:4px;color:#fff}
.change_point{background:#d97706} .outlier{background:#dc2626} .trend{background:#059669}
.badge.new{background:#2563eb} .badge.old{background:#6b7280}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left}
.small{font-size:12px;color:#555} svg.plot{max-width:100%;height:auto}
"""


def _status_rows(windows: dict[str, FamilyWindow], recent: pd.DataFrame, shown: pd.DataFrame, day: str) -> list[dict]:
    rows = []
    for fam, w in windows.items():
        n_recent = int((recent["family"] == fam).sum()) if len(recent) else 0
        n_shown = int((shown["family"] == fam).sum()) if len(shown) else 0
        if w.latest_observation is None:
            latest = "no observation yet"
        else:
            lag = (date.fromisoformat(day) - w.latest_observation.date()).days
            latest = _when(w.latest_observation, fam) + (f" ({lag} days before {day})" if lag > 0 else "")
        if w.start is None:
            window = "none (no observation up to the report date)"
        elif w.frequency == "weekly":
            window = f"the {WEEKLY_WINDOW_OBS} weeks to {w.latest_observation.date()}"
        else:
            window = f"{w.start.date()} to {(w.end - pd.Timedelta(days=1)).date()}"
        rows.append({"family": fam, "title": FAMILY_TITLES[fam], "frequency": w.frequency, "window": window,
                     "latest_observation": latest, "recent": n_recent, "shown": n_shown})
    return rows


def _card(f, day: str, section: str, hist: pd.DataFrame, marks: pd.DataFrame) -> tuple[str, str, dict]:
    esc = html.escape
    title = f"{f.entity} · {f.metric}"
    first = _first_detected(f)
    new = section == "recent" and first.date().isoformat() == day
    badge = ("<span class='badge new'>new today</span> " if new else "") + (
        f"<span class='badge old'>earlier: confirmed {esc(_age(_age_days(f, day)))} before {esc(day)}</span> "
        if section == "earlier" else "")
    when = (f"happened at the observation of {_when(f.occurred_at, f.family)}; confirmed by the observation of "
            f"{_when(f.detected_at, f.family)}; first detected by the platform {first:%Y-%m-%d %H:%M} UTC")
    page = (f"<div class='finding {section}' id='f-{f.finding_id}'><h3>{badge}<span class='kind {f.kind}'>"
            f"{KIND_TITLES[f.kind]}</span> {esc(title)}</h3>"
            f"<div>{esc(_describe(f))}; probability {f.probability:.3f}, surprise {f.surprise:.1f}</div>"
            f"<div class='small'>{esc(when)}</div>"
            f"<div class='small'>{esc(FAMILY_TITLES.get(f.family, f.family))}; from {esc(f.source_asset)} partition "
            f"{esc(str(f.source_partition))}; id {f.finding_id}</div>"
            + svg_plot(hist, marks, title) + "</div>")
    md = (f"| {KIND_TITLES[f.kind]} | {f.entity} {f.metric} | {_when(f.occurred_at, f.family)} | "
          f"{_when(f.detected_at, f.family)} | {first:%Y-%m-%d %H:%M} UTC{' (new)' if new else ''} | "
          f"{f.probability:.3f} | {_describe(f)} |")
    item = {
        "finding_id": f.finding_id, "section": section, "desk": f.desk, "family": f.family, "series_id": f.series_id,
        "entity": f.entity, "metric": f.metric, "unit": f.unit, "kind": f.kind,
        "occurred_at": pd.Timestamp(f.occurred_at).isoformat(),
        "detected_at": pd.Timestamp(f.detected_at).isoformat(),
        "first_detected_at": first.isoformat(), "first_detected_on_report_date": first.date().isoformat() == day,
        "age_days": _age_days(f, day),
        "probability": float(f.probability), "surprise": float(f.surprise),
        "magnitude": mt.finite(float(f.magnitude)) if pd.notna(f.magnitude) else None,
        "magnitude_sd": mt.finite(float(f.magnitude_sd)) if pd.notna(f.magnitude_sd) else None,
        "estimate_before": mt.finite(float(f.estimate_before)) if pd.notna(f.estimate_before) else None,
        "estimate_after": mt.finite(float(f.estimate_after)) if pd.notna(f.estimate_after) else None,
        "source_asset": f.source_asset, "source_partition": f.source_partition,
        "series": [{"time": pd.Timestamp(r.time).isoformat(), "value": mt.finite(float(r.value)),
                    "pred_mean": mt.finite(float(r.pred_mean)) if pd.notna(r.pred_mean) else None,
                    "pred_sd": mt.finite(float(r.pred_sd)) if pd.notna(r.pred_sd) else None}
                   for r in hist.itertuples(index=False)],
    }
    return page, md, item


_MD_HEAD = ["| kind | series | happened | confirmed by | first detected | probability | what |",
            "|---|---|---|---|---|---|---|"]


def render(day: str, top: pd.DataFrame, earlier: pd.DataFrame, recent: pd.DataFrame,
           windows: dict[str, FamilyWindow], histories: dict[str, pd.DataFrame], marks: pd.DataFrame,
           generated_at: datetime, window_days: int) -> tuple[str, str, dict]:
    """(HTML, Markdown, JSON) of the report."""
    esc = html.escape
    shown = pd.concat([x for x in (top, earlier) if len(x)], ignore_index=True) if len(top) or len(earlier) else top
    counts = {d: int((shown["desk"] == d).sum()) if len(shown) else 0 for d in DESKS}
    status = _status_rows(windows, recent, shown, day)
    meaning = (f"Recent means, per family: daily families (market per day and per minute, platform): confirmed by an "
               f"observation of the {window_days} UTC days to {day}; weekly families (WPSR, COT): confirmed by one of "
               f"their last {WEEKLY_WINDOW_OBS} weekly observations up to their latest at or before {day}. A family "
               f"with nothing recent shows its latest {EARLIER_PER_FAMILY} earlier findings, marked 'earlier'. Each "
               "finding says when it happened, which observation confirmed it and when the platform first "
               "detected it.")
    h = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Daily report {day}</title>"
         f"<style>{CSS}</style></head><body>",
         f"<h1>Daily report {esc(day)}</h1>",
         f"<p class='meta'>{len(recent)} recent findings, the {len(top)} best shown (one per series, at most "
         f"{PER_DESK} per desk, ranked by probability x size); {len(earlier)} earlier findings of families with "
         f"nothing recent. Generated {generated_at:%Y-%m-%d %H:%M} UTC by the platform's online Bayesian "
         f"detectors.</p><p class='meta'>{esc(meaning)}</p>",
         "<table id='families'><tr><th>family</th><th>frequency</th><th>recent window</th>"
         "<th>latest observation</th><th>recent findings</th><th>shown</th></tr>"
         + "".join(f"<tr><td>{esc(r['title'])}</td><td>{r['frequency']}</td><td>{esc(r['window'])}</td>"
                   f"<td>{esc(r['latest_observation'])}</td><td>{r['recent']}</td><td>{r['shown']}</td></tr>"
                   for r in status) + "</table>",
         "<h2 id='recent'>Recent findings</h2>"]
    md = [f"# Daily report {day}", "", f"{len(recent)} recent findings, the {len(top)} best shown; {len(earlier)} "
          "earlier findings of families with nothing recent. Plots are in the HTML version.", "", meaning, "",
          "| family | frequency | recent window | latest observation | recent | shown |", "|---|---|---|---|---|---|"]
    md += [f"| {r['title']} | {r['frequency']} | {r['window']} | {r['latest_observation']} | {r['recent']} | "
           f"{r['shown']} |" for r in status]
    md += ["", "## Recent findings", ""]
    items = []

    def cards(rows: pd.DataFrame, section: str) -> None:
        md.extend(_MD_HEAD)
        for f in rows.itertuples(index=False):
            mk = marks[marks["series_id"] == f.series_id] if len(marks) else marks
            page, line, item = _card(f, day, section, histories.get(f.finding_id, pd.DataFrame()), mk)
            h.append(page)
            md.append(line)
            items.append(item)
        md.append("")

    if top.empty:
        h.append("<p class='small'>No family has a finding in its recent window.</p>")
        md += ["No family has a finding in its recent window.", ""]
    for desk in DESKS:
        rows = top[top["desk"] == desk] if len(top) else top
        if rows.empty:
            continue
        h.append(f"<h3 id='desk-{desk}'>{DESK_TITLES[desk]}</h3>")
        md += [f"### {DESK_TITLES[desk]}", ""]
        cards(rows, "recent")
    if len(earlier):
        h.append("<h2 id='earlier'>Earlier findings (not new)</h2><p class='small'>The latest findings of the "
                 "families with nothing in their recent window, for context: each was confirmed before the window "
                 "(see its dates).</p>")
        md += ["## Earlier findings (not new)", "", "The latest findings of the families with nothing in their "
               "recent window, for context.", ""]
        for fam in FAMILIES:
            rows = earlier[earlier["family"] == fam]
            if rows.empty:
                continue
            h.append(f"<h3 id='earlier-{fam}'>{esc(FAMILY_TITLES[fam])}</h3>")
            md += [f"### {FAMILY_TITLES[fam]}", ""]
            cards(rows, "earlier")
    h.append("<p class='small'>Band: the detectors' predictive mean ± 2 sd before each observation. Dashed "
             "orange: change points; red circles: outliers; green: trends. Source: reports.findings.</p></body></html>")
    body = {"report_date": day, "window_days": window_days, "weekly_window_observations": WEEKLY_WINDOW_OBS,
            "generated_at": generated_at.isoformat(), "findings_in_window": int(len(recent)),
            "findings_shown": len(items), "findings_recent_shown": int(len(top)),
            "findings_earlier_shown": int(len(earlier)), "desks": counts, "recent_means": meaning,
            "families": {fam: {**windows[fam].as_json(), "title": FAMILY_TITLES[fam],
                               "recent": r["recent"], "shown": r["shown"]}
                         for fam, r in zip(windows, status, strict=True)},
            "findings": items}
    return "".join(h), "\n".join(md) + "\n", body


def build_report(lake_root: Path, warehouse, day: str, *, window_days: int = WINDOW_DAYS,
                 generated_at: datetime | None = None) -> BuiltReport:
    """Build and publish the report of `day`: bodies to the lake (written, then renamed), then its row."""
    generated_at = generated_at or datetime.now(UTC)
    windows = family_windows(lake_root, day, window_days)
    recent = recent_findings(warehouse, windows, day)
    top = select_top(recent)
    earlier = earlier_findings(warehouse, windows, recent, day)
    shown = pd.concat([x for x in (top, earlier) if len(x)], ignore_index=True) if len(top) or len(earlier) else top
    histories = finding_histories(lake_root, shown, day) if len(shown) else {}
    marks = (warehouse.query_df("SELECT * FROM reports.findings WHERE series_id IN :s AND detected_at < :b",
                                {"s": sorted(set(shown["series_id"])), "b": _day_end(day).to_pydatetime()})
             if len(shown) else pd.DataFrame(columns=["series_id"]))
    page, markdown, body = render(day, top, earlier, recent, windows, histories, marks, generated_at, window_days)
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
                       body["findings_in_window"], digest, body["desks"], body["findings_recent_shown"])
