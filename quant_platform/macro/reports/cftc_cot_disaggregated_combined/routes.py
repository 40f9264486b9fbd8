"""Where the CFTC publishes the COT disaggregated futures-and-options combined files; the simulator has none to serve.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import CFTC_WWW, Route

# The current week, comma delimited, no header: "Disaggregated ... Futures-and-Options Combined" on the CFTC's COT
# page https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm
WEEKLY = Route(CFTC_WWW, "/dea/newcot/c_disagg.txt", dataset="cot_disaggregated_combined_weekly", ext="txt",
               documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/index.htm")
# One zip per year from 2017 (member c_year.txt); 2006-2016 are in com_disagg_txt_hist_2006_2016.zip.
HISTORY = Route(CFTC_WWW, "/files/dea/history/com_disagg_txt_{year}.zip", dataset="cot_disaggregated_combined_history",
                ext="zip", documented_at="https://www.cftc.gov/MarketReports/CommitmentsofTraders/HistoricalCompressed/"
                "index.htm")

# No public copy of c_year.txt, c_disagg.txt or C_Disagg06_16.txt was found (sample_data/SOURCES.md "Not found"):
# the simulator serves nothing on these routes. The parser is the futures-only one (same columns), and the file's
# own FutOnly_or_Combined column must say "Combined" (macro/formats/cftc_cot.py), tested on the futures-only file.
NO_SAMPLE = "no public copy of the CFTC's disaggregated futures-and-options files was found (SOURCES.md, Not found)"
SIMULATED = ()
