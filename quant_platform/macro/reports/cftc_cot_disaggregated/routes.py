"""Where the CFTC publishes the COT disaggregated futures-only files, and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import CFTC_WWW, Route
from quant_platform.vendors.cftc import DISAGG_DATE_COLUMN, CotYearFile, cot_year_file

# The current week, comma delimited, no header: "Disaggregated ... Futures Only" on the CFTC's COT page
# https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm
WEEKLY = Route(CFTC_WWW, "/dea/newcot/f_disagg.txt", dataset="cot_disaggregated_weekly", ext="txt",
               documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm")
# One zip per year (the current year's grows every week): the CFTC's "Historical Compressed" page
# https://www.cftc.gov/MarketReports/CommitmentsofTraders/HistoricalCompressed/index.htm
HISTORY = Route(CFTC_WWW, "/files/dea/history/fut_disagg_txt_{year}.zip", dataset="cot_disaggregated_history", ext="zip",
                documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/HistoricalCompressed/index.htm")

# A real yearly file (the 2021 yearly file's energy rows; origin in sample_data/SOURCES.md):
# served zipped at HISTORY for its year, and its latest week's rows at WEEKLY.
YEAR_SAMPLE = "cftc/disaggregated_futures_only_2021_energy.txt"
SIMULATED = (cot_year_file(CotYearFile(YEAR_SAMPLE, DISAGG_DATE_COLUMN, "f_year.txt", HISTORY.path, WEEKLY.path, disaggregated_layout=True)),)
