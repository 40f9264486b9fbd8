"""Where EIA publishes the WPSR table 1, and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import EIA_IR, Route
from quant_platform.vendors.core import served_verbatim

# Table 1 of the current release as CSV. The WPSR page (https://www.eia.gov/petroleum/supply/weekly/) links each
# table of the release; this file always holds the latest week only.
TABLE1 = Route(EIA_IR, "/wpsr/table1.csv", dataset="wpsr_table1", ext="csv",
               documented_at="https://www.eia.gov/petroleum/supply/weekly/")

# A real table1.csv (week ending 2026-04-24; origin in sample_data/SOURCES.md), served verbatim at TABLE1.
TABLE1_SAMPLE = "eia/wpsr_table1_2026-05-01.csv"
SIMULATED = (served_verbatim(TABLE1.path, TABLE1_SAMPLE, "text/csv"),)
