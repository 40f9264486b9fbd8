"""Where the CFTC publishes the COT legacy futures-and-options combined files, and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import CFTC_WWW, Route
from quant_platform.vendors.cftc import LEGACY_DATE_COLUMN, CotYearFile, cot_year_file

# The current week, comma delimited, no header: "Legacy ... Futures-and-Options Combined" on the CFTC's COT page
# https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm
WEEKLY = Route(CFTC_WWW, "/dea/newcot/deacom.txt", dataset="cot_legacy_combined_weekly", ext="txt",
               documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm")
# One zip per year from 2017 (member annualof.txt); 1995-2016 are in deahistfo_1995_2016.zip (macro/cftc/cot.py).
HISTORY = Route(CFTC_WWW, "/files/dea/history/deahistfo{year}.zip", dataset="cot_legacy_combined_history", ext="zip",
                documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/HistoricalCompressed/index.htm")

# A real yearly file (annualof.txt of deahistfo2026.zip after the 2026-03-03 report, the six key contracts' rows;
# origin in sample_data/SOURCES.md): served zipped at HISTORY for its year, and its latest week's rows at WEEKLY.
YEAR_SAMPLE = "cftc/legacy_futures_and_options_2026_energy.txt"
SIMULATED = (cot_year_file(CotYearFile(YEAR_SAMPLE, LEGACY_DATE_COLUMN, "annualof.txt", HISTORY.path, WEEKLY.path)),)
