"""One redaction rule for whatever leaves the process: the EIA API key never reaches Dagster's storage, the
logs or the CLI, whichever way the vendor call fails (real simulator faults, a real refused connection).

Never patch the client or Dagster: the asset runs for real and everything the instance stored is searched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

KEY = "qpTestEiaKey7f3a9c1e5b"  # set as QP_EIA_API_KEY: the asset takes the EIA API v2 route
SERIES = "WCESTUS1"
API_PATH = "/v2/petroleum/stoc/wstk/data/"


def _everything_dagster_stored(instance, run_id: str, dagster_home: Path) -> str:
    """Every event record of the run serialized (messages, metadata, errors with their whole cause chain),
    the run record, and the bytes of every file under DAGSTER_HOME (SQLite storage, captured logs)."""
    from dagster._serdes import serialize_value

    parts = [serialize_value(e) for e in instance.all_logs(run_id)]
    parts.append(serialize_value(instance.get_run_by_id(run_id)))
    for path in dagster_home.rglob("*"):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


@pytest.mark.parametrize("failure", ["none", "http_500", "timeout", "connection_refused"])
def test_the_api_key_reaches_nothing_dagster_stores_or_logs(failure, simulator, duck, instance, qp_home,
                                                             monkeypatch, caplog, capfd):
    from quant_platform.definitions import defs
    from quant_platform.vendors.simulator import VendorSimulator

    monkeypatch.setenv("QP_EIA_API_KEY", KEY)
    monkeypatch.setenv("QP_HTTP_RETRIES", "2")
    monkeypatch.setenv("QP_HTTP_TIMEOUT", "0.5")
    if failure == "connection_refused":  # a real server that has gone: its port refuses connections
        gone = VendorSimulator(preload=False).start()
        monkeypatch.setenv("QP_EIA_API_BASE_URL", gone.base_url)
        gone.stop()
    elif failure != "none":
        simulator.inject_fault(API_PATH, failure, count=10, delay_s=1.5)
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included

    job = defs.resolve_job_def("eia_series_job")
    result = job.execute_in_process(instance=instance, partition_key=SERIES, raise_on_error=False)

    stored = _everything_dagster_stored(instance, result.run_id, Path(os.environ["DAGSTER_HOME"]))
    if failure == "none":
        assert result.success
        assert f"api_key={KEY}" in simulator.requests_seen(API_PATH)[0]["path"]  # the key really was sent
    else:
        assert not result.success
        assert "gave up after 2 attempts" in stored, "the failure is still explained"
    if failure in ("http_500", "none"):
        assert "api_key=***" in stored, "the URL is still named, with its key masked"
    out, err = capfd.readouterr()
    assert KEY not in stored
    assert KEY not in caplog.text
    assert KEY not in out and KEY not in err


def test_the_cli_prints_one_line_without_the_password(qp_home, monkeypatch, capsys):
    from quant_platform.cli import main

    # A mistyped warehouse URL: the error names the setting and the URL, never its password.
    monkeypatch.setenv("QP_WAREHOUSE_URL", "mysql://analyst:Pa55-w0rd-xyz@db.internal:3306/wh")
    assert main(["warehouse", "init"]) == 1
    err = capsys.readouterr().err
    assert "Pa55-w0rd-xyz" not in err
    assert err.startswith("quant-platform: error:") and err.count("\n") == 1
    assert "QP_WAREHOUSE_URL" in err and "analyst:***@db.internal" in err


def test_the_rule(monkeypatch):
    from quant_platform.errors import without_password
    from quant_platform.platform.redaction import redact

    monkeypatch.setenv("QP_POLYGON_API_KEY", "polyKey123456")
    monkeypatch.setenv("QP_ALERT_WEBHOOK_URL", "https://hooks.example.com/T1/B2/hookSecret99")
    monkeypatch.setenv("QP_CRM_URL", "postgresql://crm:crmPw!42@db:5432/crm")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3SecretKey0987")  # the object-store lake's key
    text = ("signed with s3SecretKey0987: ""GET https://api.eia.gov/v2/x/?frequency=weekly&api_key=abc123&token=t0k&password=p "
            "https://u:pw@host/x https://hooks.slack.com/services/T000/B000/XXXXSECRET "
            "polyKey123456 posted to https://hooks.example.com/T1/B2/hookSecret99 and /T1/B2/hookSecret99; "
            "the CRM said crmPw!42 {'apikey': 'k9', \"secret\": \"s9\"}")
    out = redact(text)
    for secret in ("abc123", "t0k", "password=p ", ":pw@", "XXXXSECRET", "polyKey123456", "hookSecret99",
                   "crmPw!42", "k9", "s9", "s3SecretKey0987"):
        assert secret not in out, (secret, out)
    assert "frequency=weekly" in out and "https://api.eia.gov/v2/x/" in out and "u:***@host" in out
    assert without_password("nats://a:b@h1:4222,nats://c:d@h2:4222") == "nats://a:***@h1:4222,nats://c:***@h2:4222"
