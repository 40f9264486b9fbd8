"""Great Expectations 1.x suites run inside Dagster asset checks (dagster-ge only supports GX < 1.0).

Never let GX write a project folder or phone home: the context is ephemeral and analytics are off.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache

import pandas as pd

from quant_platform.platform.tables import TableSpec
from quant_platform.quality.rules import GX_SUITE, RULE_DESCRIPTIONS, RuleOutcome

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return ctx


def expectations_for(spec: TableSpec, extra: list | None = None) -> list:
    """The suite of a table: derived from its declaration, plus table-specific expectations."""
    import great_expectations as gx

    exps = [gx.expectations.ExpectTableColumnsToMatchSet(column_set=spec.column_names, exact_match=True)]
    for c in spec.columns:
        if not c.nullable:
            exps.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=c.name))
        if c.allowed_values:
            exps.append(gx.expectations.ExpectColumnValuesToBeInSet(column=c.name, value_set=list(c.allowed_values)))
        if c.min_value is not None or c.max_value is not None:
            exps.append(gx.expectations.ExpectColumnValuesToBeBetween(
                column=c.name, min_value=c.min_value, max_value=c.max_value))
    if len(spec.primary_key) > 1:
        exps.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(spec.primary_key)))
    else:
        exps.append(gx.expectations.ExpectColumnValuesToBeUnique(column=spec.primary_key[0]))
    return exps + list(extra or [])


def run_suite(spec: TableSpec, df: pd.DataFrame, extra: list | None = None) -> RuleOutcome:
    """Validate `df` with the table's GX suite and summarise the result for a Dagster check."""
    import great_expectations as gx

    with _lock:
        ctx = _context()
        name = f"qp_{spec.schema}_{spec.name}"
        try:
            source = ctx.data_sources.get(name)
        except (KeyError, ValueError):
            source = ctx.data_sources.add_pandas(name)
        try:
            asset = source.get_asset("frame")
        except (LookupError, ValueError):
            asset = source.add_dataframe_asset("frame")
        try:
            batch_def = asset.get_batch_definition("whole")
        except (KeyError, ValueError):
            batch_def = asset.add_batch_definition_whole_dataframe("whole")
        batch = batch_def.get_batch(batch_parameters={"dataframe": _gx_frame(df)})
        suite = gx.ExpectationSuite(name=f"{spec.qualified_name}.suite")
        for e in expectations_for(spec, extra):
            suite.add_expectation(e)
        result = batch.validate(suite)
    failed = [r for r in result.results if not r.success]
    details = []
    for r in failed[:10]:
        cfg = r.expectation_config
        col = cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or ""
        unexpected = (r.result or {}).get("unexpected_count")
        details.append(f"{cfg.type}({col}) unexpected={unexpected}")
    return RuleOutcome(GX_SUITE, bool(result.success), RULE_DESCRIPTIONS[GX_SUITE], {
        "expectations": len(result.results),
        "failed_expectations": len(failed),
        "failures": "; ".join(details) or "none",
        "gx_version": gx.__version__,
    })


def _gx_frame(df: pd.DataFrame) -> pd.DataFrame:
    # GX compares dates and nullable extension dtypes poorly; give it plain numpy/object columns.
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.api.extensions.ExtensionDtype) and not isinstance(
            out[c].dtype, pd.DatetimeTZDtype
        ):
            out[c] = out[c].astype("object").where(out[c].notna(), None)
    return out
