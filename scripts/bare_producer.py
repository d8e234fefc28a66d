"""The broker's own ingest ceiling, for `make bench`: a bare librdkafka producer (confluent-kafka)
with the API's producer settings (acks=all, idempotent, lz4, linger 5 ms) writing records of
the API's size and key shape straight to `events_views`, keyed by user so they spread over the
partitions. Prints one line: "<records> records in <s> s: <rate> ev/s".

    python scripts/bare_producer.py 127.0.0.1:9092 300000 [compression]

`compression` (default lz4) is librdkafka's `compression.type`: give the API producer's, so the
ceiling is measured with the same work per record.
"""

import json
import sys
import time
import uuid

from confluent_kafka import Producer


def main() -> None:
    bootstrap, count = sys.argv[1], int(sys.argv[2])
    compression = sys.argv[3] if len(sys.argv) > 3 else "lz4"
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": compression,
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    # A record as the API writes one: the validated event with its id and ingest time.
    records = []
    for i in range(1000):
        event = {
            "event_id": str(uuid.uuid4()),
            "type": "view",
            "user_id": f"u{i}",
            "item_id": f"m{i % 17}",
            "timestamp": "2026-12-02T10:00:00.000000Z",
            "ingested_at": "2026-12-02T10:00:00.000000Z",
            "session_id": None,
        }
        records.append((f"u{i}".encode(), json.dumps(event).encode()))
    started = time.monotonic()
    for n in range(count):
        key, value = records[n % len(records)]
        while True:
            try:
                producer.produce("events_views", value=value, key=key, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(60)
    secs = time.monotonic() - started
    if failed or left:
        sys.exit(f"bare producer: {len(failed)} failed, {left} unacknowledged (first: {failed[:1]})")
    print(f"{count} records in {secs:.2f} s: {count / secs:.0f} ev/s")


if __name__ == "__main__":
    main()
