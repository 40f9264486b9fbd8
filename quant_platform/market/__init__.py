"""Market-data lane: source-agnostic tick ingestion on NATS JetStream, normalisation, landing, fan-out.

Never let a tick pass through Dagster: this lane is a service; Dagster only observes and completes it.
"""
