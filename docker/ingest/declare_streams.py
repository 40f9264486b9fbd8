"""Declare the tick pipeline's JetStream streams and durable consumers once, then exit (create or update,
never delete): `python /opt/quant_platform/bin/declare_streams.py`.

Run with a NATS user allowed to manage streams (`admin` in docker/nats/nats-server.conf) before the
workers start: connector and worker users may only read stream and consumer info, so their own
ensure_streams() at start-up finds everything declared and changes nothing. The fan-out destinations' consumers
are declared here too when QP_FANOUT_FILE names the destinations file: the `fanout` user may not create
consumers. The replica count comes from QP_NATS_REPLICAS (1 on the single host, 3 on the Kubernetes cluster),
the limits from QP_TICKS_*_MAX_AGE_HOURS, QP_TICKS_*_MAX_BYTES and QP_NATS_MAX_DELIVER: give every ingest process
the same values. Never prints the URL (it carries the admin password).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

CONNECT_WAIT_S = 60.0


async def declare(url: str) -> dict:
    import nats

    from quant_platform.market.connection import connect_options
    from quant_platform.market.fanout import load_destinations
    from quant_platform.market.streams import ensure_streams

    fanouts = load_destinations()  # QP_FANOUT_FILE; a bad file fails before anything is declared

    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:  # the server may still be starting (compose healthcheck, cluster pods rolling)
        try:
            nc = await nats.connect(**connect_options(url), connect_timeout=3, max_reconnect_attempts=0,
                                    allow_reconnect=False, name="qp-declare-streams")
            break
        except Exception as exc:
            if time.monotonic() > deadline:
                raise ConnectionError(f"no NATS server answered within {CONNECT_WAIT_S:.0f}s: {exc}") from exc
            await asyncio.sleep(1)
    try:
        return await ensure_streams(nc.jetstream(), fanouts=fanouts)
    finally:
        await nc.close()


def main() -> int:
    url = os.environ.get("QP_NATS_URL", "").strip()  # one server, or several comma-separated (a cluster)
    if not url:
        print("declare_streams: error: set QP_NATS_URL (nats://admin:<password>@<host>:4222)", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(declare(url))
    except Exception as exc:  # one clear line, no traceback (QuantPlatformError, timeouts, permissions)
        print(f"declare_streams: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
