"""The data dictionary: a printable export of the Dagster catalog for auditors (Markdown and HTML).

Never hand-write an entry here: every line is derived from the Definitions, so the export can only
say what the catalog says. A gap in the catalog (no description, owner, column schema, column
description, unit on a floating-point column) is reported as a problem, never papered over.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg

from quant_platform.errors import ConfigError

GENERATION_NOTE = "generated from the Dagster Definitions by `quant-platform catalog export`; do not edit"
TITLE = "Data dictionary of the quant platform"
FILE_NAMES = {"md": "data_dictionary.md", "html": "data_dictionary.html"}

# Column types (as written in a TableColumn) that hold floating-point measurements: each needs a unit.
FLOAT_TYPES = frozenset({"double precision", "double", "float", "float4", "float8", "float64", "real"})

_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MAX_STATIC_KEYS = 20


@dataclass
class DictionaryColumn:
    name: str
    type: str
    description: str
    unit: str | None
    pii: bool
    pii_category: str | None


class DictionaryCheck(NamedTuple):
    """An asset check: a (name, description, blocking) tuple."""

    name: str
    description: str
    blocking: bool


@dataclass
class DictionaryEntry:
    key: str
    schema_table: str
    description: str
    owners: list[str]
    group: str
    kinds: list[str]
    partitions: str
    freshness: str
    automation: str
    checks: list[DictionaryCheck]
    upstream: list[str]
    downstream: list[str]
    columns: list[DictionaryColumn]
    column_lineage: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def pii_columns(self) -> list[DictionaryColumn]:
        return [c for c in self.columns if c.pii]


# ---------------------------------------------------------------------------------------------------
# Building the entries from the asset graph
# ---------------------------------------------------------------------------------------------------


def build_dictionary(defs: dg.Definitions | None = None) -> list[DictionaryEntry]:
    """One entry per asset of the Definitions' asset graph, sorted by asset key."""
    if defs is None:
        from quant_platform.definitions import defs as platform_defs

        defs = platform_defs
    graph = defs.get_repository_def().asset_graph
    entries = [_entry(graph, key) for key in graph.get_all_asset_keys()]
    return sorted(entries, key=lambda e: e.key)


def dictionary_problems(entries: Iterable[DictionaryEntry]) -> list[str]:
    """Every documentation gap of every entry, each prefixed with its asset key."""
    return [p for e in entries for p in e.problems]


def _entry(graph: Any, key: dg.AssetKey) -> DictionaryEntry:
    node = graph.get(key)
    name = key.to_user_string()
    metadata = node.metadata or {}
    columns = _columns(_metadata_value(metadata.get("dagster/column_schema")))
    checks = []
    for check_key in sorted(graph.get_check_keys_for_assets([key]), key=lambda k: k.name):
        check_node = graph.get(check_key)
        checks.append(DictionaryCheck(check_key.name, (check_node.description or "").strip(),
                                      bool(check_node.blocking)))
    entry = DictionaryEntry(
        key=name,
        schema_table=str(_metadata_value(metadata.get("dagster/table_name")) or ""),
        description=(node.description or "").strip(),
        owners=list(node.owners or []),
        group=node.group_name or "",
        kinds=sorted(node.kinds or []),
        partitions=describe_partitions(node.partitions_def),
        freshness=describe_freshness(node.freshness_policy),
        automation=describe_automation(node.automation_condition),
        checks=checks,
        upstream=sorted(k.to_user_string() for k in node.parent_keys),
        downstream=sorted(k.to_user_string() for k in node.child_keys),
        columns=columns or [],
        column_lineage=_lineage(_metadata_value(metadata.get("dagster/column_lineage"))),
    )
    entry.problems = _problems(name, entry, has_schema=columns is not None)
    return entry


def _metadata_value(value: Any) -> Any:
    """Metadata may hold the raw object (TableSchema) or its MetadataValue wrapper."""
    if isinstance(value, dg.MetadataValue):
        return value.value
    return value


def _columns(schema: Any) -> list[DictionaryColumn] | None:
    if not isinstance(schema, dg.TableSchema):
        return None
    out = []
    for col in schema.columns:
        tags = dict(col.tags or {})
        unit = tags.get("unit") or None
        others = list(col.constraints.other or []) if col.constraints else []
        categories = [o.split(":", 1)[1].strip() for o in others if o.startswith("pii:")]
        pii = str(tags.get("pii", "")).lower() == "true" or bool(categories)
        category = categories[0] if categories else None
        out.append(DictionaryColumn(
            name=col.name,
            type=col.type or "",
            description=_own_description(col.description or "", unit, category if pii else None),
            unit=unit,
            pii=pii,
            pii_category=category,
        ))
    return out


def _own_description(description: str, unit: str | None, pii_category: str | None) -> str:
    """Drop the ' Unit: x.' and ' PII (y).' suffixes column_schema() adds: they have columns of their own."""
    text = description.strip()
    if pii_category and text.endswith(f"PII ({pii_category})."):
        text = text[: -len(f"PII ({pii_category}).")].rstrip()
    if unit and text.endswith(f"Unit: {unit}."):
        text = text[: -len(f"Unit: {unit}.")].rstrip()
    return text


def _lineage(lineage: Any) -> dict[str, list[str]]:
    if not isinstance(lineage, dg.TableColumnLineage):
        return {}
    return {
        column: [f"{dep.asset_key.to_user_string()}.{dep.column_name}" for dep in deps]
        for column, deps in lineage.deps_by_column.items()
    }


def _problems(name: str, entry: DictionaryEntry, *, has_schema: bool) -> list[str]:
    problems = []
    if not entry.description:
        problems.append(f"{name}: no description")
    if not entry.owners:
        problems.append(f"{name}: no owner")
    if not has_schema:
        problems.append(f"{name}: no column schema (metadata 'dagster/column_schema')")
    elif not entry.columns:
        problems.append(f"{name}: the column schema has no columns")
    for col in entry.columns:
        if not col.description:
            problems.append(f"{name}.{col.name}: no column description")
        if col.type.strip().lower() in FLOAT_TYPES and not col.unit:
            problems.append(f"{name}.{col.name}: numeric column ({col.type}) without a unit")
    return problems


# ---------------------------------------------------------------------------------------------------
# Human text for partitions, freshness and automation
# ---------------------------------------------------------------------------------------------------


def describe_partitions(pdef: Any) -> str:
    if pdef is None:
        return "none"
    if isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        return _describe_time_partitions(pdef)
    if isinstance(pdef, dg.StaticPartitionsDefinition):
        keys = list(pdef.get_partition_keys())
        shown = ", ".join(keys[:_MAX_STATIC_KEYS])
        if len(keys) > _MAX_STATIC_KEYS:
            shown += f", ... ({len(keys)} keys)"
        return f"static: {shown}"
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return f"dynamic: {pdef.name}" if pdef.name else "dynamic"
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        dims = "; ".join(f"{d.name} = {describe_partitions(d.partitions_def)}" for d in pdef.partitions_defs)
        return f"multi: {dims}"
    return type(pdef).__name__


def _describe_time_partitions(pdef: dg.TimeWindowPartitionsDefinition) -> str:
    cron = pdef.cron_schedule
    fields = cron.split()
    start = pdef.start
    at = ""
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and (fields[0], fields[1]) != ("0", "0"):
        at = f" {int(fields[1]):02d}:{int(fields[0]):02d}"
    if re.fullmatch(r"\d+ \* \* \* \*", cron):
        return f"hourly (from {start:%Y-%m-%d %H:%M})"
    if re.fullmatch(r"\d+ \d+ \* \* \*", cron):
        return f"daily ({'at' + at + ', ' if at else ''}from {start:%Y-%m-%d})"
    if re.fullmatch(r"\d+ \d+ \* \* \d+", cron):
        day = _DAY_NAMES[int(fields[4]) % 7]
        return f"weekly ({day}s{at}, from {start:%Y-%m-%d})"
    if re.fullmatch(r"\d+ \d+ \d+ \* \*", cron):
        return f"monthly (day {int(fields[2])}{at}, from {start:%Y-%m-%d})"
    return f"time windows on cron {cron} (from {start:%Y-%m-%d %H:%M})"


def describe_freshness(policy: Any) -> str:
    if policy is None:
        return "none"
    deadline_cron = getattr(policy, "deadline_cron", None)
    if deadline_cron:
        timezone = getattr(policy, "timezone", None) or "UTC"
        when = _describe_cron(deadline_cron)
        if when:
            text = f"deadline {when} {timezone} (cron {deadline_cron})"
        else:
            text = f"deadline cron {deadline_cron}, {timezone}"
        lower = getattr(policy, "lower_bound_delta", None)
        if isinstance(lower, timedelta):
            text += f"; each deadline needs a materialization made no earlier than {_duration(lower)} before it"
        return text
    fail_window = getattr(policy, "fail_window", None)
    if fail_window is not None:
        text = f"materialized at least every {_duration(_to_timedelta(fail_window))}"
        warn_window = getattr(policy, "warn_window", None)
        if warn_window is not None:
            text += f" (warning after {_duration(_to_timedelta(warn_window))})"
        return text
    maximum_lag_minutes = getattr(policy, "maximum_lag_minutes", None)  # legacy policy
    if maximum_lag_minutes is not None:
        text = f"at most {_duration(timedelta(minutes=maximum_lag_minutes))} behind its sources"
        if getattr(policy, "cron_schedule", None):
            text += f" by cron {policy.cron_schedule}, {getattr(policy, 'cron_schedule_timezone', None) or 'UTC'}"
        return text
    return type(policy).__name__


def _to_timedelta(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return value.to_timedelta()


def _duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day" + ("s" if days != 1 else ""))
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if seconds or not parts:
        parts.append(f"{seconds} s")
    return " ".join(parts)


def _days(field_text: str) -> str | None:
    """'3' -> 'Wednesday', '1-5' -> 'Monday to Friday', '1,3' -> 'Monday, Wednesday'."""
    parts = []
    for part in field_text.split(","):
        m = re.fullmatch(r"([0-7])(?:-([0-7]))?", part)
        if not m:
            return None
        first = _DAY_NAMES[int(m.group(1)) % 7]
        parts.append(f"{first} to {_DAY_NAMES[int(m.group(2)) % 7]}" if m.group(2) else first)
    return ", ".join(parts)


def _describe_cron(cron: str) -> str | None:
    """'30 11 * * 3' -> 'every Wednesday at 11:30'; None when the cron is not a simple one."""
    fields = cron.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if not minute.isdigit():
        return None
    if hour == "*" and (dom, month, dow) == ("*", "*", "*"):
        return f"every hour at minute {int(minute)}"
    if not hour.isdigit():
        return None
    at = f"{int(hour):02d}:{int(minute):02d}"
    if month != "*":
        return None
    if dom == "*" and dow == "*":
        return f"every day at {at}"
    if dom == "*":
        days = _days(dow)
        return f"every {days} at {at}" if days else None
    if dom.isdigit() and dow == "*":
        return f"every month on day {int(dom)} at {at}"
    return None


def describe_automation(condition: Any) -> str:
    if condition is None:
        return "none"
    return _condition_text(condition)


def _condition_text(condition: Any) -> str:
    label = condition.get_label()
    if label:
        return label
    children = list(condition.children)
    if not children:
        return condition.name
    return f"{condition.name}({', '.join(_condition_text(c) for c in children)})"


# ---------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------


def _anchors(entries: Sequence[DictionaryEntry]) -> dict[str, str]:
    """A unique HTML id per asset key."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for e in entries:
        base = "asset-" + re.sub(r"[^A-Za-z0-9_-]+", "-", e.key).strip("-")
        anchor, n = base, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        out[e.key] = anchor
    return out


def _md_text(value: object) -> str:
    """Plain text for Markdown: a literal '<' never opens an HTML tag."""
    return str(value).replace("\\", "\\\\").replace("<", "\\<")


def _md_cell(value: object) -> str:
    text = _md_text(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text.replace("|", "\\|") or " "


def _md_link(key: str, anchors: dict[str, str]) -> str:
    if key in anchors:
        return f"[{_md_text(key)}](#{anchors[key]})"
    return f"{_md_text(key)} (not in this dictionary)"


def _owners_text(e: DictionaryEntry) -> str:
    return ", ".join(e.owners) or "none"


def render_markdown(entries: Sequence[DictionaryEntry]) -> str:
    entries = list(entries)
    anchors = _anchors(entries)
    lines = [f"# {TITLE}", "", f"_{GENERATION_NOTE}_", "",
             f"{len(entries)} assets, {sum(len(e.columns) for e in entries)} columns, "
             f"{sum(len(e.pii_columns) for e in entries)} PII columns.", ""]
    problems = dictionary_problems(entries)
    if problems:
        lines += ["## Documentation gaps", ""]
        lines += [f"- {_md_text(p)}" for p in problems]
        lines.append("")
    lines += ["## Summary", "",
              "| asset | group | owner | partitions | freshness | #columns | #PII columns |",
              "| --- | --- | --- | --- | --- | ---: | ---: |"]
    for e in entries:
        cells = [f"[{_md_cell(e.key)}](#{anchors[e.key]})", _md_cell(e.group or "none"),
                 _md_cell(_owners_text(e)), _md_cell(e.partitions), _md_cell(e.freshness),
                 str(len(e.columns)), str(len(e.pii_columns))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for e in entries:
        lines += [f'<a id="{anchors[e.key]}"></a>', "", f"## {_md_text(e.key)}", ""]
        lines += [_md_text(e.description) if e.description else "_No description._", ""]
        facts = [
            ("Table", e.schema_table or "none"),
            ("Owners", _owners_text(e)),
            ("Group", e.group or "none"),
            ("Kinds", ", ".join(e.kinds) or "none"),
            ("Partitions", e.partitions),
            ("Freshness", e.freshness),
            ("Automation", e.automation),
        ]
        lines += [f"- **{label}:** {_md_text(value)}" for label, value in facts]
        up = ", ".join(_md_link(k, anchors) for k in e.upstream) or "none"
        down = ", ".join(_md_link(k, anchors) for k in e.downstream) or "none"
        lines += [f"- **Upstream:** {up}", f"- **Downstream:** {down}", ""]
        if e.problems:
            lines += ["**Documentation gaps:**", ""] + [f"- {_md_text(p)}" for p in e.problems] + [""]
        lines += ["### Checks", ""]
        if e.checks:
            lines += ["| check | severity | description |", "| --- | --- | --- |"]
            lines += [f"| {_md_cell(c.name)} | {'blocking' if c.blocking else 'warn'} | {_md_cell(c.description)} |"
                      for c in e.checks]
        else:
            lines.append("none")
        lines += ["", "### Columns", ""]
        if e.columns:
            lines += ["| column | type | unit | PII | description |", "| --- | --- | --- | --- | --- |"]
            for c in e.columns:
                pii = f"**PII** ({c.pii_category})" if c.pii and c.pii_category else ("**PII**" if c.pii else "")
                lines.append(f"| {_md_cell(c.name)} | {_md_cell(c.type)} | {_md_cell(c.unit or '')} | "
                             f"{_md_cell(pii)} | {_md_cell(c.description)} |")
        else:
            lines.append("No column schema.")
        lines.append("")
        if e.column_lineage:
            lines += ["### Column lineage", "", "| column | derived from |", "| --- | --- |"]
            lines += [f"| {_md_cell(col)} | {_md_cell(', '.join(deps))} |" for col, deps in e.column_lineage.items()]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #1b1f24;
       line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
.note { color: #57606a; font-style: italic; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em 0; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; font-size: 0.92em; }
th { background: #f6f8fa; }
td.num { text-align: right; }
section.asset { border-top: 2px solid #d0d7de; padding-top: 0.8em; margin-top: 1.6em; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
dl.facts dt { font-weight: bold; }
dl.facts dd { margin: 0; }
tr.pii td { background: #fff4e5; }
span.pii { background: #d1242f; color: #fff; font-weight: bold; padding: 0 5px; border-radius: 3px; }
.gaps { background: #ffebe9; border: 1px solid #d1242f; padding: 0.4em 1em; }
.blocking { color: #d1242f; font-weight: bold; }
.warn { color: #9a6700; font-weight: bold; }
code { background: #f6f8fa; padding: 0 3px; }
@media print { section.asset { page-break-before: always; } a { color: inherit; text-decoration: none; } }
""".strip()


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_link(key: str, anchors: dict[str, str]) -> str:
    if key in anchors:
        return f'<a href="#{_h(anchors[key])}">{_h(key)}</a>'
    return f"{_h(key)} (not in this dictionary)"


def _html_row(cells: Iterable[str], cls: str | None = None, header: bool = False) -> str:
    tag = "th" if header else "td"
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def render_html(entries: Sequence[DictionaryEntry]) -> str:
    entries = list(entries)
    anchors = _anchors(entries)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{_h(TITLE)}</title>", f"<style>\n{_CSS}\n</style>", "</head>", "<body>",
           f"<h1>{_h(TITLE)}</h1>", f'<p class="note">{_h(GENERATION_NOTE)}</p>',
           f"<p>{len(entries)} assets, {sum(len(e.columns) for e in entries)} columns, "
           f"{sum(len(e.pii_columns) for e in entries)} PII columns.</p>"]
    problems = dictionary_problems(entries)
    if problems:
        out += ['<div class="gaps">', "<h2>Documentation gaps</h2>", "<ul>"]
        out += [f"<li>{_h(p)}</li>" for p in problems]
        out += ["</ul>", "</div>"]
    out += ['<section id="summary">', "<h2>Summary</h2>", "<table>", "<thead>",
            _html_row(["asset", "group", "owner", "partitions", "freshness", "#columns", "#PII columns"],
                      header=True), "</thead>", "<tbody>"]
    for e in entries:
        pii_count = len(e.pii_columns)
        pii_cell = f'{pii_count} <span class="pii">PII</span>' if pii_count else "0"
        out.append(
            "<tr>"
            f'<td><a href="#{_h(anchors[e.key])}">{_h(e.key)}</a></td><td>{_h(e.group or "none")}</td>'
            f"<td>{_h(_owners_text(e))}</td><td>{_h(e.partitions)}</td><td>{_h(e.freshness)}</td>"
            f'<td class="num">{len(e.columns)}</td>'
            f'<td class="num">{pii_cell}</td>'
            "</tr>"
        )
    out += ["</tbody>", "</table>", "</section>"]
    for e in entries:
        out += [f'<section class="asset" id="{_h(anchors[e.key])}">', f"<h2>{_h(e.key)}</h2>",
                f"<p>{_h(e.description)}</p>" if e.description else "<p><em>No description.</em></p>",
                '<dl class="facts">']
        facts = [
            ("Table", _h(e.schema_table or "none")),
            ("Owners", _h(_owners_text(e))),
            ("Group", _h(e.group or "none")),
            ("Kinds", _h(", ".join(e.kinds) or "none")),
            ("Partitions", _h(e.partitions)),
            ("Freshness", _h(e.freshness)),
            ("Automation", _h(e.automation)),
            ("Upstream", ", ".join(_html_link(k, anchors) for k in e.upstream) or "none"),
            ("Downstream", ", ".join(_html_link(k, anchors) for k in e.downstream) or "none"),
        ]
        out += [f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts]
        out.append("</dl>")
        if e.problems:
            out += ['<div class="gaps">', "<strong>Documentation gaps</strong>", "<ul>"]
            out += [f"<li>{_h(p)}</li>" for p in e.problems]
            out += ["</ul>", "</div>"]
        out.append("<h3>Checks</h3>")
        if e.checks:
            out += ["<table>", "<thead>", _html_row(["check", "severity", "description"], header=True),
                    "</thead>", "<tbody>"]
            for c in e.checks:
                sev = '<span class="blocking">blocking</span>' if c.blocking else '<span class="warn">warn</span>'
                out.append(_html_row([_h(c.name), sev, _h(c.description)]))
            out += ["</tbody>", "</table>"]
        else:
            out.append("<p>none</p>")
        out.append("<h3>Columns</h3>")
        if e.columns:
            out += ["<table>", "<thead>", _html_row(["column", "type", "unit", "PII", "description"], header=True),
                    "</thead>", "<tbody>"]
            for c in e.columns:
                pii = ""
                if c.pii:
                    pii = '<span class="pii">PII</span>' + (f" {_h(c.pii_category)}" if c.pii_category else "")
                out.append(_html_row([f"<code>{_h(c.name)}</code>", _h(c.type), _h(c.unit or ""), pii,
                                      _h(c.description)], cls="pii" if c.pii else None))
            out += ["</tbody>", "</table>"]
        else:
            out.append("<p><em>No column schema.</em></p>")
        if e.column_lineage:
            out += ["<h3>Column lineage</h3>", "<table>", "<thead>",
                    _html_row(["column", "derived from"], header=True), "</thead>", "<tbody>"]
            for col, deps in e.column_lineage.items():
                links = []
                for dep in deps:
                    asset, _, column = dep.rpartition(".")
                    if asset in anchors:
                        links.append(f'<a href="#{_h(anchors[asset])}">{_h(asset)}</a>.{_h(column)}')
                    else:
                        links.append(_h(dep))
                out.append(_html_row([f"<code>{_h(col)}</code>", ", ".join(links)]))
            out += ["</tbody>", "</table>"]
        out.append("</section>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------


def _formats(formats: str | Iterable[str]) -> list[str]:
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for f in items:
        f = f.strip().lower()
        if not f:
            continue
        if f not in FILE_NAMES:
            raise ConfigError(f"unknown data dictionary format {f!r}: choose from {', '.join(FILE_NAMES)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ConfigError(f"no data dictionary format given: choose from {', '.join(FILE_NAMES)}")
    return out


def export_dictionary(out_dir: Path, formats: str | Iterable[str] = ("md", "html"),
                      defs: dg.Definitions | None = None) -> list[Path]:
    """Write data_dictionary.md / data_dictionary.html into out_dir; return the written paths."""
    wanted = _formats(formats)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the data dictionary to {out_dir}: {exc.strerror or exc}") from exc
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write the data dictionary to {out_dir}: not a writable directory")
    entries = build_dictionary(defs)
    renderers = {"md": render_markdown, "html": render_html}
    written = []
    for f in wanted:
        target = out_dir / FILE_NAMES[f]
        tmp = out_dir / f".{FILE_NAMES[f]}.{os.getpid()}.tmp"
        try:
            tmp.write_text(renderers[f](entries), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise ConfigError(f"cannot write the data dictionary to {target}: {exc.strerror or exc}") from exc
        written.append(target)
    return written


__all__ = [
    "DictionaryCheck",
    "DictionaryColumn",
    "DictionaryEntry",
    "build_dictionary",
    "dictionary_problems",
    "export_dictionary",
    "render_html",
    "render_markdown",
]
