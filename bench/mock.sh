#!/usr/bin/env bash
# mock.sh — requests/s of `sluice mock` against the node mock of the peer kit and against
# nginx serving the same response from a static file, streamed (20 SSE chunks) and not.
# Every server is pinned to CPU 0 (one core), wrk to CPU 1, side by side in one run.
#
#   bench/mock.sh            # 10 s per phase
#   DURATION=5 CONNS=64 bench/mock.sh
# Prints a markdown table on stdout; logs and raw wrk output stay in $RUN.
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
CHUNKS=${CHUNKS:-20}
command -v wrk >/dev/null || die "wrk not installed (apt-get install wrk)"
command -v nginx >/dev/null || die "nginx not installed (apt-get install nginx-light)"
[ -n "$PEERS" ] && [ -f "$PEERS/upstream_mock.js" ] || die "peer kit not found (set PEERS=)"
build_release

REQ='{"model":"mock-model","messages":[{"role":"user","content":"Say hello"}],"stream":STREAM}'
declare -A RPS P50 P99 CPU

# run_wrk NAME URL STREAM
run_wrk() {
    local name=$1 url=$2 stream=$3 pid=$4
    # warm up, then measure
    WRK_STREAM=$stream timeout $((DURATION + 10)) taskset -c 1 wrk -t1 -c"$CONNS" -d2s \
        -s "$ROOT/bench/wrk_chat.lua" "$url" >/dev/null 2>&1
    local c0; c0=$(cpu_s "$pid")
    WRK_STREAM=$stream timeout $((DURATION + 20)) taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" \
        -s "$ROOT/bench/wrk_chat.lua" "$url" >"$RUN/wrk-$name-$stream.txt" 2>&1
    local c1; c1=$(cpu_s "$pid")
    local j; j=$(grep '^WRKJSON' "$RUN/wrk-$name-$stream.txt" | sed 's/^WRKJSON //')
    [ -n "$j" ] || die "wrk failed for $name: $(tail -3 "$RUN/wrk-$name-$stream.txt")"
    local errs; errs=$(jq '.errors + .non2xx' <<<"$j")
    [ "$errs" = 0 ] || log "WARNING: $name stream=$stream had $errs errors"
    RPS[$name,$stream]=$(jq '.requests / (.duration_us / 1e6) | floor' <<<"$j")
    P50[$name,$stream]=$(jq '.p50_us / 1000' <<<"$j")
    P99[$name,$stream]=$(jq '.p99_us / 1000' <<<"$j")
    CPU[$name,$stream]=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }')
    log "$name stream=$stream: ${RPS[$name,$stream]} req/s"
}

# sluice mock
port=$(free_port)
bg sluice taskset -c 0 "$SLUICE" mock --listen "127.0.0.1:$port" --chunks "$CHUNKS"
spid=$BG_PID
wait_listening sluice || die "sluice mock did not start"
U_S="http://127.0.0.1:$port/v1/chat/completions"

# the same responses as static files for nginx
mkdir -p "$RUN/html-json/v1/chat" "$RUN/html-sse/v1/chat" "$RUN/ngx-json/tmp" "$RUN/ngx-sse/tmp"
curl -s "$U_S" -d "${REQ/STREAM/false}" >"$RUN/html-json/v1/chat/completions"
curl -s "$U_S" -d "${REQ/STREAM/true}" >"$RUN/html-sse/v1/chat/completions"
log "response sizes: json $(wc -c <"$RUN/html-json/v1/chat/completions") B, stream $(wc -c <"$RUN/html-sse/v1/chat/completions") B"

for s in 0 1; do run_wrk sluice "$U_S" $s $spid; done
stop_pid $spid

# node mock (peer kit)
port=$(free_port)
bg node taskset -c 0 node "$PEERS/upstream_mock.js" --port "$port" --chunks "$CHUNKS"
npid=$BG_PID
wait_port "$port" || die "node mock did not start"
for s in 0 1; do run_wrk node "http://127.0.0.1:$port/v1/chat/completions" $s $npid; done
stop_pid $npid

# nginx static, one worker
for kind in json sse; do
    port=$(free_port)
    type=application/json
    [ $kind = sse ] && type=text/event-stream
    sed -e "s|@PORT@|$port|" -e "s|@ROOT@|$RUN/html-$kind|" -e "s|@TYPE@|$type|" \
        "$ROOT/bench/nginx_static.conf" >"$RUN/ngx-$kind/nginx.conf"
    bg "nginx-$kind" taskset -c 0 nginx -c "$RUN/ngx-$kind/nginx.conf" -p "$RUN/ngx-$kind/" -e stderr
    gpid=$BG_PID
    wait_port "$port" || die "nginx did not start: $(cat "$RUN/nginx-$kind.err")"
    s=0
    [ $kind = sse ] && s=1
    run_wrk nginx "http://127.0.0.1:$port/v1/chat/completions" $s $gpid
    stop_pid $gpid
done

echo
echo "bench/mock.sh: wrk -t1 -c$CONNS -d${DURATION}s on CPU 1, each server on CPU 0; $CHUNKS chunks, 0 ms delays"
echo
echo "| upstream | mode | req/s | p50 ms | p99 ms | server CPU s | vs node mock | vs nginx static |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for s in 0 1; do
    mode=json
    [ $s = 1 ] && mode=stream
    for n in sluice node nginx; do
        r=${RPS[$n,$s]}
        printf '| %s | %s | %s | %.2f | %.2f | %s | %.2fx | %.2fx |\n' "$n" "$mode" "$r" "${P50[$n,$s]}" \
            "${P99[$n,$s]}" "${CPU[$n,$s]}" "$(awk -v a="$r" -v b="${RPS[node,$s]}" 'BEGIN{print a/b}')" \
            "$(awk -v a="$r" -v b="${RPS[nginx,$s]}" 'BEGIN{print a/b}')"
    done
done
