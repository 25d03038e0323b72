#!/usr/bin/env bash
# chat_ttft.sh — time to first token of `sluice chat` against `curl -N` on the same mock
# stream: both measured from process start to the first byte on stdout, and to exit.
#
#   bench/chat_ttft.sh           # N=30 runs each, mock with 100 ms TTFT, 20 chunks 10 ms apart
#   N=50 TTFT_MS=50 bench/chat_ttft.sh
. "$(dirname "$0")/lib.sh"
N=${N:-30}
TTFT_MS=${TTFT_MS:-100}
INTERVAL_MS=${INTERVAL_MS:-10}
CHUNKS=${CHUNKS:-20}
build_release

port=$(free_port)
bg mock "$SLUICE" mock --listen "127.0.0.1:$port" --ttft-ms "$TTFT_MS" --interval-ms "$INTERVAL_MS" --chunks "$CHUNKS"
wait_listening mock || die "mock did not start"
U="http://127.0.0.1:$port/v1"
body='{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"why is the sky blue?"}]}'

FB="$ROOT/bench/first_byte.py"
c=$(timeout 300 "$FB" "$N" curl -sN "$U/chat/completions" -H 'content-type: application/json' -d "$body") || die "curl runs failed"
s=$(timeout 300 "$FB" "$N" "$SLUICE" chat --base-url "$U" -m mock-model "why is the sky blue?") || die "sluice runs failed"
floor=$(awk -v t="$TTFT_MS" -v i="$INTERVAL_MS" -v c="$CHUNKS" 'BEGIN { print t + (c - 1) * i }')

echo
echo "bench/chat_ttft.sh: N=$N runs each; mock TTFT ${TTFT_MS} ms, $CHUNKS chunks ${INTERVAL_MS} ms apart (stream floor ${floor} ms)"
echo
echo "| client | first token p50 ms | p90 ms | whole stream p50 ms | p90 ms | first token vs curl |"
echo "|---|---:|---:|---:|---:|---:|"
for row in "curl -N|$c" "sluice chat|$s"; do
    name=${row%%|*}
    j=${row#*|}
    printf '| %s | %.1f | %.1f | %.1f | %.1f | %.2fx |\n' "$name" "$(jq .first_ms_p50 <<<"$j")" \
        "$(jq .first_ms_p90 <<<"$j")" "$(jq .total_ms_p50 <<<"$j")" "$(jq .total_ms_p90 <<<"$j")" \
        "$(jq -n --argjson a "$j" --argjson b "$c" '$a.first_ms_p50 / $b.first_ms_p50')"
done
