"""A real S3 HTTP API for tests: moto's standalone server (`python -m moto.server`) as a subprocess.

Never patch a client here (no `mock_aws`, no stubbed boto3): the lake talks to this server over HTTP exactly as
it talks to AWS S3 or MinIO, through pyarrow's S3 client. One server per test session; each test takes its own
prefix in the one bucket, so tests never see each other's objects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quant_platform.platform.processes import stop_process

START_TIMEOUT_S = 60.0  # importing moto (flask, botocore) takes a few seconds on a loaded machine


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str  # http://127.0.0.1:<port>
    bucket: str
    access_key: str
    secret_key: str
    region: str
    log_path: Path  # the server's own output, for a failing test to read

    def filesystem(self):
        """A pyarrow S3 client of its own: to look at (or tamper with) the bucket independently of the Lake."""
        import pyarrow.fs as pafs

        scheme, _, host = self.endpoint_url.partition("://")
        return pafs.S3FileSystem(access_key=self.access_key, secret_key=self.secret_key, region=self.region,
                                 endpoint_override=host, scheme=scheme)

    def lake_env(self, monkeypatch: pytest.MonkeyPatch, prefix: str | None = None) -> str:
        """Point QP_LAKE_URL at a fresh prefix of the bucket, with the endpoint and keys in the standard AWS
        variables (the only place the lake reads them from); returns the lake URL."""
        prefix = prefix or f"lake-{uuid.uuid4().hex[:12]}"
        monkeypatch.delenv("QP_S3_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.endpoint_url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", self.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", self.secret_key)
        monkeypatch.setenv("AWS_REGION", self.region)
        url = f"s3://{self.bucket}/{prefix}"
        monkeypatch.setenv("QP_LAKE_URL", url)
        return url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port with one bucket; stopped at the end of the session."""
    from quant_platform_tests.conftest import free_port

    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # the server needs no credentials
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(f"{endpoint}/moto-api/"):
            if proc.poll() is not None:
                pytest.fail(f"moto server exited with code {proc.returncode}: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"moto server did not answer on {endpoint} within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        server = S3Server(endpoint_url=endpoint, bucket="qp-lake-test", access_key="qp-test-access-key",
                          secret_key=f"qp-test-secret-{uuid.uuid4().hex}", region="us-east-1", log_path=log_path)
        import pyarrow.fs as pafs

        scheme, _, host = endpoint.partition("://")
        pafs.S3FileSystem(access_key=server.access_key, secret_key=server.secret_key, region=server.region,
                          endpoint_override=host, scheme=scheme, allow_bucket_creation=True).create_dir(server.bucket)
        yield server
    finally:
        stop_process(proc, grace_s=10)
