#!/usr/bin/env python3
"""Recommendation quality of reco against reference recommenders, in one run, on one split.

MovieLens-100K (shipped inside the `recbole` wheel on PyPI; fetched once into a cache folder,
nothing committed): each user's last positive rating (>= 4) by time is held out, every event
before it is replayed through `POST /events` into a fresh `reco up`, and each user's
`GET /users/{id}/recommendations?limit=10` is scored by HR@10 and NDCG@10 over all items the
user has not touched. Beside it, on the same training events: the popularity baseline and the
item-kNN recommenders of the `implicit` package (CosineRecommender and BM25Recommender, K=50).

    python scripts/eval_recs.py path/to/reco [--report FILE]

Prints a table; with --report (or RECO_BENCH_REPORT) appends rows to the `make bench` report.
"""

import argparse
import glob
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections import Counter, defaultdict

CACHE = os.path.expanduser(os.environ.get("RECO_EVAL_CACHE", "~/.cache/reco-eval"))
INTER = os.path.join(CACHE, "ml-100k.inter")
K = 10


def fetch_movielens():
    """ml-100k.inter from the recbole wheel (pip download: no dependencies installed)."""
    if os.path.exists(INTER):
        return INTER
    os.makedirs(CACHE, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "recbole==1.2.1", "-d", CACHE], check=True)
    wheel = glob.glob(os.path.join(CACHE, "recbole-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        with z.open("recbole/dataset_example/ml-100k/ml-100k.inter") as src, open(INTER + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.replace(INTER + ".tmp", INTER)
    os.remove(wheel)
    return INTER


def split(path):
    """(training events in time order, held-out item per user)."""
    rows = []
    with open(path) as f:
        next(f)
        for n, line in enumerate(f):
            u, i, r, t = line.split("\t")
            rows.append((int(float(t)), n, u, i, float(r)))
    by_user = defaultdict(list)
    for row in sorted(rows):
        by_user[row[2]].append(row)
    train, held = [], {}
    for u, events in by_user.items():
        last = max((k for k, e in enumerate(events) if e[4] >= 4), default=None)
        if last is None:
            continue
        held[u] = events[last][3]
        train.extend(events[:last])
    train.sort()
    return train, held


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def run_reco(binary, train, held):
    """Replays `train` into a fresh `reco up`; returns each user's top K."""
    data = tempfile.mkdtemp(prefix="reco-eval-")
    port, kafka = free_port(), free_port()
    api = f"http://127.0.0.1:{port}"
    env = dict(os.environ,
               LAKEHOUSE_PATH=os.path.join(data, "lake"), RECO_HTTP_ADDR=f"127.0.0.1:{port}",
               RECO_BROKER_ADDR=f"127.0.0.1:{kafka}", RECO_BROKER_STORAGE="memory",
               RECO_SILVER_MAX_BATCH_AGE_MS="500", RECO_GOLD_IDLE_TIMEOUT_MS="3000",
               # A historic replay: seven months of 1997-98 count alike.
               RECO_NEIGHBORS_HALF_LIFE_DAYS=os.environ.get("RECO_NEIGHBORS_HALF_LIFE_DAYS", "0"),
               RUST_LOG="warn")
    log = open(os.path.join(data, "reco.log"), "w")
    proc = subprocess.Popen([binary, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while request_ok(api + "/health/ready") is not True:
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"reco up did not become ready; see {log.name}")
            time.sleep(0.5)
        started = time.time()
        for start in range(0, len(train), 1000):
            batch = [{"type": "rating", "user_id": u, "item_id": i, "rating": r, "timestamp": t * 1000}
                     for (t, _, u, i, r) in train[start:start + 1000]]
            status, body = request(api + "/events", batch)
            if status != 202:
                raise SystemExit(f"POST /events: {status} {body}")
        posted = time.time() - started
        popular = [i for i, _ in Counter(e[3] for e in train).most_common(20)]
        settle(api, popular)
        settled = time.time() - started
        recs = {}
        for u in held:
            status, body = request(f"{api}/users/{u}/recommendations?limit={K}")
            if status != 200:
                raise SystemExit(f"GET /users/{u}/recommendations: {status} {body}")
            recs[u] = [x["item_id"] for x in body["items"]]
        print(f"reco: {len(train)} events posted in {posted:.1f} s, lists settled {settled:.1f} s after the first",
              file=sys.stderr)
        return recs
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def request_ok(url):
    try:
        return request(url, timeout=5)[0] == 200
    except OSError:
        return False


def settle(api, items):
    """Waits until the popular items' lists stop changing (gold applied everything)."""
    last, stable_since = None, None
    deadline = time.time() + 600
    while time.time() < deadline:
        now = []
        for i in items:
            status, body = request(f"{api}/items/{i}/similar?limit=1")
            now.append(body.get("computed_at") if status == 200 else None)
        if now == last and None not in now:
            if time.time() - stable_since >= 10:
                return
        else:
            last, stable_since = now, time.time()
        time.sleep(1)
    raise SystemExit("the neighbour lists did not settle within 10 minutes")


def popularity(train, held):
    counts = Counter(e[3] for e in train)
    seen = defaultdict(set)
    for e in train:
        seen[e[2]].add(e[3])
    ranked = [i for i, _ in counts.most_common()]
    return {u: [i for i in ranked if i not in seen[u]][:K] for u in held}


def item_knn(train, held):
    """implicit's item-kNN models, each with binary and rating-valued interactions (the better
    of the two is reported, so the references get their best shot)."""
    import numpy as np
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
    from scipy.sparse import csr_matrix

    users = sorted({e[2] for e in train} | set(held))
    items = sorted({e[3] for e in train})
    uix, iix = {u: n for n, u in enumerate(users)}, {i: n for n, i in enumerate(items)}
    last = {}
    for e in train:
        last[(uix[e[2]], iix[e[3]])] = e[4]
    rows, cols = zip(*last.keys())
    out = {}
    for name, model in (("implicit CosineRecommender K=50", CosineRecommender), ("implicit BM25Recommender K=50", BM25Recommender)):
        best = None
        for values in ("binary", "rating"):
            data = np.ones(len(rows)) if values == "binary" else np.array(list(last.values()))
            ui = csr_matrix((data, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
            m = model(K=50)
            m.fit(ui, show_progress=False)
            ids = np.array([uix[u] for u in held])
            top, _ = m.recommend(ids, ui[ids].tocsr(), N=K, filter_already_liked_items=True)
            recs = {u: [items[j] for j in row if j >= 0] for u, row in zip(held, top)}
            score = metrics(recs, held)
            if best is None or score > best[0]:
                best = (score, f"{name} ({values})", recs)
        out[best[1]] = best[2]
    return out


def metrics(recs, held):
    hits, ndcg = 0, 0.0
    for u, item in held.items():
        top = recs.get(u, [])[:K]
        if item in top:
            hits += 1
            ndcg += 1 / math.log2(top.index(item) + 2)
    return hits / len(held), ndcg / len(held)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reco", help="the reco binary")
    parser.add_argument("--report", default=os.environ.get("RECO_BENCH_REPORT"))
    args = parser.parse_args()
    train, held = split(fetch_movielens())
    print(f"MovieLens-100K: {len(train)} training events, {len(held)} users with a held-out positive", file=sys.stderr)
    results = {"popularity (training interactions)": popularity(train, held)}
    results.update(item_knn(train, held))
    results["reco GET /users/{id}/recommendations"] = run_reco(args.reco, train, held)
    scored = {name: metrics(recs, held) for name, recs in results.items()}
    best_knn = max((s for n, s in scored.items() if n.startswith("implicit")), key=lambda s: s[0])
    ours = scored["reco GET /users/{id}/recommendations"]
    print(f"| recommender | HR@{K} | NDCG@{K} |\n|---|---:|---:|")
    for name, (hr, ndcg) in scored.items():
        print(f"| {name} | {hr:.4f} | {ndcg:.4f} |")
    print(f"reco / best item-kNN: HR@{K} {ours[0] / best_knn[0]:.2f}x, NDCG@{K} {ours[1] / best_knn[1]:.2f}x")
    if args.report:
        with open(args.report, "a") as f:
            for label, n in ((f"HR@{K}", 0), (f"NDCG@{K}", 1)):
                f.write(f"| recommendations (MovieLens-100K, last positive held out) | {label} | {ours[n]:.4f} | "
                        f"{best_knn[n]:.4f} (best implicit item-kNN) | {ours[n] / best_knn[n]:.2f} |\n")


if __name__ == "__main__":
    main()
