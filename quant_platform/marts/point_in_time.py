"""What the marts knew when: the version of a value that was the platform's knowledge at a given time.

Never read a version that became known after the time asked for, unless no version was known then at all.

The macro tables keep every version of a row (<table>_versions: valid_from, superseded_at NULL while current). A
mart row computed at time t (its own valid_from) reads each input as known at t: the version with
valid_from <= t < superseded_at. A value the platform had no version of at t (history loaded after the row, by a
backfill) counts with its first version: the vendor had published it by then, and the first version the
platform holds is the nearest to what was published.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

VERSION_COLUMNS = ("valid_from", "superseded_at")


def with_version_times(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with valid_from and superseded_at as UTC timestamps (NaT while current)."""
    out = frame.copy()
    for col in VERSION_COLUMNS:
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


def current_versions(frame: pd.DataFrame) -> pd.DataFrame:
    """The current version of every row (superseded_at NULL)."""
    return frame[frame["superseded_at"].isna()].copy()


def revised_keys(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The keys that have more than one version (a revision was loaded, or a row was dropped)."""
    return frame.loc[frame["superseded_at"].notna(), list(keys)].drop_duplicates()


def value_known_at(versions: pd.DataFrame, keys: Sequence[str], value: str, requests: pd.DataFrame) -> pd.Series:
    """For each request (its `keys` and a time `at`), `value` of the version known at `at`; a key without a
    version known then takes its first version; a key without any version is NaN. Aligned with requests' index."""
    keys = list(keys)
    if requests.empty:
        return pd.Series(dtype="float64", index=requests.index)
    req = requests[keys + ["at"]].copy()
    req["at"] = pd.to_datetime(req["at"], utc=True)
    req["_request"] = range(len(req))
    pairs = req.merge(versions[keys + ["valid_from", "superseded_at", value]], on=keys, how="left")
    known = (pairs["valid_from"] <= pairs["at"]) & (pairs["superseded_at"].isna() | (pairs["superseded_at"] > pairs["at"]))
    # Known at the time first, then the earliest version: the first row per request is the answer.
    pairs["_rank"] = (~known).astype(int)
    pairs = pairs.sort_values(["_request", "_rank", "valid_from"], kind="stable")
    first = pairs.drop_duplicates("_request").set_index("_request")[value]
    return pd.Series(first.reindex(range(len(req))).to_numpy(), index=requests.index)
