"""Where EIA serves a series' history (dnav and API v2), and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import EIA_API, EIA_WWW, Route
from quant_platform.vendors.eia import ApiRecording, api_recordings, dnav_history_file

# A series' page on EIA's Petroleum Navigator (e.g. https://www.eia.gov/dnav/pet/hist/LeafHandler.ashx?n=PET&s=
# WCESTUS1&f=W); its "Download Series History" CSV is what this route is parsed as. Issue 12: the page itself is
# HTML, EIA's downloadable file is /dnav/pet/hist_xls/<SERIES><w|d|m>.xls (sheet "Data 1").
DNAV_HISTORY = Route(EIA_WWW, "/dnav/pet/hist/LeafHandler.ashx?n=PET&s={series_id}&f={frequency}",
                     dataset="series_dnav", ext="csv",
                     documented_at="https://www.eia.gov/dnav/pet/hist/LeafHandler.ashx?n=PET&s=WCESTUS1&f=W")
# EIA API v2, one data route per table ({api_route}, e.g. petroleum/stoc/wstk), documented at
# https://www.eia.gov/opendata/documentation.php; needs QP_EIA_API_KEY.
API_V2 = Route(EIA_API, "/v2/{api_route}/data/", dataset="series_api_v2", ext="json",
               documented_at="https://www.eia.gov/opendata/documentation.php")

# A real dnav history CSV of WCESTUS1 (origin in sample_data/SOURCES.md), served verbatim on its dnav route.
DNAV_WCESTUS1_SAMPLE = "eia/dnav_WCESTUS1_weekly.csv"
DNAV_WCESTUS1_PATH = DNAV_HISTORY.path_for(series_id="WCESTUS1", frequency="W")
# The API route whose unrecorded queries the simulator answers from the dnav WCESTUS1 file (a derivation).
API_WSTK_PATH = API_V2.path_for(api_route="petroleum/stoc/wstk")

# Real EIA API v2 answers kept under eia/api_v2/, each served to the query it answered. Where each was recorded,
# and how, is in SOURCES.md. The OpenBB cassettes' queries are given as recorded; myeia's WCESTUS1 query carried
# start=1954-10-14&end=2029-10-14, a window wider than the series (1982-08-20 on), so its answer is the answer to
# the same query without start/end: the query the platform sends (series.api_v2_request), which is the one listed.
EIA_API_RECORDINGS: tuple[ApiRecording, ...] = (
    ApiRecording(
        "eia/api_v2/petroleum-stoc-wstk_WCESTUS1_weekly_period-desc_offset-0_length-5000.json",
        API_WSTK_PATH,
        "frequency=weekly&data[0]=value&facets[series][]=WCESTUS1&sort[0][column]=period"
        "&sort[0][direction]=desc&offset=0&length=5000",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-stoc-wstk_WCRSTUS1_weekly_1982-08-20.json",
        API_WSTK_PATH,
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[process][]=SAE&facets[product][]=EPC0"
        "&facets[series][]=WCRSTUS1&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pnp-wiup_WCRRIUS2_weekly_1982-08-20.json",
        API_V2.path_for(api_route="petroleum/pnp/wiup"),
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[process][]=YIY&facets[product][]=EPC0"
        "&facets[series][]=WCRRIUS2&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-sum-sndw_WCRRIUS2_weekly_1982-08-20.json",
        API_V2.path_for(api_route="petroleum/sum/sndw"),
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[duoarea][]=NUS-Z00&facets[process][]=YIY"
        "&facets[product][]=EPC0&facets[series][]=WCRRIUS2&frequency=weekly&length=5000&offset=0"
        "&sort[0][column]=period&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-move-wkly_WDIIMUS2_weekly_1982-08-20.json",
        API_V2.path_for(api_route="petroleum/move/wkly"),
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS-Z00&facets[process][]=IM0&facets[product][]=EPD0"
        "&facets[series][]=WDIIMUS2&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pri-spt_RWTC_weekly_1986-01-03.json",
        API_V2.path_for(api_route="petroleum/pri/spt"),
        "data[0]=value&end=1986-01-03&facets[duoarea][]=RGC&facets[duoarea][]=Y44MB&facets[duoarea][]=YCUOK"
        "&facets[duoarea][]=ZEU&facets[process][]=PF4&facets[product][]=EPCWTI&facets[series][]=RWTC"
        "&frequency=weekly&length=5000&offset=0&sort[0][column]=period&sort[0][direction]=asc"
        "&start=1986-01-03",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pri-spt_EPCBRENT_monthly_2025-01_2025-03.json",
        API_V2.path_for(api_route="petroleum/pri/spt"),
        "data[0]=value&end=2025-03&facets[product][]=EPCBRENT&frequency=monthly&length=5000&offset=0"
        "&sort[0][column]=period&sort[0][direction]=asc&start=2025-01",
    ),
)

SIMULATED = (
    dnav_history_file(DNAV_WCESTUS1_PATH, DNAV_WCESTUS1_SAMPLE),
    api_recordings(EIA_API_RECORDINGS),
)
