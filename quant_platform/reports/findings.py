"""Runs the detectors of one metric family over its new observations and records what they find: detector
state is checkpointed in the lake (reports/detector_state/family=F/), so a run continues exactly where the last
one stopped, and a chunk that changed behind the watermark (a late or re-materialized day) rewinds to the
newest checkpoint before it and replays from there. Findings go to reports.findings, each observation's
predictive mean and sd to reports/scored/family=F/ for the report's plots.

Never write findings or a checkpoint that another run could half-see: the warehouse rows of a run are one
transaction, and the manifest that names the checkpoints is replaced (renamed) only after them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quant_platform.errors import QuantPlatformError
from quant_platform.reports import metrics as mt
from quant_platform.reports.detectors import _STATE, DetectorBank, DetectorParams
from quant_platform.reports.tables import FINDINGS

DETECTOR_VERSION = "detectors.v1"
STATE_DIR = "reports/detector_state"
SCORED_DIR = "reports/scored"
KEEP_CHECKPOINTS = 5
ENV_ALERT_PROBABILITY = "QP_FINDING_ALERT_PROBABILITY"
DEFAULT_ALERT_PROBABILITY = 0.99
MAX_ALERT_FINDINGS = 50
# Families whose every scored observation is kept; the per-minute family keeps only series with a finding.
SCORE_ALL = {"market_daily", "macro_wpsr", "macro_cot", "platform"}


class DetectorStateError(QuantPlatformError):
    """A detector checkpoint or manifest is unreadable or does not match the detector version."""

    def __init__(self, family: str, path: Path, reason: str):
        self.family, self.path, self.reason = family, path, reason
        super().__init__(f"detector state of family {family} at {path}: {reason}")


def alert_probability() -> float:
    from quant_platform.platform.settings import bounded_env

    return float(bounded_env(ENV_ALERT_PROBABILITY, DEFAULT_ALERT_PROBABILITY, 0.0, 1.0))


def params_version(params: DetectorParams) -> str:
    return f"{DETECTOR_VERSION}:{hashlib.sha1(params.to_json().encode()).hexdigest()[:10]}"


# ------------------------------------------------------------------------------ checkpoints
def save_bank(bank: DetectorBank, path: Path, watermark: int | None) -> None:
    """The whole detector state as one Parquet file: a row per series, a column per state array."""
    cols: dict[str, pa.Array] = {"series_id": pa.array(bank.series_ids, pa.string())}
    for name in _STATE:
        arr = bank.arrays[name]
        if arr.ndim == 1:
            cols[name] = pa.array(arr)
        else:
            flat = pa.array(arr.reshape(-1))
            cols[name] = pa.FixedSizeListArray.from_arrays(flat, arr.shape[1])
    table = pa.table(cols).replace_schema_metadata({
        b"qp_params": bank.params.to_json().encode(), b"qp_watermark": str(watermark).encode(),
        b"qp_version": DETECTOR_VERSION.encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def load_bank(path: Path, family: str) -> tuple[DetectorBank, int | None]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DetectorStateError(family, path, f"unreadable checkpoint ({exc})") from exc
    meta = table.schema.metadata or {}
    if meta.get(b"qp_version", b"").decode() != DETECTOR_VERSION:
        raise DetectorStateError(family, path, f"written by {meta.get(b'qp_version', b'?').decode()}, this "
                                 f"code is {DETECTOR_VERSION} (replay the family)")
    bank = DetectorBank(DetectorParams.from_json(meta[b"qp_params"].decode()))
    ids = table.column("series_id").to_pylist()
    bank.rows(ids)
    for name in _STATE:
        col = table.column(name).combine_chunks()
        dtype = _STATE[name][1]
        if pa.types.is_fixed_size_list(col.type):
            arr = col.flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(len(ids), col.type.list_size)
        else:
            arr = col.to_numpy(zero_copy_only=False).astype(dtype)
        bank.arrays[name] = arr.copy()
    wm = meta.get(b"qp_watermark", b"None").decode()
    return bank, None if wm == "None" else int(wm)


@dataclass
class FamilyManifest:
    params: str = ""
    checkpoints: list[dict] = field(default_factory=list)  # oldest first: {"watermark", "file", "observations"}
    consumed: dict[str, dict] = field(default_factory=dict)  # chunk -> {"hash", "min_time"}

    @staticmethod
    def path(lake_root: Path, family: str) -> Path:
        return lake_root / STATE_DIR / f"family={family}" / "manifest.json"

    @classmethod
    def load(cls, lake_root: Path, family: str) -> FamilyManifest:
        p = cls.path(lake_root, family)
        if not p.exists():
            return cls()
        try:
            data = json.loads(p.read_text())
            return cls(params=data["params"], checkpoints=list(data["checkpoints"]), consumed=dict(data["consumed"]))
        except (ValueError, KeyError) as exc:
            raise DetectorStateError(family, p, f"unreadable manifest ({exc})") from exc

    def save(self, lake_root: Path, family: str) -> None:
        p = self.path(lake_root, family)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(".manifest.json.tmp")
        tmp.write_text(json.dumps({"params": self.params, "checkpoints": self.checkpoints,
                                   "consumed": self.consumed}, indent=1, sort_keys=True))
        tmp.replace(p)


# ------------------------------------------------------------------------------ one run
@dataclass
class FamilyRun:
    family: str
    observations: int
    findings: pd.DataFrame
    resumed_from: int | None  # watermark of the checkpoint the run started from (None: from scratch)
    watermark: int | None
    rewound: bool
    series: int
    seconds: float
    alert_candidates: list[dict]

    def metadata(self) -> dict:
        kinds = self.findings["kind"].value_counts().to_dict() if len(self.findings) else {}
        latest = (pd.Timestamp(self.findings["detected_at"].max()).date().isoformat() if len(self.findings)
                  else (pd.Timestamp(self.watermark, tz="UTC").date().isoformat() if self.watermark else None))
        return {"family": self.family, "observations": self.observations, "series": self.series,
                "findings": len(self.findings), **{f"findings.{k}": int(v) for k, v in sorted(kinds.items())},
                "resumed_from": _iso(self.resumed_from), "watermark": _iso(self.watermark), "rewound": self.rewound,
                "latest_day": latest, "seconds": round(self.seconds, 3)}


def _iso(ns: int | None) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat() if ns is not None else "none"


def run_family(lake_root: Path, family: str, warehouse, *, replay: bool = False,
               params: DetectorParams | None = None, now: datetime | None = None) -> FamilyRun:
    """Feed `family`'s observations newer than its checkpoint to the detectors; write findings, scored
    observations and a new checkpoint. `replay` starts from an empty state (same result as the incremental
    runs that led here, by construction)."""
    import time

    t_start = time.perf_counter()
    params = params or DetectorParams()
    manifest = FamilyManifest.load(lake_root, family)
    chunks = mt.list_chunks(lake_root, family)
    current = {c.chunk: c for c in chunks}
    restart = replay or manifest.params != params.to_json() or not manifest.checkpoints
    if restart:
        start_before = None
    else:
        changed = [c.min_time for c in chunks if manifest.consumed.get(c.chunk, {}).get("hash") != c.content_hash]
        changed += [v["min_time"] for k, v in manifest.consumed.items() if k not in current]
        start_before = min(changed) if changed else None
        if start_before is None and manifest.checkpoints:
            # nothing new: the state and the findings already reflect every chunk
            return FamilyRun(family, 0, _empty_findings(), manifest.checkpoints[-1]["watermark"],
                             manifest.checkpoints[-1]["watermark"], False, 0, time.perf_counter() - t_start, [])
    state_dir = FamilyManifest.path(lake_root, family).parent
    usable = [] if restart else [c for c in manifest.checkpoints
                                 if c["watermark"] is not None and c["watermark"] < start_before]
    if usable:
        ckpt = usable[-1]
        bank, resumed = load_bank(state_dir / ckpt["file"], family)
    else:
        bank, resumed = DetectorBank(params), None
    rewound = bool(manifest.checkpoints) and (not usable or usable[-1] is not manifest.checkpoints[-1])
    obs = _read_with_chunk(chunks, resumed)
    scored: dict = {}
    found = bank.run(obs["series_id"].to_numpy(dtype=object), obs["time"].astype("int64").to_numpy(),
                     obs["value"].to_numpy(dtype=np.float64), scored)
    version = params_version(params)
    findings = _findings_frame(found, bank, obs, chunks, family, version, now or datetime.now(UTC))
    watermark = int(obs["time"].astype("int64").max()) if len(obs) else resumed

    _write_findings(warehouse, family, findings, resumed)
    _write_scored(lake_root, family, bank, scored, obs, resumed, set(findings["series_id"]))
    name = f"checkpoint-{watermark}.parquet" if watermark is not None else "checkpoint-empty.parquet"
    save_bank(bank, state_dir / name, watermark)
    kept = [c for c in manifest.checkpoints if resumed is not None and c["watermark"] is not None
            and c["watermark"] <= resumed]
    kept = [*kept, {"watermark": watermark, "file": name, "observations": int(len(obs))}][-KEEP_CHECKPOINTS:]
    for old in manifest.checkpoints:
        if old["file"] not in {c["file"] for c in kept}:
            (state_dir / old["file"]).unlink(missing_ok=True)
    manifest = FamilyManifest(params=params.to_json(), checkpoints=kept,
                              consumed={c.chunk: {"hash": c.content_hash, "min_time": c.min_time} for c in chunks})
    manifest.save(lake_root, family)
    threshold = alert_probability()
    alerts = findings[findings["probability"] >= threshold].sort_values(["probability", "score"], ascending=False)
    candidates = [{"finding_id": r.finding_id, "series_id": r.series_id, "desk": r.desk, "kind": r.kind,
                   "occurred_at": pd.Timestamp(r.occurred_at).isoformat(), "probability": float(r.probability),
                   "magnitude": None if pd.isna(r.magnitude) else float(r.magnitude), "unit": r.unit,
                   "estimate_before": mt.finite(float(r.estimate_before)),
                   "estimate_after": mt.finite(float(r.estimate_after)), "source_asset": r.source_asset,
                   "source_partition": r.source_partition}
                  for r in alerts.head(MAX_ALERT_FINDINGS).itertuples(index=False)]
    return FamilyRun(family, int(len(obs)), findings, resumed, watermark, rewound, len(bank.series_ids),
                     time.perf_counter() - t_start, candidates)


def _read_with_chunk(chunks: list[mt.Chunk], after: int | None) -> pd.DataFrame:
    frames = []
    for c in chunks:
        if after is not None and c.max_time <= after:
            continue
        df = pq.read_table(c.path).to_pandas()
        df["time"] = df["time"].dt.as_unit("ns")
        if after is not None:
            df = df[df["time"].astype("int64") > after]
        frames.append(df.assign(chunk=c.chunk))
    if not frames:
        return mt._frame({}).assign(chunk=pd.Series(dtype=object))
    return pd.concat(frames, ignore_index=True).sort_values(["time", "series_id"], ignore_index=True)


def _empty_findings() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDINGS.column_names})


def finding_id(series_id: str, kind: str, occurred_ns: int) -> str:
    return hashlib.sha1(f"{series_id}|{kind}|{occurred_ns}".encode()).hexdigest()[:20]


def _findings_frame(found, bank: DetectorBank, obs: pd.DataFrame, chunks: list[mt.Chunk], family: str,
                    version: str, now: datetime) -> pd.DataFrame:
    if not len(found):
        return _empty_findings()
    f = pd.DataFrame(found.columns())
    f["series_id"] = [bank.series_ids[i] for i in f["series"]]
    meta = obs.drop_duplicates("series_id", keep="last").set_index("series_id")
    lineage = {(s, int(t)): (a, p) for s, t, a, p in zip(obs["series_id"], obs["time"].astype("int64"),
                                                         obs["source_asset"], obs["source_partition"], strict=True)}
    missing = [(s, int(t)) for s, t in zip(f["series_id"], f["time"], strict=True) if (s, int(t)) not in lineage]
    if missing:  # the finding starts at an observation of an earlier run: look it up in its chunk
        need = {t for _, t in missing}
        older = mt.read_observations([c for c in chunks if any(c.min_time <= t <= c.max_time for t in need)])
        for s, t, a, p in zip(older["series_id"], older["time"].astype("int64"), older["source_asset"],
                              older["source_partition"], strict=True):
            lineage.setdefault((s, int(t)), (a, p))
    if len(meta) < f["series_id"].nunique():
        everything = mt.read_observations(chunks).drop_duplicates("series_id", keep="last").set_index("series_id")
        meta = pd.concat([meta, everything[~everything.index.isin(meta.index)]])
    src = [lineage.get((s, int(t)), ("unknown", "unknown")) for s, t in zip(f["series_id"], f["time"], strict=True)]
    out = pd.DataFrame({
        "finding_id": [finding_id(s, k, int(t)) for s, k, t in zip(f["series_id"], f["kind"], f["time"], strict=True)],
        "family": family,
        "series_id": f["series_id"],
        "desk": f["series_id"].map(meta["desk"]),
        "entity": f["series_id"].map(meta["entity"]),
        "metric": f["series_id"].map(meta["metric"]),
        "unit": f["series_id"].map(meta["unit"]),
        "kind": f["kind"],
        "occurred_at": pd.to_datetime(f["time"], utc=True),
        "detected_at": pd.to_datetime(f["detected_time"], utc=True),
        "probability": f["probability"].clip(0, 1),
        "surprise": f["surprise"].clip(lower=0),
        "magnitude": f["magnitude"],
        "magnitude_sd": f["magnitude_sd"],
        "estimate_before": f["estimate_before"],
        "estimate_after": f["estimate_after"],
        "score": (f["probability"].clip(0, 1) * np.minimum(np.abs(f["magnitude_sd"]).fillna(0), 10) / 10).round(6),
        "source_asset": [a for a, _ in src],
        "source_partition": [p for _, p in src],
        "detector_version": version,
        "recorded_at": pd.Timestamp(now),
    })
    return out.drop_duplicates("finding_id", keep="last").reset_index(drop=True)


def _write_findings(warehouse, family: str, findings: pd.DataFrame, resumed: int | None) -> None:
    """Replace the family's findings detected after the checkpoint the run resumed from, in one transaction. A
    finding found again (same finding_id: a rewind, a replay) keeps the recorded_at of its first recording, so
    the report can tell an analyst when the platform first detected it."""
    where, params = "family = :family", {"family": family}
    if resumed is not None:
        where += " AND detected_at > :after"
        params["after"] = pd.Timestamp(resumed, tz="UTC").to_pydatetime()
    with warehouse.transaction() as con:
        if len(findings):
            old = warehouse.run(con, f"SELECT finding_id, recorded_at FROM reports.findings WHERE {where}",  # noqa: S608
                                params) or []
            first = {fid: pd.Timestamp(at) for fid, at in old}
            if first:
                findings = findings.copy()
                findings["recorded_at"] = [
                    min(pd.Timestamp(now), _utc(first[fid])) if fid in first else pd.Timestamp(now)
                    for fid, now in zip(findings["finding_id"], findings["recorded_at"], strict=True)]
        warehouse.run(con, f"DELETE FROM reports.findings WHERE {where}", params)  # noqa: S608
        if len(findings):
            warehouse.append_rows(FINDINGS, findings, con=con)


def _utc(t: pd.Timestamp) -> pd.Timestamp:
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def scored_path(lake_root: Path, family: str, chunk: str) -> Path:
    return lake_root / SCORED_DIR / f"family={family}" / f"chunk={chunk}" / "scored.parquet"


def _write_scored(lake_root: Path, family: str, bank: DetectorBank, scored: dict, obs: pd.DataFrame,
                  resumed: int | None, flagged: set[str]) -> None:
    """Each observation's predictive mean and sd, per chunk; rows after the resume point are replaced."""
    if not scored:
        return
    rows = np.concatenate(scored["row"])
    frame = pd.DataFrame({
        "series_id": np.asarray(bank.series_ids, dtype=object)[rows],
        "time": pd.to_datetime(np.concatenate(scored["time"]), utc=True),
        "value": np.concatenate(scored["value"]),
        "pred_mean": np.concatenate(scored["pred_mean"]),
        "pred_sd": np.concatenate(scored["pred_sd"]),
    })
    if family not in SCORE_ALL:
        frame = frame[frame["series_id"].isin(flagged)]
    chunk_of = {(s, int(t)): c for s, t, c in zip(obs["series_id"], obs["time"].astype("int64"), obs["chunk"],
                                                  strict=True)}
    frame["chunk"] = [chunk_of.get((s, int(t))) for s, t in zip(frame["series_id"], frame["time"].astype("int64"),
                                                                strict=True)]
    touched = set(obs["chunk"].unique())
    for chunk in sorted(touched):
        path = scored_path(lake_root, family, chunk)
        new = frame[frame["chunk"] == chunk].drop(columns="chunk")
        if path.exists() and resumed is not None:
            old = pq.read_table(path).to_pandas()
            old["time"] = old["time"].dt.as_unit("ns")
            old = old[old["time"].astype("int64") <= resumed]
            new = pd.concat([old, new], ignore_index=True)
        new = new.sort_values(["time", "series_id"], ignore_index=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".scored.parquet.tmp")
        pq.write_table(pa.Table.from_pandas(new, preserve_index=False), tmp, compression="zstd")
        os.replace(tmp, path)


def read_scored(lake_root: Path, family: str, series: set[str], since_ns: int, until_ns: int) -> pd.DataFrame:
    folder = lake_root / SCORED_DIR / f"family={family}"
    frames = []
    for p in sorted(folder.glob("chunk=*/scored.parquet")):
        t = pq.read_table(p, filters=[("series_id", "in", sorted(series))])
        df = t.to_pandas()
        df["time"] = df["time"].dt.as_unit("ns")
        ts = df["time"].astype("int64")
        frames.append(df[(ts >= since_ns) & (ts <= until_ns)])
    if not frames:
        return pd.DataFrame(columns=["series_id", "time", "value", "pred_mean", "pred_sd"])
    return pd.concat(frames, ignore_index=True)
