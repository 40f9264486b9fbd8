"""The Commitments of Traders domain checks a COT report folder declares: categories add up, open interest moves plausibly.

Never loosen the sum beyond the CFTC's own rounding: futures-only rows add up exactly; only futures-and-options
files and consolidated index rows (codes ending '+') round each category on its own, by up to one contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from quant_platform.macro.formats.cftc_cot import COMBINED_SUM_TOLERANCE
from quant_platform.macro.loading import DomainCheck
from quant_platform.platform.warehouse import Warehouse, vetted
from quant_platform.quality.rules import RuleOutcome

# Consolidated contracts (the CFTC's "+" codes, e.g. 13874+ S&P 500 consolidated) weight several contracts into
# one and round each category: a futures-only consolidated row misses open interest by up to one contract (9 of
# 33 rows of the 2025 legacy sample), like a futures-and-options row.
CONSOLIDATED_SUFFIX = "+"
# Open interest more than doubling or halving in a week, by more than this many contracts, is implausible.
OI_JUMP_RATIO = 2.0
OI_JUMP_MIN_CONTRACTS = 20_000
SHOWN = 12


@dataclass(frozen=True)
class CotSums:
    """The position columns that must add up to open interest, per side, in one COT layout."""

    long_parts: tuple[str, ...]
    short_parts: tuple[str, ...]
    total_long: str = "tot_rept_long"
    total_short: str = "tot_rept_short"
    nonreportable_long: str = "nonrept_long"
    nonreportable_short: str = "nonrept_short"

    def equations(self) -> dict[str, tuple[str, ...]]:
        """Name -> the columns whose sum is open interest."""
        return {
            "long categories": (*self.long_parts, self.nonreportable_long),
            "short categories": (*self.short_parts, self.nonreportable_short),
            "reportable + non-reportable long": (self.total_long, self.nonreportable_long),
            "reportable + non-reportable short": (self.total_short, self.nonreportable_short),
        }


LEGACY_SUMS = CotSums(long_parts=("noncomm_long", "noncomm_spread", "comm_long"),
                      short_parts=("noncomm_short", "noncomm_spread", "comm_short"))
DISAGGREGATED_SUMS = CotSums(
    long_parts=("prod_merc_long", "swap_long", "swap_spread", "m_money_long", "m_money_spread", "other_rept_long",
                "other_rept_spread"),
    short_parts=("prod_merc_short", "swap_short", "swap_spread", "m_money_short", "m_money_spread",
                 "other_rept_short", "other_rept_spread"))


def sum_gaps(frame: pd.DataFrame, sums: CotSums, futures_and_options: bool) -> pd.DataFrame:
    """Per row and equation, how far the parts miss open interest and how far they may (rows with a missing
    part, the CFTC's lone '.', are not checkable and left out)."""
    out = []
    tolerance = pd.Series(COMBINED_SUM_TOLERANCE if futures_and_options else 0, index=frame.index)
    consolidated = frame["contract_code"].astype(str).str.strip().str.endswith(CONSOLIDATED_SUFFIX)
    tolerance = tolerance.where(~consolidated, COMBINED_SUM_TOLERANCE)
    oi = pd.to_numeric(frame["open_interest"])
    for name, parts in sums.equations().items():
        values = frame[list(parts)].apply(pd.to_numeric)
        checkable = values.notna().all(axis=1) & oi.notna()
        gap = (values.sum(axis=1) - oi).abs()
        out.append(pd.DataFrame({"row": frame.index, "equation": name, "gap": gap, "tolerance": tolerance,
                                 "checkable": checkable}))
    return pd.concat(out, ignore_index=True)


def categories_sum_to_open_interest(sums: CotSums, futures_and_options: bool = False):
    """The check function: every row's categories add up to its open interest (see sum_gaps)."""

    def evaluate(frame: pd.DataFrame, _warehouse: Warehouse) -> RuleOutcome:
        gaps = sum_gaps(frame, sums, futures_and_options)
        checked = gaps[gaps["checkable"]]
        bad = checked[checked["gap"] > checked["tolerance"]]
        shown = [f"{frame.at[r.row, 'contract_code']} {pd.Timestamp(frame.at[r.row, 'as_of']):%Y-%m-%d} "
                 f"{r.equation}: off by {int(r.gap)} (open interest {int(frame.at[r.row, 'open_interest'])})"
                 for r in bad.head(SHOWN).itertuples()]
        return RuleOutcome("categories_sum_to_open_interest", bad.empty, "", {
            "sums_checked": len(checked), "sums_not_checkable": int((~gaps["checkable"]).sum()),
            "sums_off": len(bad), "largest_gap_contracts": int(checked["gap"].max()) if len(checked) else 0,
            "tolerance": f"{COMBINED_SUM_TOLERANCE} contract on futures-and-options and consolidated (+) rows, "
                         "0 otherwise",
            "problems": "; ".join(shown) or "none"})

    return evaluate


def open_interest_plausible(table: str):
    """The check function: each contract's open interest against its previous week (in this load, else as loaded
    in `table`): more than doubling or halving by over OI_JUMP_MIN_CONTRACTS is a WARN naming both values."""

    def evaluate(frame: pd.DataFrame, warehouse: Warehouse) -> RuleOutcome:
        this = frame[["as_of", "contract_code", "open_interest"]].assign(as_of=pd.to_datetime(frame["as_of"]))
        first = this["as_of"].min() if len(this) else None
        earlier = pd.DataFrame(columns=["as_of", "contract_code", "open_interest"])
        if first is not None:
            earlier = warehouse.query_df(
                f"SELECT as_of, contract_code, open_interest FROM {vetted(table)} WHERE as_of = :week",  # noqa: S608
                {"week": (first - timedelta(days=7)).date()})
        weeks = pd.concat([earlier.assign(as_of=pd.to_datetime(earlier["as_of"])), this], ignore_index=True)
        weeks = weeks.drop_duplicates(["as_of", "contract_code"], keep="last").sort_values(["contract_code", "as_of"])
        weeks["open_interest"] = pd.to_numeric(weeks["open_interest"]).astype(float)
        weeks["prev"] = weeks.groupby("contract_code")["open_interest"].shift()
        weeks["prev_as_of"] = weeks.groupby("contract_code")["as_of"].shift()
        pairs = weeks[(weeks["as_of"] - weeks["prev_as_of"] == timedelta(days=7)) & weeks["prev"].notna()]
        jumps = pairs[implausible_oi_change(pairs["open_interest"], pairs["prev"])]
        return RuleOutcome("open_interest_plausible", jumps.empty, "", {
            "week_pairs_compared": len(pairs), "implausible_changes": len(jumps),
            "limit": f"x{OI_JUMP_RATIO:g} or /{OI_JUMP_RATIO:g} and more than {OI_JUMP_MIN_CONTRACTS:,} contracts",
            "jumps": "; ".join(f"{r.contract_code} {r.as_of:%Y-%m-%d}: {int(r.prev):,} -> {int(r.open_interest):,}"
                               for r in jumps.head(SHOWN).itertuples()) or "none"})

    return evaluate


def implausible_oi_change(now: pd.Series, before: pd.Series) -> pd.Series:
    """True where open interest more than doubled or halved, by more than OI_JUMP_MIN_CONTRACTS contracts."""
    big = (now - before).abs() > OI_JUMP_MIN_CONTRACTS
    return big & ((now > before * OI_JUMP_RATIO) | (now * OI_JUMP_RATIO < before))


def cot_domain_checks(table: str, sums: CotSums, futures_and_options: bool = False) -> tuple[DomainCheck, ...]:
    """What a COT report folder declares: the sum of parts (blocking) and plausible open interest (WARN)."""
    tolerance = "within one contract" if futures_and_options else (
        "exactly (within one contract on consolidated '+' rows)")
    return (
        DomainCheck("categories_sum_to_open_interest", f"Every row's trader categories, long and short, and "
                    f"reportable + non-reportable add up to open interest, {tolerance}.",
                    categories_sum_to_open_interest(sums, futures_and_options)),
        DomainCheck("open_interest_plausible", "No contract's open interest more than doubled or halved in a "
                    f"week by over {OI_JUMP_MIN_CONTRACTS:,} contracts (WARN, both values named).",
                    open_interest_plausible(table), blocking=False),
    )

