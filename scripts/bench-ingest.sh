#!/usr/bin/env bash
# Ingest against the embedded broker's own ceiling, per broker storage (sqlite, the default of
# `reco up`, and memory), all in one run: a bare librdkafka producer straight into the broker
# of a running `reco up` (scripts/bare_producer.py: acks=all, idempotent, uncompressed like the
# API of `reco up`), then wrk's
# 100-event batches and single events at 32 connections against the API, the seed's FastAPI
# stack producing to the same broker, and GET /health/live as the HTTP ceiling. Also the time
# from the ready line to the first event in silver on a fresh lake. Each load starts once silver
# has written the previous one's records (an idle platform). One markdown table.
#   scripts/bench-ingest.sh [SECONDS per load] [RECORDS for the bare producer]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-8}"
RECORDS="${2:-300000}"
BIN="${RECO_BIN:-${CARGO_TARGET_DIR:-target}/release/reco}"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p reco" >&2; exit 1; }
VENV="${RECO_VENV:-$HOME/.cache/reco-venv}"
[ -x "$VENV/bin/uvicorn" ] || { echo "no $VENV/bin/uvicorn: run scripts/test-deps.sh" >&2; exit 1; }
command -v wrk >/dev/null || { echo "no wrk: scripts/bench-api.sh installs it" >&2; exit 1; }
WORK="$(mktemp -d)"
UP=""; FAST=""
# Every step may fail harmlessly (nothing left to stop): under `set -e` a failing `kill` would
# end the trap, and the script, with its status.
trap 'kill $UP $FAST 2>/dev/null || true; wait $UP $FAST 2>/dev/null || true; rm -rf "$WORK"' EXIT

# start_up STORAGE: a fresh `reco up` with that broker storage → $UP, $URL, $BROKER, and
# $FIRST, the milliseconds from its ready line to the first posted event in silver.
start_up() {
    local port=$((20000 + RANDOM % 20000))
    URL="http://127.0.0.1:$port"; BROKER="127.0.0.1:$((port + 1))"
    "$BIN" up --http-addr "127.0.0.1:$port" --broker-addr "$BROKER" --broker-storage "$1" \
        --lakehouse-path "$WORK/$1" >"$WORK/$1.log" 2>&1 &
    UP=$!
    for _ in $(seq 200); do grep -q "ready in" "$WORK/$1.log" && break; sleep 0.005; done
    local t0; t0=$(date +%s%N)
    curl -sf -X POST "$URL/events" -H 'content-type: application/json' \
        -d '{"type":"view","user_id":"first","item_id":"m1"}' >/dev/null
    FIRST=""
    for _ in $(seq 1000); do
        if curl -sf "$URL/metrics" | grep -q '^reco_silver_rows_written_total{[^}]*} [1-9]'; then
            FIRST=$(( ($(date +%s%N) - t0) / 1000000 )); break
        fi
        sleep 0.01
    done
    [ -n "$FIRST" ] || { echo "$1: the first event never reached silver" >&2; exit 1; }
}
# settle: waits (up to 3 minutes) until silver's row count stops moving, so the next load runs
# on an idle platform instead of beside silver and gold working through the last one's records.
settle() {
    local prev=-1 cur
    for _ in $(seq 180); do
        cur=$(curl -sf "$URL/metrics" | awk '/^reco_silver_rows_written_total\{/ { n += $NF } END { printf "%d", n }')
        [ "$cur" = "$prev" ] && return 0
        prev=$cur; sleep 1
    done
    echo "silver still busy after 3 minutes" >&2
}
source scripts/bench-wrk.sh
write_loads "$WORK"

echo "Ingest vs the embedded broker's ceiling: $(nproc) cores, wrk ${DUR}s per load, $RECORDS records for the bare producer, $BIN"
echo
echo "| storage | first event in silver after ready | bare producer ev/s | API 100-event batches ev/s (p99 ms) | ratio to bare | FastAPI batches ev/s | reco / FastAPI | GET /health/live req/s | API 1 event req/s (p99 ms) | ratio to /health/live |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for storage in sqlite memory; do
    start_up "$storage"
    BARE=$("$VENV/bin/python" scripts/bare_producer.py "$BROKER" "$RECORDS" none | awk '{print $(NF-1)}')
    settle
    read -r LIVE _ _ < <(run 32 /health/live)
    read -r BATCH _ BATCH99 < <(run 32 /events "$WORK/batch.lua")
    settle
    read -r SINGLE _ SINGLE99 < <(run 32 /events "$WORK/single.lua")
    settle
    FPORT=$((20000 + RANDOM % 20000))
    KAFKA_BOOTSTRAP_SERVERS="$BROKER" "$VENV/bin/uvicorn" --app-dir scripts fastapi_baseline:app --workers 2 \
        --loop uvloop --http httptools --host 127.0.0.1 --port "$FPORT" --log-level warning >"$WORK/fastapi.log" 2>&1 &
    FAST=$!
    RECO_URL="$URL"; URL="http://127.0.0.1:$FPORT"
    for _ in $(seq 150); do curl -sf "$URL/health/live" >/dev/null && break; sleep 0.2; done
    # Warmed like reco's API, which looks up its topics before it reports ready: each worker's
    # first produce would otherwise fall inside the timed load (a 1 s run once measured 0).
    for _ in 1 2 3 4; do
        curl -sf -X POST "$URL/events" -H 'content-type: application/json' \
            -d '{"type":"view","user_id":"u1","item_id":"m1"}' >/dev/null || true
    done
    read -r FBATCH _ _ < <(run 32 /events "$WORK/batch.lua")
    kill "$FAST"; wait "$FAST" 2>/dev/null || true; FAST=""; URL="$RECO_URL"
    kill "$UP"; wait "$UP" 2>/dev/null || true; UP=""
    ev=$((BATCH * 100)); fev=$((FBATCH * 100))
    r() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
    echo "| $storage | ${FIRST} ms | $BARE | $ev ($BATCH99) | $(r "$ev" "$BARE") | $fev | $(r "$ev" "$fev") | $LIVE | $SINGLE ($SINGLE99) | $(r "$SINGLE" "$LIVE") |"
    if [ -n "${RECO_BENCH_REPORT:-}" ]; then
        {
            echo "| ingest, $storage broker (wrk, 32 conn.) | 100-event batches | $ev ev/s | bare rdkafka producer $BARE ev/s | $(r "$ev" "$BARE") |"
            echo "| ingest, $storage broker (wrk, 32 conn.) | 100-event batches vs FastAPI | $ev ev/s | FastAPI $fev ev/s | $(r "$ev" "$fev") |"
            echo "| ingest, $storage broker (wrk, 32 conn.) | 1 event per request | $SINGLE req/s | GET /health/live $LIVE req/s | $(r "$SINGLE" "$LIVE") |"
            echo "| first event, $storage broker | ready line → in silver | $FIRST ms | | |"
        } >>"$RECO_BENCH_REPORT"
    fi
done
