#!/usr/bin/env bash
# API benchmark: wrk (a load generator that is not ours) against a release `reco up`, printing
# one markdown table. Baseline in the same run: GET /health/live (HTTP + routing, no Kafka).
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
PORT=$((20000 + RANDOM % 20000)); BROKER=$((PORT + 1))
"$BIN" up --http-addr "127.0.0.1:$PORT" --broker-addr "127.0.0.1:$BROKER" --broker-storage memory \
    --lakehouse-path "$WORK/lake" >"$WORK/up.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"

cat >"$WORK/single.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"view","user_id":"u1","item_id":"m1"}'
LUA
{
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    printf 'wrk.body = %s[' "'"
    for i in $(seq 100); do
        [ "$i" -gt 1 ] && printf ','
        printf '{"type":"view","user_id":"u%d","item_id":"m%d"}' "$i" $((i % 17))
    done
    printf "]'\n"
} >"$WORK/batch.lua"
# A published window for GET /trending: a few hours of 2019, then the idle timeout... or the
# watermark: events up to 05:00 close the windows up to 04:55.
for h in 01 02 03 04 05; do
    curl -sf -X POST "$URL/events" -H 'content-type: application/json' \
        -d "[{\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"m$h\",\"timestamp\":\"2019-03-01T$h:00:00Z\"}]" >/dev/null
done
for _ in $(seq 150); do curl -sf "$URL/trending" >/dev/null && break; sleep 0.2; done

# wrk's report → "req/s p50 p99" (latencies in ms).
run() {
    local threads=$(( $1 < 2 ? $1 : 2 ))
    wrk -t"$threads" -c"$1" -d"${DUR}s" --latency ${3:+-s "$3"} "$URL$2" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50.000%" { p50 = ms($2) }
        $1 == "99.000%" { p99 = ms($2) }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}
read -r BASE B50 B99 < <(run 32 /health/live)
echo "API benchmark: wrk, ${DUR}s per load, $(nproc) cores, $BIN; baseline GET /health/live at 32 connections = $BASE req/s"
echo
echo "| load | connections | requests/s | events/s | p50 ms | p99 ms | vs baseline |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| GET /health/live (baseline) | 32 | $BASE | | $B50 | $B99 | 1.00 |"
# One table row, and its summary row for make bench: row LOAD CONNECTIONS REQ/S EV/S P50 P99.
row() {
    local ratio; ratio=$(awk "BEGIN{printf \"%.2f\", $3/$BASE}")
    echo "| $1 | $2 | $3 | $4 | $5 | $6 | $ratio |"
    local events=""; [ -n "$4" ] && events=", $4 ev/s"
    echo "| API (wrk, $2 conn.) | $1 | $3 req/s$events, p50 $5 / p99 $6 ms | $BASE req/s GET /health/live | $ratio |" >>"$WORK/rows"
}
for c in 1 8 32; do
    read -r R P50 P99 < <(run "$c" /events "$WORK/single.lua")
    row "POST /events, 1 event" "$c" "$R" "$R" "$P50" "$P99"
done
for c in 8 32; do
    read -r R P50 P99 < <(run "$c" /events "$WORK/batch.lua")
    row "POST /events, 100-event batch" "$c" "$R" "$((R * 100))" "$P50" "$P99"
done
read -r R P50 P99 < <(run 32 "/trending?window=1h")
row "GET /trending?window=1h" 32 "$R" "" "$P50" "$P99"
echo
PEAK="$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$UP/status)"
echo "peak RSS of reco up: $PEAK"
# Headline rows for make bench's summary table.
if [ -n "${RECO_BENCH_REPORT:-}" ]; then
    cat "$WORK/rows" >>"$RECO_BENCH_REPORT"
    echo "| peak RSS under load | reco up (API benchmark) | $PEAK | | |" >>"$RECO_BENCH_REPORT"
fi
