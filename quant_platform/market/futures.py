"""Futures contracts: exchange symbols (CLZ6, CLZ26) to contract ids (FUT:CL:2026-12), last trade dates from each
exchange's written rule on the exchange's own trade-date calendar, and the front-month roll rule.

Never keep a hand list of expiry dates or holidays here: dates come from the rule and the calendar library.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from quant_platform.errors import ConfigError

MONTH_CODES = "FGHJKMNQUVXZ"  # CME month letters, January .. December
_SYMBOL_RE = re.compile(r"([A-Z0-9]{1,4}?)([FGHJKMNQUVXZ])(\d{1,2})\Z")
_CONTRACT_ID_RE = re.compile(r"FUT:([A-Z0-9]{1,4}):(\d{4})-(\d{2})\Z")

# ----------------------------------------------------------------------------------------- the calendar
# "Business day" in the NYMEX/CME rules is a CME trade date: a day with a settlement. pandas_market_calendars'
# CME_TradeDate calendar is exactly that (Thanksgiving, Memorial Day, Good Friday, ... are not trade dates,
# while the Globex-hours calendars count them as sessions with an early close). Checked against published
# last trade dates in quant_platform_tests/test_market_futures.py.
CALENDAR = "CME_TradeDate"
_FIRST_YEAR, _LAST_YEAR = 2000, 2045


@lru_cache(maxsize=1)
def _business_days() -> tuple[date, ...]:
    import warnings

    import pandas_market_calendars as mcal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library warns about its own holiday tables far in the future
        days = mcal.get_calendar(CALENDAR).valid_days(f"{_FIRST_YEAR}-01-01", f"{_LAST_YEAR}-12-31")
    return tuple(d.date() for d in days)


def business_days() -> tuple[date, ...]:
    """Every CME trade date from 2000 to 2045, sorted."""
    return _business_days()


def _check_range(d: date) -> None:
    if not _FIRST_YEAR <= d.year <= _LAST_YEAR - 1:
        raise ConfigError(f"futures calendar: {d} is outside {_FIRST_YEAR}..{_LAST_YEAR - 1}")


def is_business_day(d: date) -> bool:
    _check_range(d)
    days = _business_days()
    i = bisect.bisect_left(days, d)
    return i < len(days) and days[i] == d


def add_business_days(d: date, n: int) -> date:
    """The business day `n` business days after `d` (n < 0: before); d itself need not be a business day."""
    _check_range(d)
    days = _business_days()
    if n >= 0:
        i = bisect.bisect_right(days, d)  # first business day after d
        return days[i + n - 1] if n else d
    i = bisect.bisect_left(days, d)  # first business day on or after d: days before it are before d
    return days[i + n]


def _month_business_days(year: int, month: int) -> list[date]:
    days = _business_days()
    lo = bisect.bisect_left(days, date(year, month, 1))
    hi = bisect.bisect_left(days, date(year + (month == 12), month % 12 + 1, 1))
    return list(days[lo:hi])


def _months_before(year: int, month: int, k: int) -> tuple[int, int]:
    n = year * 12 + (month - 1) - k
    return n // 12, n % 12 + 1


# ----------------------------------------------------------------------------------------- expiry rules
# Each rule is quoted from the exchange's contract specifications ("Termination of Trading"), cmegroup.com.

def _cl_last_trade(year: int, month: int) -> date:
    # NYMEX Light Sweet Crude Oil (CL), contract specs (cmegroup.com/markets/energy/crude-oil/light-sweet-crude,
    # rulebook chapter 200): "Trading terminates 3 business day before the 25th calendar day of the month prior
    # to the contract month. If the 25th calendar day is not a business day, trading terminates 4 business days
    # before the 25th calendar day of the month prior to the contract month."
    py, pm = _months_before(year, month, 1)
    d25 = date(py, pm, 25)
    return add_business_days(d25, -3 if is_business_day(d25) else -4)


def _ng_last_trade(year: int, month: int) -> date:
    # NYMEX Henry Hub Natural Gas (NG), contract specs (rulebook chapter 220): "Trading terminates on the 3rd last
    # business day of the month prior to the contract month."
    py, pm = _months_before(year, month, 1)
    return _month_business_days(py, pm)[-3]


def _last_business_day_of_prior_month(year: int, month: int) -> date:
    # NYMEX NY Harbor ULSD (HO, chapter 150) and RBOB Gasoline (RB, chapter 191), contract specs: "Trading
    # terminates on the last business day of the month prior to the contract month."
    py, pm = _months_before(year, month, 1)
    return _month_business_days(py, pm)[-1]


def _bz_last_trade(year: int, month: int) -> date:
    # NYMEX Brent Last Day Financial (BZ), contract specs: "Trading in the February contract month terminates on
    # the 2nd last London business day of the month, 2 months prior to the contract month. Trading in all other
    # contract months terminates on the last London business day of the month, 2 months prior to the contract
    # month." The day must also be a CME trade date (the contract clears at NYMEX): published last trade dates
    # fall on CME trade dates even on UK bank holidays (2020-08-31) and skip US holidays that are UK bank
    # holidays too (2021-05-31), so the CME calendar is the one used (see the test for the evidence and for
    # the February months, where published dates and the spec text disagree).
    py, pm = _months_before(year, month, 2)
    return _month_business_days(py, pm)[-2 if month == 2 else -1]


def _es_last_trade(year: int, month: int) -> date:
    # CME E-mini S&P 500 (ES), rulebook chapter 358: "Trading terminates at 9:30 a.m. ET on the 3rd Friday of the
    # contract month." (If that Friday is not a trade date, the business day before.)
    first = date(year, month, 1)
    third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
    return third_friday if is_business_day(third_friday) else add_business_days(third_friday, -1)


@dataclass(frozen=True)
class RootRule:
    root: str
    exchange: str  # the exchange's MIC, as Databento's definitions give it
    months: str  # listed month codes
    last_trade: object  # (year, month) -> date
    source: str  # where the rule is written


ROOT_RULES: dict[str, RootRule] = {
    "CL": RootRule("CL", "XNYM", MONTH_CODES, _cl_last_trade, "NYMEX rulebook ch. 200 / CME CL contract specs"),
    "NG": RootRule("NG", "XNYM", MONTH_CODES, _ng_last_trade, "NYMEX rulebook ch. 220 / CME NG contract specs"),
    "HO": RootRule("HO", "XNYM", MONTH_CODES, _last_business_day_of_prior_month,
                   "NYMEX rulebook ch. 150 / CME HO contract specs"),
    "RB": RootRule("RB", "XNYM", MONTH_CODES, _last_business_day_of_prior_month,
                   "NYMEX rulebook ch. 191 / CME RB contract specs"),
    "BZ": RootRule("BZ", "XNYM", MONTH_CODES, _bz_last_trade, "CME BZ contract specs"),
    "ES": RootRule("ES", "XCME", "HMUZ", _es_last_trade, "CME rulebook ch. 358 / CME ES contract specs"),
}


def rule_for(root: str) -> RootRule:
    try:
        return ROOT_RULES[root]
    except KeyError:
        raise ConfigError(f"no expiry rule for futures root {root!r}; known: {', '.join(sorted(ROOT_RULES))}") from None


# ----------------------------------------------------------------------------------------- contracts
@dataclass(frozen=True, order=True)
class Contract:
    root: str
    year: int
    month: int

    @property
    def instrument_id(self) -> str:
        return f"FUT:{self.root}:{self.year:04d}-{self.month:02d}"

    @property
    def month_code(self) -> str:
        return MONTH_CODES[self.month - 1]

    @property
    def exchange_symbol(self) -> str:
        """CME Globex style, one year digit: CLZ6."""
        return f"{self.root}{self.month_code}{self.year % 10}"

    @property
    def last_trade_date(self) -> date:
        return last_trade_date(self.root, self.year, self.month)


def last_trade_date(root: str, year: int, month: int) -> date:
    """The last trading day of a contract, from its exchange's rule on the CME trade-date calendar."""
    rule = rule_for(root)
    if MONTH_CODES[month - 1] not in rule.months:
        raise ConfigError(f"{root} lists no {MONTH_CODES[month - 1]} ({month:02d}) contract")
    return rule.last_trade(year, month)


def parse_contract_id(instrument_id: str) -> Contract | None:
    """FUT:CL:2026-12 -> Contract('CL', 2026, 12); None for any other id (FUT:CL, EQ:AAPL, ...)."""
    m = _CONTRACT_ID_RE.match(instrument_id)
    if not m or not 1 <= int(m.group(3)) <= 12:
        return None
    return Contract(m.group(1), int(m.group(2)), int(m.group(3)))


def split_symbol(symbol: str) -> tuple[str, int, str] | None:
    """'CLZ6' -> ('CL', 12, '6'); 'CLZ26' -> ('CL', 12, '26'); None if it is not root + month code + year."""
    m = _SYMBOL_RE.match(symbol.strip().upper())
    if not m:
        return None
    return m.group(1), MONTH_CODES.index(m.group(2)) + 1, m.group(3)


def parse_symbol(symbol: str, reference: date) -> Contract | None:
    """An outright contract symbol as exchanges and vendors send it -> Contract, or None (spreads such as
    'CLZ6-CLF7', options, unknown shapes). A two-digit year is taken as 20YY. A one-digit year (CME Globex,
    Databento's raw_symbol) names the first year on or after `reference`'s year that ends in that digit: a
    contract trades only before or in its contract year, so the event time of a record settles the decade."""
    parts = split_symbol(symbol)
    if parts is None:
        return None
    root, month, y = parts
    if len(y) == 2:
        year = 2000 + int(y)
    else:
        year = reference.year + (int(y) - reference.year % 10) % 10
    return Contract(root, year, month)


# ----------------------------------------------------------------------------------------- the roll rule
# The continuous front-month series holds the nearest listed contract until ROLL_BDAYS business days before its
# last trade date; on that roll date it switches to the next listed contract. A calendar roll, not a volume or
# open-interest crossover, because it is known in advance for every contract, is the same on every
# re-materialization of a day whatever ticks arrived late, and needs no second contract's data to decide;
# 5 business days keep the series out of the thin, delivery-driven last week of physically delivered
# contracts (CL, HO, RB, NG), where liquidity has already moved to the next month.
ROLL_BDAYS = 5


def roll_date(contract: Contract, roll_bdays: int = ROLL_BDAYS) -> date:
    """The first day on which the continuous series no longer uses `contract`."""
    return add_business_days(contract.last_trade_date, -roll_bdays)


def listed_after(contract: Contract) -> Contract:
    """The next listed contract month of the same root."""
    months = rule_for(contract.root).months
    y, m = contract.year, contract.month
    while True:
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        if MONTH_CODES[m - 1] in months:
            return Contract(contract.root, y, m)


def front_contract(root: str, day: date, roll_bdays: int = ROLL_BDAYS) -> Contract:
    """The contract the continuous series of `root` uses on `day`: the first listed one whose roll date is
    after `day`."""
    # Every rule here ends trading in or before the contract month, so no contract of an earlier month is live.
    c = Contract(root, day.year, day.month)
    if MONTH_CODES[day.month - 1] not in rule_for(root).months:
        c = listed_after(c)
    while roll_date(c, roll_bdays) <= day:
        c = listed_after(c)
    return c


def continuous_id(root: str) -> str:
    """The instrument id of the continuous front-month series: FUT:CL:C1."""
    return f"FUT:{root}:C1"
