"""Where EIA publishes the WPSR table workbooks (one route per table), and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import EIA_IR, Route
from quant_platform.vendors.core import served_verbatim

# The tables of the WPSR as EIA's release page lists them (https://www.eia.gov/petroleum/supply/weekly/, each with
# "CSV / XLS / PDF" links); table 10 is discontinued. Kept in step with macro/formats/wpsr_xls.py WPSR_TABLES.
TABLES = ("01", "02", "03", "04", "05", "05a", "06", "07", "08", "09", "11", "12", "13", "14")

# One Excel 97 workbook per table; the weekly release rewrites each with the table's whole history (sheet
# "Data 1" and following, from 1982-08-20 for most series) plus the new week.
WORKBOOKS: dict[str, Route] = {
    table: Route(EIA_IR, f"/wpsr/psw{table}.xls", dataset=f"wpsr_psw{table}", ext="xls",
                 documented_at="https://www.eia.gov/petroleum/supply/weekly/")
    for table in TABLES
}
# The release is polled on table 1, the balance sheet: every release has it.
RELEASE = WORKBOOKS["01"]

# Only psw01.xls has a real sample (released 2026-02-11 for the week ending 2026-02-06; origin in SOURCES.md):
# the simulator serves it verbatim and nothing on the other tables' routes (no public copy of their bytes was
# found; they are parsed by the same tested code, see README "The macro lane").
PSW01_SAMPLE = "eia/wpsr/psw01_2026-02-11.xls"
SIMULATED = (served_verbatim(RELEASE.path, PSW01_SAMPLE, "application/vnd.ms-excel"),)
