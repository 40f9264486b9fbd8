"""Prometheus metrics of the tick pipeline: every process serves /metrics on its own port.

Never label a metric by instrument or event id: cardinality must stay bounded (source and role only).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

TICKS_IN = Counter("qp_ticks_in_total", "Vendor frames received or normalised input frames", ["source", "role"],
                   registry=REGISTRY)
TICKS_OUT = Counter("qp_ticks_out_total", "Canonical ticks produced or landed", ["source", "role"],
                    registry=REGISTRY)
DLQ = Counter("qp_dlq_total", "Frames sent to TICKS_DLQ", ["source"], registry=REGISTRY)
PUBLISH_ACK_SECONDS = Histogram(
    "qp_publish_ack_seconds", "Receipt to JetStream ack latency per frame", ["source"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
CONSUMER_LAG = Gauge("qp_consumer_lag", "num_pending + num_ack_pending of a consumer", ["consumer"],
                     registry=REGISTRY)
BATCH_ROWS = Histogram("qp_landed_batch_rows", "Rows per landed micro-batch", registry=REGISTRY,
                       buckets=(10, 100, 1000, 5000, 10000, 50000, 100000, 500000))
WORKERS = Gauge("qp_workers", "Worker processes running", ["role"], registry=REGISTRY)
FANOUT_DELIVERED = Counter("qp_fanout_delivered_rows_total", "Rows delivered per destination", ["destination"],
                           registry=REGISTRY)
CONNECTOR_RECONNECTS = Counter("qp_connector_reconnects_total", "Connection attempts to the vendor after the "
                               "first one of the process", ["source"], registry=REGISTRY)
CONNECTOR_DISCONNECTED_SECONDS = Counter("qp_connector_disconnected_seconds_total", "Seconds between the last frame "
                                         "before a lost connection and the vendor regained", ["source"],
                                         registry=REGISTRY)
CONNECTOR_LAST_FRAME = Gauge("qp_connector_last_frame_timestamp_seconds", "When the connector last received a "
                             "vendor frame (Unix time)", ["source"], registry=REGISTRY)
VENDOR_GAPS = Counter("qp_vendor_gaps_total", "Vendor gaps seen by the connector: kind=sequence (a jump in a "
                      "contiguous vendor sequence), kind=disconnect (a lost connection)", ["source", "kind"],
                      registry=REGISTRY)
VENDOR_GAP_EVENTS = Counter("qp_vendor_gap_events_total", "Vendor sequence numbers missing in the jumps "
                            "(aggTrade ids, depth update ids)", ["source"], registry=REGISTRY)
FANOUT_FAILURES = Counter("qp_fanout_failures_total", "Failed deliveries per destination", ["destination"],
                          registry=REGISTRY)


METRICS_HOST_ENV = "QP_METRICS_HOST"
DEFAULT_METRICS_HOST = "127.0.0.1"


def metrics_host() -> str:
    """The address /metrics binds: QP_METRICS_HOST, default 127.0.0.1 (loopback only). Containers set 0.0.0.0
    so that Prometheus, in another container or pod, can scrape them."""
    return os.environ.get(METRICS_HOST_ENV, "").strip() or DEFAULT_METRICS_HOST


def serve_metrics(port: int, host: str | None = None) -> None:
    """Expose /metrics on <host>:<port> (host defaults to metrics_host(); port 0 disables)."""
    if port:
        start_http_server(port, addr=host or metrics_host(), registry=REGISTRY)
