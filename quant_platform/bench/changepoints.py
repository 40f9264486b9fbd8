"""`quant-platform bench changepoints`: the online detectors with their default parameters over real series with
published human annotations (a subset of the Turing Change Point Dataset, in sample_data/changepoints), scored
with the dataset's own F1 (margin 5) and segmentation cover, next to two baselines computed in the same run:
"no change point" and an offline method (ruptures' binary segmentation, a penalty fixed in advance).

Never tune anything per series here and never read a file outside the package: the series travel with it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from quant_platform.platform.sample_data import sample_file
from quant_platform.reports.detectors import CHANGE_POINT, DetectorBank, DetectorParams

MARGIN = 5
DATASET = "changepoints"
# Binary segmentation baseline: least-squares cost on the series divided by its robust noise scale (MAD of
# first differences), penalty 2 log(n) per change point (BIC for a mean change with unit variance).
BINSEG_MODEL = "l2"
BINSEG_MIN_SIZE = 2


def series_names() -> list[str]:
    folder = sample_file(f"{DATASET}/annotations.json").parent / "series"
    return sorted(p.stem for p in folder.glob("*.json"))


def load_series(name: str) -> np.ndarray:
    """Values of a TCPD series (one dimension); missing values as NaN."""
    data = json.loads(sample_file(f"{DATASET}/series/{name}.json").read_text())
    if data.get("n_dim", 1) != 1:
        raise ValueError(f"{name} has {data['n_dim']} dimensions; the benchmark takes univariate series")
    raw = data["series"][0]["raw"]
    return np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)


def load_annotations() -> dict[str, dict[str, list[int]]]:
    return json.loads(sample_file(f"{DATASET}/annotations.json").read_text())


# ------------------------------------------------------------------------------ metrics (TCPD's definitions)
def true_positives(truth: set[int], predicted: set[int], margin: int = MARGIN) -> set[int]:
    """Annotated points matched by a prediction within `margin`, each prediction used at most once."""
    left = set(predicted)
    hits = set()
    for tau in sorted(truth):
        close = sorted((abs(tau - x), x) for x in left if abs(tau - x) <= margin)
        if close:
            hits.add(tau)
            left.remove(close[0][1])
    return hits


def f1_score(annotations: dict[str, list[int]], predicted: list[int], margin: int = MARGIN) -> tuple[float, float, float]:
    """(F1, precision, recall): precision against the union of the annotators, recall averaged over them; the
    start of the series counts as a change point in every set."""
    sets = [set(v) | {0} for v in annotations.values()]
    pred = set(predicted) | {0}
    union = set().union(*sets)
    precision = len(true_positives(union, pred, margin)) / len(pred)
    recall = sum(len(true_positives(s, pred, margin)) / len(s) for s in sets) / len(sets)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return f1, precision, recall


def _segments(cps: list[int], n: int) -> list[tuple[int, int]]:
    bounds = sorted({c for c in cps if 0 < c < n})
    edges = [0, *bounds, n]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _cover_single(truth: list[tuple[int, int]], predicted: list[tuple[int, int]], n: int) -> float:
    total = 0.0
    for a0, a1 in truth:
        best = 0.0
        for b0, b1 in predicted:
            inter = max(0, min(a1, b1) - max(a0, b0))
            if inter:
                best = max(best, inter / (max(a1, b1) - min(a0, b0)))
        total += (a1 - a0) * best
    return total / n


def cover_score(annotations: dict[str, list[int]], predicted: list[int], n: int) -> float:
    """Segmentation covering of each annotator's partition by the predicted one, averaged over annotators."""
    pred = _segments(predicted, n)
    return sum(_cover_single(_segments(v, n), pred, n) for v in annotations.values()) / len(annotations)


def clean(locations, n: int) -> list[int]:
    """As TCPD scores every method: distinct indices in 1 .. n-2."""
    return sorted({int(x) for x in locations if 1 <= x < n - 1})


# ------------------------------------------------------------------------------ methods
def online_detector(series: dict[str, np.ndarray], params: DetectorParams | None = None) -> dict[str, list[int]]:
    """All series through one DetectorBank (vectorised), observation index as time; change-point locations."""
    bank = DetectorBank(params)
    names, times, values = [], [], []
    for name, x in series.items():
        names += [name] * len(x)
        times.append(np.arange(len(x), dtype=np.int64))
        values.append(x)
    found = bank.run(np.array(names, dtype=object), np.concatenate(times), np.concatenate(values))
    out: dict[str, list[int]] = {name: [] for name in series}
    for row, kind, t in zip(found.series, found.kind, found.time, strict=True):
        if kind == CHANGE_POINT:
            out[bank.series_ids[row]].append(int(t))
    return out


def binary_segmentation(x: np.ndarray) -> list[int]:
    """ruptures Binseg, l2 cost, on the series over its robust noise scale; penalty 2 log(n) fixed in advance.
    Missing values are interpolated linearly (the method needs a complete series)."""
    import ruptures as rpt

    y = x.copy()
    bad = ~np.isfinite(y)
    if bad.any():
        idx = np.arange(len(y))
        y[bad] = np.interp(idx[bad], idx[~bad], y[~bad])
    d = np.diff(y)
    scale = np.median(np.abs(d - np.median(d))) * 1.4826 / math.sqrt(2)
    if not scale > 0:
        scale = float(np.std(y)) or 1.0
    algo = rpt.Binseg(model=BINSEG_MODEL, min_size=BINSEG_MIN_SIZE, jump=1).fit((y / scale).reshape(-1, 1))
    return [b for b in algo.predict(pen=2 * math.log(len(y))) if b < len(y)]


def run_changepoint_benchmark(names: list[str] | None = None) -> dict:
    annotations = load_annotations()
    names = names or series_names()
    series = {n: load_series(n) for n in names}
    t0 = time.perf_counter()
    online = online_detector(series)
    online_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    binseg = {n: binary_segmentation(x) for n, x in series.items()}
    binseg_s = time.perf_counter() - t1
    methods = {"online_bayesian": online, "zero": {n: [] for n in names}, "binseg": binseg}
    per_series = {}
    totals = {m: {"f1": 0.0, "cover": 0.0} for m in methods}
    for n in names:
        size = len(series[n])
        row = {"n_obs": size, "annotators": len(annotations[n]),
               "annotated": sorted({c for v in annotations[n].values() for c in v})}
        for m, found in methods.items():
            locs = clean(found[n], size)
            f1, prec, rec = f1_score(annotations[n], locs)
            cover = cover_score(annotations[n], locs, size)
            row[m] = {"f1": round(f1, 4), "precision": round(prec, 4), "recall": round(rec, 4),
                      "cover": round(cover, 4), "change_points": locs}
            totals[m]["f1"] += f1
            totals[m]["cover"] += cover
        per_series[n] = row
    mean = {m: {k: round(v / len(names), 4) for k, v in t.items()} for m, t in totals.items()}
    ours = mean["online_bayesian"]
    beats = {b: {"f1": ours["f1"] > mean[b]["f1"], "cover": ours["cover"] > mean[b]["cover"]}
             for b in ("zero", "binseg")}
    return {
        "benchmark": "changepoints",
        "dataset": "Turing Change Point Dataset (van den Burg & Williams 2020), univariate series with a "
                   "redistributable licence; see quant_platform/sample_data/SOURCES.md",
        "series": len(names),
        "observations": int(sum(len(x) for x in series.values())),
        "margin": MARGIN,
        "parameters": json.loads(DetectorParams().to_json()),
        "baselines": {"zero": "no change point", "binseg": f"ruptures Binseg model={BINSEG_MODEL}, min_size="
                      f"{BINSEG_MIN_SIZE}, series / robust noise scale, penalty 2 log(n)"},
        "mean": mean,
        "goal": "beat both baselines on mean F1 and mean cover",
        "beats": beats,
        "goal_met": all(all(v.values()) for v in beats.values()),
        "seconds": {"online_bayesian": round(online_s, 3), "binseg": round(binseg_s, 3)},
        "per_series": per_series,
    }


def summary_line(result: dict) -> str:
    m = result["mean"]
    return " | ".join(f"{k}: F1 {v['f1']:.3f} cover {v['cover']:.3f}" for k, v in m.items())


if __name__ == "__main__":  # pragma: no cover - a developer's shortcut
    res = run_changepoint_benchmark()
    print(summary_line(res))
    for name, row in res["per_series"].items():
        print(f"{name:20} " + " ".join(f"{m[:6]} {row[m]['f1']:.2f}/{row[m]['cover']:.2f}"
                                       for m in ("online_bayesian", "zero", "binseg")),
              row["online_bayesian"]["change_points"], Path(name).name and row["annotated"])
