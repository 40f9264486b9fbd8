"""Parsers of CFTC Commitments of Traders files (disaggregated and legacy, futures only) into frames.

Never map a column by guesswork: an unknown layout, field count, date or number raises ReportParseError.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_platform.errors import ArchiveLimitError, ReportParseError
from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.macro.reports.cftc_cot_disaggregated.table import TABLE as CFTC_COT_DISAGGREGATED
from quant_platform.macro.reports.cftc_cot_legacy.table import TABLE as CFTC_COT_LEGACY

COT_ZIP_REPORT = "cftc_cot_zip"
DISAGGREGATED_REPORT = "cftc_cot_disaggregated"
LEGACY_REPORT = "cftc_cot_legacy"

# The firm's instruments, keyed on the CFTC contract market code: market names change (NYMEX WTI
# 067651 was renamed in 2022 from 'CRUDE OIL, LIGHT SWEET - NEW YORK MERCANTILE EXCHANGE' to
# 'WTI-PHYSICAL - NEW YORK MERCANTILE EXCHANGE'), codes do not.
KEY_CONTRACTS: dict[str, str] = {
    "067651": "NYMEX WTI crude oil (CL)",
    "023651": "NYMEX Henry Hub natural gas (NG)",
    "111659": "NYMEX RBOB gasoline (RB)",
    "022651": "NYMEX NY Harbor ULSD (HO)",
    "06765T": "NYMEX Brent last day (BZ)",
    "067411": "ICE WTI crude oil",
}

# Column layout of the disaggregated futures-only files, as in the header of the yearly f_year.txt
# (fut_disagg_txt_YYYY.zip). The weekly f_disagg.txt has the same columns and no header.
DISAGGREGATED_COLUMNS: tuple[str, ...] = (
    "Market_and_Exchange_Names", "As_of_Date_In_Form_YYMMDD", "Report_Date_as_YYYY-MM-DD",
    "CFTC_Contract_Market_Code", "CFTC_Market_Code", "CFTC_Region_Code", "CFTC_Commodity_Code",
    "Open_Interest_All", "Prod_Merc_Positions_Long_All", "Prod_Merc_Positions_Short_All",
    "Swap_Positions_Long_All", "Swap__Positions_Short_All", "Swap__Positions_Spread_All",
    "M_Money_Positions_Long_All", "M_Money_Positions_Short_All", "M_Money_Positions_Spread_All",
    "Other_Rept_Positions_Long_All", "Other_Rept_Positions_Short_All", "Other_Rept_Positions_Spread_All",
    "Tot_Rept_Positions_Long_All", "Tot_Rept_Positions_Short_All", "NonRept_Positions_Long_All",
    "NonRept_Positions_Short_All", "Open_Interest_Old", "Prod_Merc_Positions_Long_Old",
    "Prod_Merc_Positions_Short_Old", "Swap_Positions_Long_Old", "Swap__Positions_Short_Old",
    "Swap__Positions_Spread_Old", "M_Money_Positions_Long_Old", "M_Money_Positions_Short_Old",
    "M_Money_Positions_Spread_Old", "Other_Rept_Positions_Long_Old", "Other_Rept_Positions_Short_Old",
    "Other_Rept_Positions_Spread_Old", "Tot_Rept_Positions_Long_Old", "Tot_Rept_Positions_Short_Old",
    "NonRept_Positions_Long_Old", "NonRept_Positions_Short_Old", "Open_Interest_Other",
    "Prod_Merc_Positions_Long_Other", "Prod_Merc_Positions_Short_Other", "Swap_Positions_Long_Other",
    "Swap__Positions_Short_Other", "Swap__Positions_Spread_Other", "M_Money_Positions_Long_Other",
    "M_Money_Positions_Short_Other", "M_Money_Positions_Spread_Other", "Other_Rept_Positions_Long_Other",
    "Other_Rept_Positions_Short_Other", "Other_Rept_Positions_Spread_Other",
    "Tot_Rept_Positions_Long_Other", "Tot_Rept_Positions_Short_Other", "NonRept_Positions_Long_Other",
    "NonRept_Positions_Short_Other", "Change_in_Open_Interest_All", "Change_in_Prod_Merc_Long_All",
    "Change_in_Prod_Merc_Short_All", "Change_in_Swap_Long_All", "Change_in_Swap_Short_All",
    "Change_in_Swap_Spread_All", "Change_in_M_Money_Long_All", "Change_in_M_Money_Short_All",
    "Change_in_M_Money_Spread_All", "Change_in_Other_Rept_Long_All", "Change_in_Other_Rept_Short_All",
    "Change_in_Other_Rept_Spread_All", "Change_in_Tot_Rept_Long_All", "Change_in_Tot_Rept_Short_All",
    "Change_in_NonRept_Long_All", "Change_in_NonRept_Short_All", "Pct_of_Open_Interest_All",
    "Pct_of_OI_Prod_Merc_Long_All", "Pct_of_OI_Prod_Merc_Short_All", "Pct_of_OI_Swap_Long_All",
    "Pct_of_OI_Swap_Short_All", "Pct_of_OI_Swap_Spread_All", "Pct_of_OI_M_Money_Long_All",
    "Pct_of_OI_M_Money_Short_All", "Pct_of_OI_M_Money_Spread_All", "Pct_of_OI_Other_Rept_Long_All",
    "Pct_of_OI_Other_Rept_Short_All", "Pct_of_OI_Other_Rept_Spread_All", "Pct_of_OI_Tot_Rept_Long_All",
    "Pct_of_OI_Tot_Rept_Short_All", "Pct_of_OI_NonRept_Long_All", "Pct_of_OI_NonRept_Short_All",
    "Pct_of_Open_Interest_Old", "Pct_of_OI_Prod_Merc_Long_Old", "Pct_of_OI_Prod_Merc_Short_Old",
    "Pct_of_OI_Swap_Long_Old", "Pct_of_OI_Swap_Short_Old", "Pct_of_OI_Swap_Spread_Old",
    "Pct_of_OI_M_Money_Long_Old", "Pct_of_OI_M_Money_Short_Old", "Pct_of_OI_M_Money_Spread_Old",
    "Pct_of_OI_Other_Rept_Long_Old", "Pct_of_OI_Other_Rept_Short_Old", "Pct_of_OI_Other_Rept_Spread_Old",
    "Pct_of_OI_Tot_Rept_Long_Old", "Pct_of_OI_Tot_Rept_Short_Old", "Pct_of_OI_NonRept_Long_Old",
    "Pct_of_OI_NonRept_Short_Old", "Pct_of_Open_Interest_Other", "Pct_of_OI_Prod_Merc_Long_Other",
    "Pct_of_OI_Prod_Merc_Short_Other", "Pct_of_OI_Swap_Long_Other", "Pct_of_OI_Swap_Short_Other",
    "Pct_of_OI_Swap_Spread_Other", "Pct_of_OI_M_Money_Long_Other", "Pct_of_OI_M_Money_Short_Other",
    "Pct_of_OI_M_Money_Spread_Other", "Pct_of_OI_Other_Rept_Long_Other", "Pct_of_OI_Other_Rept_Short_Other",
    "Pct_of_OI_Other_Rept_Spread_Other", "Pct_of_OI_Tot_Rept_Long_Other", "Pct_of_OI_Tot_Rept_Short_Other",
    "Pct_of_OI_NonRept_Long_Other", "Pct_of_OI_NonRept_Short_Other", "Traders_Tot_All",
    "Traders_Prod_Merc_Long_All", "Traders_Prod_Merc_Short_All", "Traders_Swap_Long_All",
    "Traders_Swap_Short_All", "Traders_Swap_Spread_All", "Traders_M_Money_Long_All",
    "Traders_M_Money_Short_All", "Traders_M_Money_Spread_All", "Traders_Other_Rept_Long_All",
    "Traders_Other_Rept_Short_All", "Traders_Other_Rept_Spread_All", "Traders_Tot_Rept_Long_All",
    "Traders_Tot_Rept_Short_All", "Traders_Tot_Old", "Traders_Prod_Merc_Long_Old",
    "Traders_Prod_Merc_Short_Old", "Traders_Swap_Long_Old", "Traders_Swap_Short_Old",
    "Traders_Swap_Spread_Old", "Traders_M_Money_Long_Old", "Traders_M_Money_Short_Old",
    "Traders_M_Money_Spread_Old", "Traders_Other_Rept_Long_Old", "Traders_Other_Rept_Short_Old",
    "Traders_Other_Rept_Spread_Old", "Traders_Tot_Rept_Long_Old", "Traders_Tot_Rept_Short_Old",
    "Traders_Tot_Other", "Traders_Prod_Merc_Long_Other", "Traders_Prod_Merc_Short_Other",
    "Traders_Swap_Long_Other", "Traders_Swap_Short_Other", "Traders_Swap_Spread_Other",
    "Traders_M_Money_Long_Other", "Traders_M_Money_Short_Other", "Traders_M_Money_Spread_Other",
    "Traders_Other_Rept_Long_Other", "Traders_Other_Rept_Short_Other", "Traders_Other_Rept_Spread_Other",
    "Traders_Tot_Rept_Long_Other", "Traders_Tot_Rept_Short_Other", "Conc_Gross_LE_4_TDR_Long_All",
    "Conc_Gross_LE_4_TDR_Short_All", "Conc_Gross_LE_8_TDR_Long_All", "Conc_Gross_LE_8_TDR_Short_All",
    "Conc_Net_LE_4_TDR_Long_All", "Conc_Net_LE_4_TDR_Short_All", "Conc_Net_LE_8_TDR_Long_All",
    "Conc_Net_LE_8_TDR_Short_All", "Conc_Gross_LE_4_TDR_Long_Old", "Conc_Gross_LE_4_TDR_Short_Old",
    "Conc_Gross_LE_8_TDR_Long_Old", "Conc_Gross_LE_8_TDR_Short_Old", "Conc_Net_LE_4_TDR_Long_Old",
    "Conc_Net_LE_4_TDR_Short_Old", "Conc_Net_LE_8_TDR_Long_Old", "Conc_Net_LE_8_TDR_Short_Old",
    "Conc_Gross_LE_4_TDR_Long_Other", "Conc_Gross_LE_4_TDR_Short_Other", "Conc_Gross_LE_8_TDR_Long_Other",
    "Conc_Gross_LE_8_TDR_Short_Other", "Conc_Net_LE_4_TDR_Long_Other", "Conc_Net_LE_4_TDR_Short_Other",
    "Conc_Net_LE_8_TDR_Long_Other", "Conc_Net_LE_8_TDR_Short_Other", "Contract_Units",
    "CFTC_Contract_Market_Code_Quotes", "CFTC_Market_Code_Quotes", "CFTC_Commodity_Code_Quotes",
    "CFTC_SubGroup_Code", "FutOnly_or_Combined",
)

# Column layout of the legacy futures-only files, as in the header of the yearly annual.txt
# (deacotYYYY.zip). The weekly deafut.txt has the same columns and no header. The odd spacing is the
# vendor's own (" Total Reportable Positions-Long (All)", "LT = 4", "TDR-Short(Other)").
LEGACY_COLUMNS: tuple[str, ...] = (
    "Market and Exchange Names", "As of Date in Form YYMMDD", "As of Date in Form YYYY-MM-DD",
    "CFTC Contract Market Code", "CFTC Market Code in Initials", "CFTC Region Code", "CFTC Commodity Code",
    "Open Interest (All)", "Noncommercial Positions-Long (All)", "Noncommercial Positions-Short (All)",
    "Noncommercial Positions-Spreading (All)", "Commercial Positions-Long (All)",
    "Commercial Positions-Short (All)", " Total Reportable Positions-Long (All)",
    "Total Reportable Positions-Short (All)", "Nonreportable Positions-Long (All)",
    "Nonreportable Positions-Short (All)",
    "Open Interest (Old)", "Noncommercial Positions-Long (Old)", "Noncommercial Positions-Short (Old)",
    "Noncommercial Positions-Spreading (Old)", "Commercial Positions-Long (Old)",
    "Commercial Positions-Short (Old)", "Total Reportable Positions-Long (Old)",
    "Total Reportable Positions-Short (Old)", "Nonreportable Positions-Long (Old)",
    "Nonreportable Positions-Short (Old)",
    "Open Interest (Other)", "Noncommercial Positions-Long (Other)", "Noncommercial Positions-Short (Other)",
    "Noncommercial Positions-Spreading (Other)", "Commercial Positions-Long (Other)",
    "Commercial Positions-Short (Other)", "Total Reportable Positions-Long (Other)",
    "Total Reportable Positions-Short (Other)", "Nonreportable Positions-Long (Other)",
    "Nonreportable Positions-Short (Other)",
    "Change in Open Interest (All)", "Change in Noncommercial-Long (All)",
    "Change in Noncommercial-Short (All)", "Change in Noncommercial-Spreading (All)",
    "Change in Commercial-Long (All)", "Change in Commercial-Short (All)",
    "Change in Total Reportable-Long (All)", "Change in Total Reportable-Short (All)",
    "Change in Nonreportable-Long (All)", "Change in Nonreportable-Short (All)",
    "% of Open Interest (OI) (All)", "% of OI-Noncommercial-Long (All)", "% of OI-Noncommercial-Short (All)",
    "% of OI-Noncommercial-Spreading (All)", "% of OI-Commercial-Long (All)",
    "% of OI-Commercial-Short (All)", "% of OI-Total Reportable-Long (All)",
    "% of OI-Total Reportable-Short (All)", "% of OI-Nonreportable-Long (All)",
    "% of OI-Nonreportable-Short (All)",
    "% of Open Interest (OI)(Old)", "% of OI-Noncommercial-Long (Old)", "% of OI-Noncommercial-Short (Old)",
    "% of OI-Noncommercial-Spreading (Old)", "% of OI-Commercial-Long (Old)",
    "% of OI-Commercial-Short (Old)", "% of OI-Total Reportable-Long (Old)",
    "% of OI-Total Reportable-Short (Old)", "% of OI-Nonreportable-Long (Old)",
    "% of OI-Nonreportable-Short (Old)",
    "% of Open Interest (OI) (Other)", "% of OI-Noncommercial-Long (Other)",
    "% of OI-Noncommercial-Short (Other)", "% of OI-Noncommercial-Spreading (Other)",
    "% of OI-Commercial-Long (Other)", "% of OI-Commercial-Short (Other)",
    "% of OI-Total Reportable-Long (Other)", "% of OI-Total Reportable-Short (Other)",
    "% of OI-Nonreportable-Long (Other)", "% of OI-Nonreportable-Short (Other)",
    "Traders-Total (All)", "Traders-Noncommercial-Long (All)", "Traders-Noncommercial-Short (All)",
    "Traders-Noncommercial-Spreading (All)", "Traders-Commercial-Long (All)",
    "Traders-Commercial-Short (All)", "Traders-Total Reportable-Long (All)",
    "Traders-Total Reportable-Short (All)",
    "Traders-Total (Old)", "Traders-Noncommercial-Long (Old)", "Traders-Noncommercial-Short (Old)",
    "Traders-Noncommercial-Spreading (Old)", "Traders-Commercial-Long (Old)",
    "Traders-Commercial-Short (Old)", "Traders-Total Reportable-Long (Old)",
    "Traders-Total Reportable-Short (Old)",
    "Traders-Total (Other)", "Traders-Noncommercial-Long (Other)", "Traders-Noncommercial-Short (Other)",
    "Traders-Noncommercial-Spreading (Other)", "Traders-Commercial-Long (Other)",
    "Traders-Commercial-Short (Other)", "Traders-Total Reportable-Long (Other)",
    "Traders-Total Reportable-Short (Other)",
    "Concentration-Gross LT = 4 TDR-Long (All)", "Concentration-Gross LT =4 TDR-Short (All)",
    "Concentration-Gross LT =8 TDR-Long (All)", "Concentration-Gross LT =8 TDR-Short (All)",
    "Concentration-Net LT =4 TDR-Long (All)", "Concentration-Net LT =4 TDR-Short (All)",
    "Concentration-Net LT =8 TDR-Long (All)", "Concentration-Net LT =8 TDR-Short (All)",
    "Concentration-Gross LT =4 TDR-Long (Old)", "Concentration-Gross LT =4 TDR-Short (Old)",
    "Concentration-Gross LT =8 TDR-Long (Old)", "Concentration-Gross LT =8 TDR-Short (Old)",
    "Concentration-Net LT =4 TDR-Long (Old)", "Concentration-Net LT =4 TDR-Short (Old)",
    "Concentration-Net LT =8 TDR-Long (Old)", "Concentration-Net LT =8 TDR-Short (Old)",
    "Concentration-Gross LT =4 TDR-Long (Other)", "Concentration-Gross LT =4 TDR-Short(Other)",
    "Concentration-Gross LT =8 TDR-Long (Other)", "Concentration-Gross LT =8 TDR-Short(Other)",
    "Concentration-Net LT =4 TDR-Long (Other)", "Concentration-Net LT =4 TDR-Short (Other)",
    "Concentration-Net LT =8 TDR-Long (Other)", "Concentration-Net LT =8 TDR-Short (Other)",
    "Contract Units", "CFTC Contract Market Code (Quotes)", "CFTC Market Code in Initials (Quotes)",
    "CFTC Commodity Code (Quotes)",
)

_NOT_OUTPUT = {c.name for c in LOAD_COLUMNS} | {"available_at"}  # the caller adds available_at
DISAGGREGATED_OUTPUT: tuple[str, ...] = tuple(
    c for c in CFTC_COT_DISAGGREGATED.column_names if c not in _NOT_OUTPUT)
LEGACY_OUTPUT: tuple[str, ...] = tuple(c for c in CFTC_COT_LEGACY.column_names if c not in _NOT_OUTPUT)

_WHOLE_NUMBER = re.compile(r"-?\d+")
# Vendor quirk: contract market codes are 6 digits or capitals, except the legacy report's
# "Consolidated" index markets, whose code ends in '+' (12460+ DJIA, 13874+ S&P 500, 20974+ NASDAQ-100).
_CONTRACT_CODE = re.compile(r"[0-9A-Z]{5}[0-9A-Z+]")
_FIRST_HEADER_CELL = "market_and_exchange_names"


@dataclass(frozen=True)
class _CotLayout:
    report: str
    columns: tuple[str, ...]  # vendor column names in file order, used when the file has no header
    output: tuple[str, ...]
    date_iso: str  # vendor column of the as-of date as YYYY-MM-DD
    date_yymmdd: str  # vendor column of the same date as YYMMDD, cross-checked
    text: dict[str, str]  # output column -> vendor column, stripped text
    positions: dict[str, str]  # output column -> vendor column, whole numbers


_DISAGGREGATED = _CotLayout(
    report=DISAGGREGATED_REPORT,
    columns=DISAGGREGATED_COLUMNS,
    output=DISAGGREGATED_OUTPUT,
    date_iso="Report_Date_as_YYYY-MM-DD",
    date_yymmdd="As_of_Date_In_Form_YYMMDD",
    text={
        "contract_code": "CFTC_Contract_Market_Code",
        "market_name": "Market_and_Exchange_Names",
        "exchange_code": "CFTC_Market_Code",
        "commodity_code": "CFTC_Commodity_Code",
        "contract_units": "Contract_Units",
    },
    positions={
        "open_interest": "Open_Interest_All",
        "prod_merc_long": "Prod_Merc_Positions_Long_All",
        "prod_merc_short": "Prod_Merc_Positions_Short_All",
        "swap_long": "Swap_Positions_Long_All",
        # Vendor quirk: the CFTC spells these two with a double underscore.
        "swap_short": "Swap__Positions_Short_All",
        "swap_spread": "Swap__Positions_Spread_All",
        "m_money_long": "M_Money_Positions_Long_All",
        "m_money_short": "M_Money_Positions_Short_All",
        "m_money_spread": "M_Money_Positions_Spread_All",
        "other_rept_long": "Other_Rept_Positions_Long_All",
        "other_rept_short": "Other_Rept_Positions_Short_All",
        "other_rept_spread": "Other_Rept_Positions_Spread_All",
        "tot_rept_long": "Tot_Rept_Positions_Long_All",
        "tot_rept_short": "Tot_Rept_Positions_Short_All",
        "nonrept_long": "NonRept_Positions_Long_All",
        "nonrept_short": "NonRept_Positions_Short_All",
    },
)

_LEGACY = _CotLayout(
    report=LEGACY_REPORT,
    columns=LEGACY_COLUMNS,
    output=LEGACY_OUTPUT,
    date_iso="As of Date in Form YYYY-MM-DD",
    date_yymmdd="As of Date in Form YYMMDD",
    text={
        "contract_code": "CFTC Contract Market Code",
        "market_name": "Market and Exchange Names",
        "exchange_code": "CFTC Market Code in Initials",
        "commodity_code": "CFTC Commodity Code",
        "contract_units": "Contract Units",
    },
    positions={
        "open_interest": "Open Interest (All)",
        "noncomm_long": "Noncommercial Positions-Long (All)",
        "noncomm_short": "Noncommercial Positions-Short (All)",
        "noncomm_spread": "Noncommercial Positions-Spreading (All)",
        "comm_long": "Commercial Positions-Long (All)",
        "comm_short": "Commercial Positions-Short (All)",
        "tot_rept_long": "Total Reportable Positions-Long (All)",
        "tot_rept_short": "Total Reportable Positions-Short (All)",
        "nonrept_long": "Nonreportable Positions-Long (All)",
        "nonrept_short": "Nonreportable Positions-Short (All)",
    },
)


# Limits of a history zip's member, checked from its header before a byte is inflated (and the read bounded):
# the real yearly files are some tens of MB of text compressing about 5-10 to 1.
ZIP_MAX_MEMBER_BYTES = 512 * 1024 * 1024
ZIP_MAX_RATIO = 100.0
_ZIP_READ_CHUNK = 1024 * 1024


def _zip_limits() -> tuple[int, float]:
    from quant_platform.platform.settings import bounded_env

    size = int(bounded_env("QP_ZIP_MAX_MEMBER_BYTES", ZIP_MAX_MEMBER_BYTES, 1, 2**40, integer=True))
    return size, float(bounded_env("QP_ZIP_MAX_RATIO", ZIP_MAX_RATIO, 1, 1_000_000))


def extract_cot_zip(content: bytes) -> bytes:
    """The single .txt member of a CFTC history zip (f_year.txt, annual.txt, ...), refused unread when its
    declared size or compression ratio is beyond any real file (QP_ZIP_MAX_MEMBER_BYTES, QP_ZIP_MAX_RATIO),
    and read in bounded chunks that stop at the declared size (a member lying about it fails its CRC)."""
    max_bytes, max_ratio = _zip_limits()
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and m.filename.lower().endswith(".txt")]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "none"
                raise ReportParseError(COT_ZIP_REPORT, None, f"expected exactly one .txt member, found "
                                       f"{len(members)} ({names})")
            member = members[0]
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > max_bytes:
                raise ArchiveLimitError(COT_ZIP_REPORT, None, f"member {member.filename} declares "
                                        f"{member.file_size} bytes, more than QP_ZIP_MAX_MEMBER_BYTES={max_bytes}; "
                                        "refused before inflating")
            if ratio > max_ratio:
                raise ArchiveLimitError(COT_ZIP_REPORT, None, f"member {member.filename} declares a compression "
                                        f"ratio of {ratio:.0f}:1, more than QP_ZIP_MAX_RATIO={max_ratio:g}; "
                                        "refused before inflating")
            out = bytearray()
            with archive.open(member) as stream:
                while chunk := stream.read(_ZIP_READ_CHUNK):  # each read inflates at most one chunk
                    out += chunk
                    if len(out) > min(member.file_size, max_bytes):
                        raise ArchiveLimitError(COT_ZIP_REPORT, None, f"member {member.filename} inflates past "
                                                "its declared size; refused")
            return bytes(out)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ReportParseError(COT_ZIP_REPORT, None, f"corrupt or unreadable zip: {exc}") from None


def _column_names(first_row: Sequence[str], layout: _CotLayout, line: int) -> tuple[list[str], bool]:
    """Vendor column names of the file and whether its first row is a header."""
    first = first_row[0].strip()
    if first == layout.columns[0]:
        # Vendor quirk: some header names carry stray leading/trailing spaces; match them stripped.
        names = [c.strip() for c in first_row]
        wanted = [layout.date_iso, layout.date_yymmdd, *layout.text.values(), *layout.positions.values()]
        missing = [w for w in wanted if w not in names]
        if missing:
            raise ReportParseError(layout.report, line, f"header lacks columns: {', '.join(missing)}")
        return names, True
    if re.sub(r"[\s_]+", "_", first.lower()) == _FIRST_HEADER_CELL:
        raise ReportParseError(layout.report, line, f"header starts {first!r}, not {layout.columns[0]!r}: "
                               "a file of the other COT report (legacy vs disaggregated)?")
    # The weekly file has no header: its columns are those of the yearly file, by position.
    return [c.strip() for c in layout.columns], False


def _read_rows(content: bytes, layout: _CotLayout) -> tuple[list[str], list[list[str]], list[int]]:
    """(column names, data rows, 1-based line of each row); every row has the header's field count."""
    # CFTC files are ASCII; latin-1 maps every byte to a character, so decoding never loses one.
    reader = csv.reader(io.StringIO(content.decode("latin-1"), newline=""))
    names: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row:
                continue
            if names is None:
                names, is_header = _column_names(row, layout, reader.line_num)
                if is_header:
                    continue
            if len(row) != len(names):
                raise ReportParseError(layout.report, reader.line_num, f"row has {len(row)} fields, expected "
                                       f"{len(names)}; truncated or damaged file")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise ReportParseError(layout.report, reader.line_num, f"malformed CSV: {exc}") from None
    if not rows:
        raise ReportParseError(layout.report, None, "no data rows")
    return names, rows, lines


def _first_bad(mask: pd.Series) -> int | None:
    bad = np.flatnonzero(mask.to_numpy(dtype=bool))
    return int(bad[0]) if len(bad) else None


def _parse_cot(content: bytes, layout: _CotLayout) -> pd.DataFrame:
    names, rows, lines = _read_rows(content, layout)
    index = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)

    def column(vendor: str) -> pd.Series:
        # Vendor quirk: numbers are space-padded and codes carry trailing spaces ('022 ').
        at = index[vendor]
        return pd.Series([r[at] for r in rows], dtype="str").str.strip()

    def fail(i: int, reason: str) -> ReportParseError:
        return ReportParseError(layout.report, lines[i], reason)

    out: dict[str, pd.Series] = {}
    iso, yymmdd = column(layout.date_iso), column(layout.date_yymmdd)
    as_of = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")
    short = pd.to_datetime(yymmdd, format="%y%m%d", errors="coerce")
    if (i := _first_bad(as_of.isna())) is not None:
        raise fail(i, f"{layout.date_iso} {iso[i]!r} is not a YYYY-MM-DD date")
    if (i := _first_bad(short.isna() | (short != as_of))) is not None:
        raise fail(i, f"{layout.date_yymmdd} {yymmdd[i]!r} disagrees with {layout.date_iso} {iso[i]!r}")
    out["as_of"] = as_of.astype("datetime64[ns]")

    for name, vendor in layout.text.items():
        out[name] = column(vendor)
    if (i := _first_bad(~out["contract_code"].str.fullmatch(_CONTRACT_CODE.pattern))) is not None:
        raise fail(i, f"contract code {out['contract_code'][i]!r} is not 6 letters or digits "
                   "(the last may be '+')")
    for name in ("market_name", "exchange_code", "commodity_code"):
        if (i := _first_bad(out[name] == "")) is not None:
            raise fail(i, f"{layout.text[name]} is empty")

    for name, vendor in layout.positions.items():
        raw = column(vendor)
        missing = raw == "."  # vendor quirk: a lone '.' means missing
        if (i := _first_bad(~(missing | raw.str.fullmatch(_WHOLE_NUMBER.pattern)))) is not None:
            raise fail(i, f"column {vendor}: {raw[i]!r} is not a whole number")
        out[name] = pd.to_numeric(raw.mask(missing), dtype_backend="numpy_nullable").astype("Int64")
    if (i := _first_bad(out["open_interest"].isna())) is not None:
        raise fail(i, f"{layout.positions['open_interest']} is missing")

    frame = pd.DataFrame(out).loc[:, list(layout.output)]
    if (i := _first_bad(frame.duplicated(["as_of", "contract_code"]))) is not None:
        raise fail(i, f"contract {frame['contract_code'][i]} appears twice for {frame['as_of'][i].date()}")
    return frame


def parse_cot_disaggregated(content: bytes) -> pd.DataFrame:
    """A disaggregated futures-only COT file (yearly f_year.txt with header, or weekly f_disagg.txt
    without) as macro.cftc_cot_disaggregated rows, without available_at and the load columns."""
    return _parse_cot(content, _DISAGGREGATED)


def parse_cot_legacy(content: bytes) -> pd.DataFrame:
    """A legacy futures-only COT file (yearly annual.txt with header, or weekly deafut.txt without)
    as macro.cftc_cot_legacy rows, without available_at and the load columns."""
    return _parse_cot(content, _LEGACY)
