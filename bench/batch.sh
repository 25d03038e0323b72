#!/usr/bin/env bash
# batch.sh — `sluice batch` against the peer batch clients (Python asyncio+httpx, asyncio+
# aiohttp, the official `openai` npm SDK), side by side in one run, against one `sluice mock`
# with 200 ms time to first token and 20 chunks 5 ms apart. Every client streams each answer
# and collects its text. Each runs under /usr/bin/time -v: wall, CPU, peak RSS.
#
#   bench/batch.sh                       # N=10000 prompts, C=1000 in flight
#   N=2000 C=100 bench/batch.sh
#   ONLY=sluice,httpx bench/batch.sh
#   STREAM=0 ONLY=sluice bench/batch.sh  # sluice without --stream (the peers always stream)
# Knobs: N C TTFT_MS CHUNKS INTERVAL_MS MAX_S ONLY STREAM PEERS PEERS_NODE OPENAI_VERSION
# Lower bound of the wall time: ceil(N/C) x one request's time (TTFT + (CHUNKS-1) x INTERVAL).
. "$(dirname "$0")/lib.sh"
N=${N:-10000}
C=${C:-1000}
TTFT_MS=${TTFT_MS:-200}
CHUNKS=${CHUNKS:-20}
INTERVAL_MS=${INTERVAL_MS:-5}
MAX_S=${MAX_S:-300}
STREAM=${STREAM:-1}
ONLY=${ONLY:-sluice,httpx,aiohttp,openai}
PEERS_NODE=${PEERS_NODE:-/tmp/peers-node}
OPENAI_VERSION=${OPENAI_VERSION:-6.49.0}
PY=/usr/bin/python3
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
build_release
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

want() { [[ ",$ONLY," == *",$1,"* ]]; }
if want openai && [ ! -f "$PEERS_NODE/node_modules/openai/package.json" ]; then
    log "installing openai@$OPENAI_VERSION into $PEERS_NODE (npm)"
    mkdir -p "$PEERS_NODE"
    (cd "$PEERS_NODE" && { [ -f package.json ] || echo '{"private":true}' >package.json; } &&
        npm install --no-audit --no-fund "openai@$OPENAI_VERSION" >/dev/null 2>&1) || die "npm install openai failed"
fi

port=$(free_port)
bg mock "$SLUICE" mock --listen "127.0.0.1:$port" --ttft-ms "$TTFT_MS" --interval-ms "$INTERVAL_MS" --chunks "$CHUNKS"
mpid=$BG_PID
wait_listening mock || die "mock did not start"
BASE="http://127.0.0.1:$port/v1"

# One streamed request alone, the median of 5: the per-request time actually achieved.
single_ms=$(for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' "$BASE/chat/completions" -H 'content-type: application/json' \
        -d '{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"x"}]}'
done | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 * 1000 }')
waves=$(((N + C - 1) / C))
formula_ms=$((TTFT_MS + (CHUNKS - 1) * INTERVAL_MS))
bound_s=$(awk -v w=$waves -v f=$formula_ms 'BEGIN { printf "%.2f", w * f / 1000 }')
bound2_s=$(awk -v w=$waves -v f="$single_ms" 'BEGIN { printf "%.2f", w * f / 1000 }')

# The same prompts for sluice as the peers send: "Write one sentence about item i."
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "{\"id\":\"%d\",\"prompt\":\"Write one sentence about item %d.\"}\n", i, i }' >"$RUN/prompts.jsonl"

tv() { awk -F': ' -v k="$2" 'index($0, k) { v = $NF } END { print v }' "$1"; }
secs() { awk -v t="$1" 'BEGIN { n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }'; }

declare -a ROWS=()
run_client() {
    local name=$1
    shift
    log "client $name: $*"
    local u0; u0=$(cpu_s "$mpid")
    timeout -k 5 $((MAX_S + 30)) /usr/bin/time -v -o "$RUN/$name.time" "$@" >"$RUN/$name.out" 2>"$RUN/$name.err"
    local rc=$?
    local u1; u1=$(cpu_s "$mpid")
    local wall user sys rss ok
    wall=$(secs "$(tv "$RUN/$name.time" 'Elapsed (wall clock) time')")
    user=$(tv "$RUN/$name.time" 'User time (seconds)')
    sys=$(tv "$RUN/$name.time" 'System time (seconds)')
    rss=$(tv "$RUN/$name.time" 'Maximum resident set size (kbytes)')
    if [ "$name" = sluice ]; then
        ok=$(jq -s '[.[] | select(.response.status_code == 200)] | length' "$RUN/sluice.results.jsonl")
        inner=$(jq '.wall_ms / 1000' "$RUN/sluice.summary.json")
    else
        ok=$(grep '^{' "$RUN/$name.out" | tail -1 | jq .ok)
        inner=$(grep '^{' "$RUN/$name.out" | tail -1 | jq .wall_s)
    fi
    ROWS+=("$name|$rc|$ok|$inner|$wall|$user|$sys|$rss|$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.1f", b - a }')")
    sleep 1
}

if want sluice; then
    rm -f "$RUN/sluice.results.jsonl" "$RUN/sluice.results.jsonl.sluice"
    stream_flag=(--stream)
    [ "$STREAM" = 0 ] && stream_flag=()
    run_client sluice "$SLUICE" batch "$RUN/prompts.jsonl" -o "$RUN/sluice.results.jsonl" -c "$C" "${stream_flag[@]}" \
        --base-url "$BASE" --progress never --summary-json "$RUN/sluice.summary.json"
fi
want httpx && run_client httpx $PY "$PEERS/clients/batch_httpx.py" --base-url "$BASE" --n "$N" --c "$C" --max-seconds "$MAX_S"
want aiohttp && run_client aiohttp $PY "$PEERS/clients/batch_aiohttp.py" --base-url "$BASE" --n "$N" --c "$C" --max-seconds "$MAX_S"
want openai && PEERS_NODE=$PEERS_NODE run_client openai node "$PEERS/clients/batch_openai.js" --base-url "$BASE" --n "$N" --c "$C" --max-seconds "$MAX_S"

# The floor this mock allows at this concurrency on this machine: wrk (C, one thread, no
# JSON, no files) keeping C streams in flight for a few seconds; its median latency times
# the number of waves is what no client can beat here.
floor_s=""
if command -v wrk >/dev/null && [ "${FLOOR:-1}" = 1 ]; then
    log "floor: wrk -c $C streaming for 6 s"
    floor_p50=$(WRK_STREAM=1 timeout 30 wrk -t1 -c"$C" -d6 --latency -s "$ROOT/bench/wrk_chat.lua" \
        "$BASE/chat/completions" 2>/dev/null | sed -n 's/^WRKJSON //p' | jq '.p50_us / 1000')
    [ -n "$floor_p50" ] && floor_s=$(awk -v w=$waves -v p="$floor_p50" 'BEGIN { printf "%.2f", w * p / 1000 }')
fi

# Ratios against the best peer (lowest CPU, lowest RSS among the peers that finished).
best_cpu=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' '$1 != "sluice" && $3 > 0 { c = $6 + $7; if (b == "" || c < b) b = c } END { print b }')
best_rss=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' '$1 != "sluice" && $3 > 0 { if (b == "" || $8 < b) b = $8 } END { print b }')

echo
echo "bench/batch.sh: N=$N prompts, C=$C in flight, $([ "$STREAM" = 0 ] && echo "sluice not streamed" || echo streamed); sluice mock TTFT ${TTFT_MS} ms, $CHUNKS chunks ${INTERVAL_MS} ms apart"
echo "one request alone: $single_ms ms; lower bound ceil(N/C) x request = $waves x $formula_ms ms = ${bound_s} s (${bound2_s} s with the measured request)"
[ -n "$floor_s" ] && echo "floor at C=$C: wrk's median stream latency ${floor_p50} ms x $waves waves = ${floor_s} s ($(awk -v f="$floor_s" -v b="$bound_s" 'BEGIN { printf "%.3f", f / b }')x the bound)"
echo
echo "| client | exit | ok | batch wall s | vs bound | process wall s | CPU s (user+sys) | CPU vs best peer | peak RSS MiB | RSS vs best peer | mock CPU s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r name rc ok inner wall user sys rss mcpu <<<"$r"
    awk -v n="$name" -v rc="$rc" -v ok="$ok" -v in_="$inner" -v w="$wall" -v u="$user" -v s="$sys" -v rss="$rss" \
        -v b="$bound_s" -v bc="$best_cpu" -v br="$best_rss" -v m="$mcpu" 'BEGIN {
        c = u + s
        printf "| %s | %s | %s | %.2f | %.3fx | %.2f | %.2f | %s | %.1f | %s | %s |\n", n, rc, ok, in_, in_ / b, w, c,
            (bc > 0 ? sprintf("%.3fx", c / bc) : "-"), rss / 1024, (br > 0 ? sprintf("%.3fx", rss / br) : "-"), m }'
done
