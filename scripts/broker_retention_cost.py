#!/usr/bin/env python3
"""What one retention pass of the embedded broker costs on a log of N records.

Builds a SQLite file with tansu's own schema (third_party/tansu-storage/src/ddl), reco's three
topics (3 partitions, cleanup.policy=delete, retention 7/7/30 days) and N records of 220 bytes
spread over the nine partitions, then times the retention statement(s) given on the command
line, each inside a write transaction as the broker runs it: first with nothing expired, then
with the oldest 1 % of the views and clicks records expired (ratings keep 30 days). While a
statement runs the broker serves nothing else (its storage is one lane), so these times are
produce stalls.

    python3 scripts/broker_retention_cost.py 10000000 \
        third_party/tansu-storage/src/lite/policy_delete.sql [upstream_policy_delete.sql ...]

Python's sqlite3 is not libsql, but both are SQLite and the plans are the same.
"""

import glob
import os
import re
import sqlite3
import sys
import tempfile
import time

DAY_MS = 86_400_000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(path, n):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=normal")
    for ddl in sorted(glob.glob(os.path.join(REPO, "third_party/tansu-storage/src/ddl/*.sql"))):
        db.executescript(open(ddl).read())
    db.execute("insert into cluster(name) values('reco')")
    for name, retention in [("events_views", 7), ("events_clicks", 7), ("events_ratings", 30)]:
        topic = db.execute(
            "insert into topic(cluster, name, uuid, partitions, replication_factor) values(1, ?, ?, 3, 1)",
            (name, name),
        ).lastrowid
        db.execute("insert into topic_configuration(topic, name, value) values(?, 'cleanup.policy', 'delete')", (topic,))
        db.execute(
            "insert into topic_configuration(topic, name, value) values(?, 'retention.ms', ?)",
            (topic, str(retention * DAY_MS)),
        )
        for partition in range(3):
            db.execute("insert into topition(topic, partition) values(?, ?)", (topic, partition))
    now = int(time.time() * 1000)
    value = b"x" * 220
    rows = ((1 + i % 9, i // 9, 0, 1, 0, now - (n - i) // 100, value, b"k%d" % i) for i in range(n))
    db.execute("begin")
    db.executemany(
        "insert into record(topition, offset_id, attributes, producer_id, producer_epoch, timestamp, v, k)"
        " values(?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("commit")
    return db, now


def run(db, sql, now):
    started = time.perf_counter()
    db.execute("begin immediate")
    db.execute(sql, ("reco", now, 7 * DAY_MS))
    deleted = db.execute("select changes()").fetchone()[0]
    db.execute("rollback")  # every statement sees the same log
    return time.perf_counter() - started, deleted


def main():
    n = int(sys.argv[1])
    statements = sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        db, now = build(os.path.join(tmp, "tansu.db"), n)
        size = os.path.getsize(os.path.join(tmp, "tansu.db")) / 1e9
        print(f"{n:,} records, {size:.2f} GB, built in {time.perf_counter() - started:.0f} s")
        for path in statements:
            sql = re.sub(r"\$(\d)", r"?\1", open(path).read())
            # Steady state: each pass finds what expired since the last one, the oldest 1 %.
            span = n // 100
            cases = [("nothing expired", now), ("oldest 1 % of views+clicks expired", now + 7 * DAY_MS - span * 99 // 100)]
            for label, at in cases:
                seconds, deleted = run(db, sql, at)
                print(f"{path}: {label}: {seconds:.3f} s, {deleted:,} deleted")


if __name__ == "__main__":
    main()
