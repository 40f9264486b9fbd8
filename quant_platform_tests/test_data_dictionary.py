"""The data dictionary is the catalog's printable export: every asset of the Definitions, documented,
with its columns, units, PII flags, checks, lineage and freshness; gaps are reported, never hidden.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import pytest

from quant_platform.errors import ConfigError
from quant_platform.governance.dictionary import (
    build_dictionary,
    dictionary_problems,
    export_dictionary,
    render_html,
    render_markdown,
)

GOOD_DESCRIPTION = "A well documented test table: one row per trade, as booked by the front office."
EVIL_DESCRIPTION = "<script>alert('x')</script> table & friends"


@pytest.fixture(scope="module")
def entries():
    return build_dictionary()


@pytest.fixture(scope="module")
def by_key(entries):
    return {e.key: e for e in entries}


@pytest.fixture(scope="module")
def markdown(entries):
    return render_markdown(entries)


@pytest.fixture(scope="module")
def html_page(entries):
    return render_html(entries)


def _small_defs() -> dg.Definitions:
    schema = dg.TableSchema(columns=[
        dg.TableColumn("trade_id", "text", description="Trade id."),
        dg.TableColumn("notional", "double precision", description="Notional | gross.",
                       tags={"unit": "US dollars"}),
        dg.TableColumn("trader_email", "text", description="Trader e-mail. PII (email).",
                       constraints=dg.TableColumnConstraints(other=["pii:email"]), tags={"pii": "true"}),
    ])

    @dg.asset(key=["core", "good_trades"], description=GOOD_DESCRIPTION, owners=["team:risk"],
              group_name="core", kinds={"pandas"}, metadata={"dagster/column_schema": schema},
              freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=24),
                                                              warn_window=timedelta(hours=12)),
              check_specs=[dg.AssetCheckSpec("trade_id_unique", asset=["core", "good_trades"], blocking=True,
                                             description="Trade ids are unique.")])
    def good_trades():
        return None

    @dg.asset(key=["core", "bad_trades"], deps=[["core", "good_trades"]])
    def bad_trades():
        return None

    @dg.asset(key=["core", "half_trades"], description=EVIL_DESCRIPTION, owners=["team:risk"],
              metadata={"dagster/column_schema": dg.TableSchema(columns=[
                  dg.TableColumn("price", "double precision", description="Price."),
                  dg.TableColumn("note", "text"),
              ])})
    def half_trades():
        return None

    return dg.Definitions(assets=[good_trades, bad_trades, half_trades])


@pytest.fixture(scope="module")
def small():
    return {e.key: e for e in build_dictionary(defs=_small_defs())}


def test_every_asset_of_the_definitions_is_in_the_dictionary(entries):
    from quant_platform.definitions import defs

    graph = defs.get_repository_def().asset_graph
    expected = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert [e.key for e in entries] == expected
    assert len(expected) >= 6
    for e in entries:
        assert e.description, e.key
        assert e.owners, e.key
        assert e.columns, e.key
        assert all(c.description for c in e.columns), e.key
        assert e.schema_table, e.key


def test_the_real_dictionary_has_no_documentation_gaps(entries):
    assert dictionary_problems(entries) == []


def test_entries_carry_what_the_catalog_says(by_key):
    wpsr = by_key["macro/eia_wpsr"]
    assert wpsr.group == "macro"
    assert wpsr.partitions == "weekly (Fridays, from 2010-01-01)"
    assert "30 11 * * 3" in wpsr.freshness and "Wednesday" in wpsr.freshness
    assert "America/New_York" in wpsr.freshness and "1 h 5 min" in wpsr.freshness
    assert wpsr.downstream == ["marts/us_crude_balance_weekly"]
    checks = {c.name: c for c in wpsr.checks}
    assert checks["release_on_time"].blocking is False
    assert checks["schema_and_types"].blocking is True
    assert all(c.description for c in wpsr.checks)
    assert by_key["macro/eia_series"].partitions.startswith("static: WCESTUS1, ")
    cot = by_key["macro/cftc_cot_disaggregated"]
    oi = next(c for c in cot.columns if c.name == "open_interest")
    assert oi.unit == "contracts" and "Unit:" not in oi.description
    balance = by_key["marts/us_crude_balance_weekly"]
    assert balance.partitions == "none"
    assert balance.automation == "rebuild when a report partition lands"
    assert balance.upstream == ["macro/eia_series", "macro/eia_wpsr"]
    assert "macro/eia_wpsr.value" in balance.column_lineage["commercial_crude_stocks"]


def test_problems_are_reported_for_the_undocumented_assets_only(small):
    assert small["core/good_trades"].problems == []
    bad = small["core/bad_trades"].problems
    assert any("no description" in p for p in bad)
    assert any("no owner" in p for p in bad)
    assert any("no column schema" in p for p in bad)
    assert all(p.startswith("core/bad_trades") for p in bad)
    half = small["core/half_trades"].problems
    assert half == ["core/half_trades.price: numeric column (double precision) without a unit",
                    "core/half_trades.note: no column description"]
    assert sorted(dictionary_problems(small.values())) == sorted(bad + half)


def test_pii_and_units_come_from_the_column_schema(small):
    good = small["core/good_trades"]
    cols = {c.name: c for c in good.columns}
    assert cols["trader_email"].pii is True and cols["trader_email"].pii_category == "email"
    assert cols["trader_email"].description == "Trader e-mail."
    assert cols["notional"].unit == "US dollars" and cols["notional"].pii is False
    assert good.freshness == "materialized at least every 1 day (warning after 12 h)"
    assert good.checks == [("trade_id_unique", "Trade ids are unique.", True)]
    assert small["core/bad_trades"].upstream == ["core/good_trades"]
    assert good.downstream == ["core/bad_trades"]


def test_markdown_has_every_asset_column_unit_freshness_and_lineage(entries, by_key, markdown):
    assert "generated from the Dagster Definitions by `quant-platform catalog export`; do not edit" in markdown
    for e in entries:
        assert f"## {e.key}" in markdown
    for col in by_key["macro/eia_wpsr"].columns:
        assert f"| {col.name} |" in markdown
    assert "| open_interest | bigint | contracts |" in markdown
    wpsr_section = markdown.split("## macro/eia_wpsr\n", 1)[1].split("\n## ", 1)[0]
    assert "30 11 * * 3" in wpsr_section and "America/New_York" in wpsr_section
    balance = markdown.split("## marts/us_crude_balance_weekly\n", 1)[1]
    assert "[macro/eia_wpsr](#asset-macro-eia_wpsr)" in balance
    assert "[macro/eia_series](#asset-macro-eia_series)" in balance
    assert '<a id="asset-macro-eia_wpsr"></a>' in markdown
    lineage_row = next(line for line in balance.splitlines() if line.startswith("| commercial_crude_stocks | macro/"))
    assert "macro/eia_wpsr.value" in lineage_row and "macro/eia_series.value" in lineage_row
    assert "| schema_and_types | blocking |" in markdown and "| release_on_time | warn |" in markdown


def test_markdown_escapes_pipes_and_flags_pii(small):
    md = render_markdown(list(small.values()))
    assert "Notional \\| gross." in md
    assert "| trader_email | text |   | **PII** (email) | Trader e-mail. |" in md
    assert "\\<script>alert('x')\\</script> table & friends" in md  # CommonMark: a literal '<', no tag
    assert re.search(r"(?<!\\)<script>", md) is None
    assert "Documentation gaps" in md


def test_html_has_every_asset_column_unit_freshness_and_lineage(entries, by_key, html_page):
    # Self-contained: inline CSS, no script, nothing fetched from elsewhere.
    assert "<style>" in html_page and "<script" not in html_page
    assert re.search(r"<link\b|\bsrc=|@import|url\(", html_page) is None
    for e in entries:
        anchor = "asset-" + e.key.replace("/", "-")
        assert f'id="{anchor}"' in html_page
        assert f">{e.key}</a>" in html_page
    for col in by_key["macro/eia_wpsr"].columns:
        assert f"<code>{col.name}</code>" in html_page
    assert "<td>contracts</td>" in html_page
    wpsr = html_page.split('id="asset-macro-eia_wpsr"', 1)[1].split("</section>", 1)[0]
    assert "30 11 * * 3" in wpsr and "America/New_York" in wpsr
    balance = html_page.split('id="asset-marts-us_crude_balance_weekly"', 1)[1].split("</section>", 1)[0]
    assert '<a href="#asset-macro-eia_wpsr">macro/eia_wpsr</a>' in balance
    assert '<a href="#asset-macro-eia_series">macro/eia_series</a>' in balance
    assert '<a href="#asset-macro-eia_wpsr">macro/eia_wpsr</a>.value' in balance


def test_html_escapes_text_and_flags_pii(small):
    page = render_html(list(small.values()))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; table &amp; friends" in page
    assert '<tr class="pii">' in page and '<span class="pii">PII</span> email' in page
    assert page.count('<tr class="pii">') == 1


class _TagBalance(HTMLParser):
    CHECKED = {"html", "head", "body", "table", "thead", "tbody", "tr", "td", "th", "section", "ul", "li", "a",
               "h1", "h2", "h3", "p", "code", "span", "div", "dl", "dt", "dd", "style", "title", "strong", "em"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag in self.CHECKED:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag not in self.CHECKED:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def test_export_writes_both_files_and_the_html_is_well_formed(tmp_path):
    out = tmp_path / "dictionary"
    paths = export_dictionary(out)
    assert paths == [out / "data_dictionary.md", out / "data_dictionary.html"]
    assert sorted(p.name for p in out.iterdir()) == ["data_dictionary.html", "data_dictionary.md"]
    assert "## macro/eia_wpsr" in paths[0].read_text()
    parser = _TagBalance()
    parser.feed(paths[1].read_text())
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert parser.counts["section"] >= 7 and parser.counts["table"] >= 7
    assert export_dictionary(tmp_path / "md_only", formats="md", defs=_small_defs()) == [
        tmp_path / "md_only" / "data_dictionary.md"]


def test_export_refuses_an_unwritable_directory_or_unknown_format(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write the data dictionary"):
        export_dictionary(blocker / "sub", defs=_small_defs())
    with pytest.raises(ConfigError, match="cannot write the data dictionary"):
        export_dictionary(Path(blocker), defs=_small_defs())
    with pytest.raises(ConfigError, match="unknown data dictionary format 'pdf'"):
        export_dictionary(tmp_path / "x", formats=("md", "pdf"), defs=_small_defs())
    assert not (tmp_path / "x").exists()
