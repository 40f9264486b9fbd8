"""The object-store lake's Iceberg catalog: an unreachable one is a one-line configuration error. (The whole tick
lane on the S3 lake, with a killed lander, is test_tick_lane_lakes.py.)"""

from __future__ import annotations

import uuid

import pytest

from quant_platform_tests.s3_server import s3_server  # noqa: F401 - the session fixture


def test_a_lake_url_with_an_unreachable_catalog_is_one_line(s3_server, monkeypatch, tmp_path):  # noqa: F811
    from quant_platform.errors import ConfigError
    from quant_platform.market.tick_store import TickStore

    lake_url = s3_server.lake_env(monkeypatch, prefix=f"lake-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigError) as err:
        TickStore(lake_url, catalog_uri="postgresql+psycopg2://postgres@127.0.0.1:1/none")
    assert "\n" not in str(err.value) and "Iceberg catalog" in str(err.value)
