#!/usr/bin/env bash
# API benchmark: wrk (a load generator that is not ours) against a release `reco up`, printing
# one markdown table. Baseline in the same run: GET /health/live (HTTP + routing, no Kafka).
# The ingest loads run twice: without authentication, then on a second `reco up` that requires
# bearer tokens (RECO_API_TOKENS_FILE), so the cost of the token check is in the same run.
#   scripts/bench-api.sh [SECONDS per load]   (make bench runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-5}"
BIN="${RECO_BIN:-${CARGO_TARGET_DIR:-target}/release/reco}"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p reco" >&2; exit 1; }
if ! command -v wrk >/dev/null || ! command -v curl >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y --no-install-recommends wrk curl >/dev/null \
        || { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends wrk curl >/dev/null; }
fi
WORK="$(mktemp -d)"
UP=""; FAST=""
trap 'kill $UP $FAST 2>/dev/null; wait $UP $FAST 2>/dev/null; rm -rf "$WORK"' EXIT
# start_up NAME [extra up flags...]: a fresh `reco up` (memory broker, own lake) → $UP, $URL.
start_up() {
    local name="$1"; shift
    local port=$((20000 + RANDOM % 20000))
    "$BIN" up --http-addr "127.0.0.1:$port" --broker-addr "127.0.0.1:$((port + 1))" --broker-storage memory \
        --lakehouse-path "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1 &
    UP=$!
    URL="http://127.0.0.1:$port"
    BROKER="127.0.0.1:$((port + 1))"
    for _ in $(seq 100); do curl -sf "$URL/health/ready" >/dev/null && break; sleep 0.1; done
}
start_up open
# post_status [curl options...]: the status code of one POST /events of one event to $URL.
post_status() {
    curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/events" -H 'content-type: application/json' "$@" \
        -d '{"type":"view","user_id":"u","item_id":"m"}'
}

TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf 'bench:%s\n' "$TOKEN" >"$WORK/tokens"
AUTH="wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\""
source scripts/bench-wrk.sh
write_loads "$WORK"
for f in single batch; do { cat "$WORK/$f.lua"; echo "$AUTH"; } >"$WORK/$f-auth.lua"; done
# Co-visits for the recommendation endpoints: 100 users viewing 8 of 40 items within minutes
# of each other, before the trending hours below, whose events move the watermark past them.
body=""
for u in $(seq 100); do
    for k in $(seq 0 7); do
        body="$body{\"type\":\"view\",\"user_id\":\"b$u\",\"item_id\":\"p$(( (u * 7 + k * 3) % 40 ))\",\"timestamp\":\"2019-03-01T00:0$k:00Z\"},"
    done
done
curl -sf -X POST "$URL/events" -H 'content-type: application/json' -d "[${body%,}]" >/dev/null
# A published window for GET /trending: views and clicks from many users (so every partition of
# both topics, each an input of gold's watermark, has data) over a few hours of 2019; events up
# to 05:00 make the windows up to 04:55 complete.
for h in 01 02 03 04 05; do
    body=""
    for u in $(seq 24); do
        for t in view click; do
            body="$body{\"type\":\"$t\",\"user_id\":\"u$u\",\"item_id\":\"m$((u % 5))\",\"timestamp\":\"2019-03-01T$h:00:00Z\"},"
        done
    done
    curl -sf -X POST "$URL/events" -H 'content-type: application/json' -d "[${body%,}]" >/dev/null
done
for _ in $(seq 150); do curl -sf "$URL/trending?window=1h" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/trending?window=1h" >/dev/null || { echo "no 1h window was published within 30 s" >&2; exit 1; }
for _ in $(seq 150); do curl -sf "$URL/items/p1/similar" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/users/b1/recommendations" | grep -q '"source":"neighbors"' \
    || { echo "no neighbour lists for the recommendations within 30 s" >&2; exit 1; }

read -r BASE B50 B99 < <(run 32 /health/live)
echo "API benchmark: wrk, ${DUR}s per load, $(nproc) cores, $BIN; baseline GET /health/live at 32 connections = $BASE req/s"
echo
echo "| load | connections | requests/s | events/s | p50 ms | p99 ms | vs baseline |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| GET /health/live (baseline) | 32 | $BASE | | $B50 | $B99 | 1.00 |"
# One table row, and its summary row for make bench: row LOAD CONNECTIONS REQ/S EV/S P50 P99.
row() {
    [ -n "$3" ] || { echo "the load \"$1\" at $2 connections failed" >&2; exit 1; }
    local ratio; ratio=$(awk "BEGIN{printf \"%.2f\", $3/$BASE}")
    echo "| $1 | $2 | $3 | $4 | $5 | $6 | $ratio |"
    local events=""; [ -n "$4" ] && events=", $4 ev/s"
    echo "| API (wrk, $2 conn.) | $1 | $3 req/s$events, p50 $5 / p99 $6 ms | $BASE req/s GET /health/live | $ratio |" >>"$WORK/rows"
}
declare -A RECO
for c in 1 8 32; do
    read -r R P50 P99 < <(run "$c" /events "$WORK/single.lua")
    row "POST /events, 1 event" "$c" "$R" "$R" "$P50" "$P99"
    RECO[single$c]="$R"
done
for c in 8 32; do
    read -r R P50 P99 < <(run "$c" /events "$WORK/batch.lua")
    row "POST /events, 100-event batch" "$c" "$R" "$((R * 100))" "$P50" "$P99"
    RECO[batch$c]="$R"
done
read -r R P50 P99 < <(run 32 "/trending?window=1h")
row "GET /trending?window=1h" 32 "$R" "" "$P50" "$P99"
read -r R P50 P99 < <(run 32 "/items/p1/similar")
row "GET /items/{id}/similar" 32 "$R" "" "$P50" "$P99"
for c in 1 32; do
    read -r R P50 P99 < <(run "$c" "/users/b1/recommendations")
    row "GET /users/{id}/recommendations" "$c" "$R" "" "$P50" "$P99"
done
PEAK="$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$UP/status)"

# The seed's ingest, side by side: scripts/fastapi_baseline.py (FastAPI + pydantic +
# prometheus_client + confluent-kafka, acks=all, idempotent, linger 2 ms, 202 after the
# delivery report), 2 uvicorn workers with uvloop and httptools, producing to the same broker.
VENV="${RECO_VENV:-$HOME/.cache/reco-venv}"
[ -x "$VENV/bin/uvicorn" ] || { echo "no $VENV/bin/uvicorn: run scripts/test-deps.sh" >&2; exit 1; }
FPORT=$((20000 + RANDOM % 20000))
KAFKA_BOOTSTRAP_SERVERS="$BROKER" "$VENV/bin/uvicorn" --app-dir scripts fastapi_baseline:app --workers 2 \
    --loop uvloop --http httptools --host 127.0.0.1 --port "$FPORT" --log-level warning >"$WORK/fastapi.log" 2>&1 &
FAST=$!
RECO_URL="$URL"; URL="http://127.0.0.1:$FPORT"
for _ in $(seq 150); do curl -sf "$URL/health/live" >/dev/null && break; sleep 0.2; done
code=$(post_status)
[ "$code" = 202 ] || { echo "FastAPI baseline answered $code, not 202: $(cat "$WORK/fastapi.log")" >&2; exit 1; }
versus() {
    [ -n "$3" ] || { echo "the FastAPI load \"$1\" at $2 connections failed" >&2; exit 1; }
    local ratio; ratio=$(awk "BEGIN{printf \"%.1f\", $4/$3}")
    echo "| FastAPI (seed): $1 | $2 | $3 | | $5 | $6 | |"
    echo "| API vs FastAPI (wrk, $2 conn.) | $1 | reco $4 req/s | FastAPI $3 req/s, p50 $5 / p99 $6 ms | $ratio |" >>"$WORK/rows"
}
for c in 1 32; do
    read -r R P50 P99 < <(run "$c" /events "$WORK/single.lua")
    versus "POST /events, 1 event" "$c" "$R" "${RECO[single$c]}" "$P50" "$P99"
done
read -r R P50 P99 < <(run 32 /events "$WORK/batch.lua")
versus "POST /events, 100-event batch" 32 "$R" "${RECO[batch32]}" "$P50" "$P99"
kill "$FAST"; wait "$FAST" 2>/dev/null || true; FAST=""
URL="$RECO_URL"

# The same ingest loads with authentication on: every request carries a bearer token that the
# API hashes and checks; a wrong one would get 401 (checked first, so the rows measure 202s).
kill $UP; wait $UP 2>/dev/null || true
start_up auth --api-tokens-file "$WORK/tokens"
code=$(post_status)
[ "$code" = 401 ] || { echo "auth run: a request without a token got $code, not 401" >&2; exit 1; }
code=$(post_status -H "Authorization: Bearer $TOKEN")
[ "$code" = 202 ] || { echo "auth run: a request with the token got $code, not 202" >&2; exit 1; }
for c in 1 32; do
    read -r R P50 P99 < <(run "$c" /events "$WORK/single-auth.lua")
    row "POST /events, 1 event, bearer token" "$c" "$R" "$R" "$P50" "$P99"
done
read -r R P50 P99 < <(run 32 /events "$WORK/batch-auth.lua")
row "POST /events, 100-event batch, bearer token" 32 "$R" "$((R * 100))" "$P50" "$P99"
echo
echo "peak RSS of reco up: $PEAK"
# Headline rows for make bench's summary table.
if [ -n "${RECO_BENCH_REPORT:-}" ]; then
    cat "$WORK/rows" >>"$RECO_BENCH_REPORT"
    echo "| peak RSS under load | reco up (API benchmark) | $PEAK | | |" >>"$RECO_BENCH_REPORT"
fi
