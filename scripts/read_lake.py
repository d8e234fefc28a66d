#!/usr/bin/env python3
"""Independent reader for the reco lakehouse, used by the test suite.

Reads a silver table and its dead-letter table with code reco did not write: the Python
`deltalake` package for Delta tables, and pyarrow following the batch log for the Parquet
mode. Prints one JSON object: {"silver": [...], "deadletter": [...]}, rows sorted.

usage: read_lake.py LAKE FORMAT TOPIC   (LAKE: a folder, or s3://bucket/prefix with the AWS_* variables)
"""
import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def delta_table(path):
    from deltalake import DeltaTable

    options = None
    if "://" in path:
        # An object store lake: the standard AWS variables, as reco reads them.
        keys = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP"]
        options = {k: os.environ[k] for k in keys if k in os.environ}
    return DeltaTable(path, storage_options=options).to_pyarrow_table()


def join(lake, *parts):
    if "://" in lake:
        return "/".join([lake.rstrip("/"), *parts])
    return os.path.join(lake, *parts)


def parquet_tables(lake, topic):
    log = os.path.join(lake, "_checkpoints", "stream_kafka_to_silver", topic)
    silver, deadletter = [], []
    for entry in sorted(glob.glob(os.path.join(log, "*.json"))):
        with open(entry) as f:
            e = json.load(f)
        silver += [os.path.join(lake, x["path"]) for x in e["silver"]]
        deadletter += [os.path.join(lake, x["path"]) for x in e["deadletter"]]
    read = lambda files: pa.concat_tables([pq.read_table(p) for p in files]) if files else None
    return read(silver), read(deadletter)


def rows(table, columns):
    if table is None:
        return []
    out = []
    for r in table.select(columns).to_pylist():
        for k, v in r.items():
            if hasattr(v, "timestamp"):
                r[k] = round(v.timestamp() * 1_000_000)
            elif isinstance(v, (bytes, bytearray)):
                r[k] = list(v)
        out.append(r)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def main():
    lake, fmt, topic = sys.argv[1:4]
    if fmt == "delta":
        silver = delta_table(join(lake, "silver", topic))
        deadletter = delta_table(join(lake, "silver", "_deadletter", topic))
    else:
        silver, deadletter = parquet_tables(lake, topic)
    silver_cols = ["event_id", "user_id", "item_id", "event_time", "session_id", "kafka_partition", "kafka_offset"]
    if topic == "events_ratings":
        silver_cols.append("rating")
    dl_cols = ["kafka_topic", "kafka_partition", "kafka_offset", "payload", "error_kind"]
    print(json.dumps({"silver": rows(silver, silver_cols), "deadletter": rows(deadletter, dl_cols)}))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Skip interpreter teardown: deltalake's and pyarrow's native thread pools can race at
    # exit ("terminate called without an active exception") after all output is written.
    os._exit(0)
