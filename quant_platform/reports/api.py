"""The reports REST API (`quant-platform reports serve`): list the daily reports, get one as JSON, HTML or
Markdown, query findings by metric, kind, desk, time and probability, and a health check; OpenAPI docs at
/docs and /openapi.json. FastAPI on uvicorn.

Never write anything and never serve a column that is not in reports.findings or reports.daily_reports (neither
holds personal data): every route is a GET over those tables and the report files they name.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel

from quant_platform.reports.tables import DAILY_REPORTS, DESKS, FINDINGS

MAX_LIMIT = 1000


class Finding(BaseModel):
    finding_id: str
    family: str
    series_id: str
    desk: str
    entity: str
    metric: str
    unit: str
    kind: str
    occurred_at: datetime
    detected_at: datetime
    probability: float
    surprise: float
    magnitude: float | None
    magnitude_sd: float | None
    estimate_before: float | None
    estimate_after: float | None
    score: float
    source_asset: str
    source_partition: str
    detector_version: str
    recorded_at: datetime


class ReportEntry(BaseModel):
    report_date: date
    window_days: int
    findings_shown: int
    findings_in_window: int
    desks: str
    content_sha256: str
    generated_at: datetime
    links: dict[str, str]


class Health(BaseModel):
    status: str
    warehouse: str
    reports: int
    findings: int


def _records(df: pd.DataFrame) -> list[dict]:
    df = df.astype(object).where(pd.notna(df), None)
    return df.to_dict(orient="records")


def create_app(warehouse, lake_root: Path) -> FastAPI:
    """The app over one warehouse and lake (both read only)."""
    app = FastAPI(title="quant_platform reports", version="1",
                  description="Daily reports and findings of the platform's online Bayesian detectors "
                              "(change points, outliers, trends over market, macro and platform metrics). "
                              "Read only.")
    finding_cols = ", ".join(FINDINGS.column_names)
    report_cols = ", ".join(c for c in DAILY_REPORTS.column_names)

    def _entry(row: dict) -> ReportEntry:
        day = pd.Timestamp(row["report_date"]).date().isoformat()
        return ReportEntry(**{k: row[k] for k in ReportEntry.model_fields if k in row}, links={
            "json": f"/reports/{day}", "html": f"/reports/{day}.html", "markdown": f"/reports/{day}.md"})

    def _report_row(day: str) -> dict:
        try:
            d = date.fromisoformat(day)
        except ValueError as exc:
            raise HTTPException(422, f"report date must be YYYY-MM-DD, got {day!r}") from exc
        df = warehouse.query_df(f"SELECT {report_cols} FROM reports.daily_reports WHERE report_date = :d",  # noqa: S608
                                {"d": d})
        if df.empty:
            raise HTTPException(404, f"no report for {day}")
        return _records(df)[0]

    def _body(row: dict, key: str) -> str:
        path = (lake_root / row[key]).resolve()
        if lake_root.resolve() not in path.parents or not path.is_file():
            raise HTTPException(404, f"report file for {row['report_date']} is missing from the lake")
        return path.read_text(encoding="utf-8")

    @app.get("/health", response_model=Health, summary="Liveness and what the API can see")
    def health() -> Health:
        n_rep = int(warehouse.scalar("SELECT count(*) FROM reports.daily_reports") or 0)
        n_find = int(warehouse.scalar("SELECT count(*) FROM reports.findings") or 0)
        return Health(status="ok", warehouse=warehouse.backend, reports=n_rep, findings=n_find)

    @app.get("/reports", response_model=list[ReportEntry], summary="The daily reports, newest first")
    def list_reports(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 60) -> list[ReportEntry]:
        df = warehouse.query_df(f"SELECT {report_cols} FROM reports.daily_reports "  # noqa: S608
                                "ORDER BY report_date DESC LIMIT :limit", {"limit": limit})
        return [_entry(r) for r in _records(df)]

    @app.get("/reports/{day}.html", response_class=HTMLResponse, summary="A daily report as HTML (inline SVG plots)")
    def report_html(day: str) -> HTMLResponse:
        return HTMLResponse(_body(_report_row(day), "html_path"))

    @app.get("/reports/{day}.md", response_class=PlainTextResponse, summary="A daily report as Markdown")
    def report_markdown(day: str) -> PlainTextResponse:
        return PlainTextResponse(_body(_report_row(day), "markdown_path"), media_type="text/markdown")

    @app.get("/reports/{day}", summary="A daily report as JSON: its findings with the series they plot")
    def report_json(day: str, format: Literal["json", "html", "md"] = "json"):
        row = _report_row(day)
        if format == "html":
            return HTMLResponse(_body(row, "html_path"))
        if format == "md":
            return PlainTextResponse(_body(row, "markdown_path"), media_type="text/markdown")
        import json

        return json.loads(_body(row, "json_path"))

    @app.get("/findings", response_model=list[Finding], summary="Findings, best first, filtered")
    def findings(
        metric: Annotated[str | None, Query(description="metric name, e.g. volume")] = None,
        series_id: Annotated[str | None, Query(description="exact series, e.g. CRYPTO:BTC-USDT|volume")] = None,
        entity: Annotated[str | None, Query(description="instrument or series, e.g. EQ:AAPL")] = None,
        kind: Literal["change_point", "outlier", "trend"] | None = None,
        desk: Literal[DESKS] | None = None,  # type: ignore[valid-type]
        since: Annotated[datetime | None, Query(description="detected at or after (ISO 8601)")] = None,
        until: Annotated[datetime | None, Query(description="detected before (ISO 8601)")] = None,
        min_probability: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> list[Finding]:
        where, params = ["probability >= :p"], {"p": min_probability, "limit": limit}
        for col, value in (("metric", metric), ("series_id", series_id), ("entity", entity), ("kind", kind),
                           ("desk", desk)):
            if value is not None:
                where.append(f"{col} = :{col}")
                params[col] = value
        if since is not None:
            where.append("detected_at >= :since")
            params["since"] = since
        if until is not None:
            where.append("detected_at < :until")
            params["until"] = until
        df = warehouse.query_df(f"SELECT {finding_cols} FROM reports.findings WHERE {' AND '.join(where)} "  # noqa: S608
                                "ORDER BY score DESC, probability DESC, finding_id LIMIT :limit", params)
        return [Finding(**r) for r in _records(df)]

    return app


def serve(host: str, port: int, warehouse_url: str | None = None, lake_url: str | None = None) -> None:
    import uvicorn

    from quant_platform.market.tick_store import compute_root
    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.warehouse import Warehouse

    settings = load_settings()
    wh = Warehouse(warehouse_url or settings.warehouse_url)
    app = create_app(wh, compute_root(lake_url or settings.lake_url, settings.home))
    print(f"reports API at http://{host}:{port} (docs at /docs); warehouse {wh.backend}; Ctrl-C stops", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        wh.dispose()
