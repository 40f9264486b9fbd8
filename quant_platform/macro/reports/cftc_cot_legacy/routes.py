"""Where the CFTC publishes the COT legacy futures-only files, and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import CFTC_WWW, Route
from quant_platform.vendors.cftc import LEGACY_DATE_COLUMN, CotYearFile, cot_year_file

# The current week, comma delimited, no header: "Legacy ... Futures Only" on the CFTC's COT page
# https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm
WEEKLY = Route(CFTC_WWW, "/dea/newcot/deafut.txt", dataset="cot_legacy_weekly", ext="txt",
               documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm")
# One zip per year (the current year's grows every week): the CFTC's "Historical Compressed" page
# https://www.cftc.gov/MarketReports/CommitmentsofTraders/HistoricalCompressed/index.htm
HISTORY = Route(CFTC_WWW, "/files/dea/history/deacot{year}.zip", dataset="cot_legacy_history", ext="zip",
                documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/HistoricalCompressed/index.htm")

# A real yearly file (the 2025 yearly file's rows of the key contracts; origin in sample_data/SOURCES.md):
# served zipped at HISTORY for its year, and its latest week's rows at WEEKLY.
YEAR_SAMPLE = "cftc/legacy_futures_only_2025_energy.txt"
SIMULATED = (cot_year_file(CotYearFile(YEAR_SAMPLE, LEGACY_DATE_COLUMN, "annual.txt", HISTORY.path, WEEKLY.path)),)
