# Shared by scripts/bench-api.sh and scripts/bench-ingest.sh (sourced, not run): wrk's loads.

# run CONNECTIONS PATH [LUA]: wrk against $URL$PATH for $DUR seconds → "req/s p50 p99" (ms).
# A load that got any answer outside 2xx measured something else (401s, 503s): it fails.
run() {
    local threads=$(( $1 < 2 ? $1 : 2 ))
    wrk -t"$threads" -c"$1" -d"${DUR}s" --latency ${3:+-s "$3"} "$URL$2" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50.000%" || $1 == "50%" { p50 = ms($2) }
        $1 == "99.000%" || $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses/ { bad = $NF }
        END { if (bad > 0) { printf "%d answers outside 2xx\n", bad > "/dev/stderr"; exit 1 }
              printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}

# write_loads DIR: DIR/single.lua (one event per POST /events) and DIR/batch.lua (100 events).
write_loads() {
    cat >"$1/single.lua" <<'LUA'
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
    } >"$1/batch.lua"
}
