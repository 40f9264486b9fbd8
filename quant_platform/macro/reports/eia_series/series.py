"""The EIA series the eia_series report tracks, with where each lives in dnav and in API v2.

Never key anything on a series label: labels change, series ids do not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from quant_platform.macro.reports.eia_series.routes import API_V2, DNAV_HISTORY


@dataclass(frozen=True)
class EiaSeries:
    series_id: str
    label: str
    frequency: str  # W, D, M
    api_route: str  # EIA API v2 route under /v2/


# Real recorded API v2 answers of these routes are in sample_data/eia/api_v2 (see SOURCES.md there):
# WCESTUS1 answers exactly the query api_v2_request builds. WCRRIUS2 is recorded on petroleum/pnp/wiup with
# extra facets and a one-week window, and EIA serves it on petroleum/sum/sndw as well; RWTC is recorded at
# frequency=weekly with extra facets (this table asks daily). No recording covers WCSSTUS1, WCRFPUS2,
# WCRIMUS2, WCREXUS2 or petroleum/crd/wkly. The routes are unchanged here on purpose.
SERIES: dict[str, EiaSeries] = {s.series_id: s for s in (
    EiaSeries("WCESTUS1", "U.S. commercial crude oil stocks excluding SPR (thousand barrels)", "W",
              "petroleum/stoc/wstk"),
    EiaSeries("WCSSTUS1", "U.S. crude oil stocks in the SPR (thousand barrels)", "W", "petroleum/stoc/wstk"),
    EiaSeries("WCRFPUS2", "U.S. field production of crude oil (thousand barrels per day)", "W",
              "petroleum/crd/wkly"),
    EiaSeries("WCRIMUS2", "U.S. imports of crude oil (thousand barrels per day)", "W", "petroleum/move/wkly"),
    EiaSeries("WCREXUS2", "U.S. exports of crude oil (thousand barrels per day)", "W", "petroleum/move/wkly"),
    EiaSeries("WCRRIUS2", "U.S. refiner net input of crude oil (thousand barrels per day)", "W",
              "petroleum/pnp/wiup"),
    EiaSeries("RWTC", "Cushing, OK WTI spot price FOB (dollars per barrel)", "D", "petroleum/pri/spt"),
)}


def configured_series() -> list[str]:
    """Series loaded by this deployment: QP_EIA_SERIES (comma-separated ids) or every known series."""
    raw = os.environ.get("QP_EIA_SERIES", "").strip()
    ids = [s.strip().upper() for s in raw.split(",") if s.strip()] if raw else list(SERIES)
    unknown = [s for s in ids if s not in SERIES]
    if unknown:
        from quant_platform.errors import ConfigError

        raise ConfigError(f"QP_EIA_SERIES names unknown series {unknown}; known: {sorted(SERIES)}")
    return ids


def dnav_url(base_url: str, series_id: str) -> str:
    return base_url + DNAV_HISTORY.path_for(series_id=series_id, frequency=SERIES[series_id].frequency)


def api_v2_request(base_url: str, series_id: str, api_key: str, offset: int, length: int = 5000):
    s = SERIES[series_id]
    freq = {"W": "weekly", "D": "daily", "M": "monthly"}[s.frequency]
    params = {
        "api_key": api_key, "frequency": freq, "data[0]": "value", "facets[series][]": series_id,
        "sort[0][column]": "period", "sort[0][direction]": "desc", "offset": offset, "length": length,
    }
    return base_url + API_V2.path_for(api_route=s.api_route), params
