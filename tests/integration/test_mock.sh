#!/usr/bin/env bash
# test_mock.sh — `sluice mock` over real sockets, checked with curl and a raw socket:
# the listening line, every route, the stream format, determinism, each misbehaviour
# (flags and the x-mock header), pipelining, limits, /stats.
. "$(dirname "$0")/lib.sh"

start_server m "$SLUICE" mock --listen 127.0.0.1:0 --chunks 5 --seed 7
U=$URL_m
[[ "$U" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "listening line: $U"
ok "first stdout line is the listening URL"

[ "$(curl -s "$U/health")" = ok ] || fail "/health"
curl -s "$U/v1/models" | jq -e '.object == "list" and any(.data[]; .id == "mock-model")' >/dev/null || fail "/v1/models"
ok "/health, /v1/models"

body='{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Name a colour"}]}'
curl -s "$U/v1/chat/completions" -d "$body" >"$T/a.json"
jq -e '.object == "chat.completion" and .model == "m"
       and (.choices[0].message.content | startswith("Name a colour"))
       and .choices[0].finish_reason == "stop"
       and .usage.prompt_tokens == 5
       and .usage.completion_tokens == (.choices[0].message.content | split(" ") | map(select(. != "")) | length)
       and .usage.total_tokens == .usage.prompt_tokens + .usage.completion_tokens' "$T/a.json" >/dev/null ||
    fail "non-stream completion: $(cat "$T/a.json")"
curl -s "$U/v1/chat/completions" -d "$body" | cmp -s <(jq -c .choices "$T/a.json") <(jq -c .choices) ||
    fail "answers are not deterministic"
ok "chat completion: prompt echoed, usage consistent, deterministic"

sbody='{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Name a colour"}]}'
curl -sN "$U/v1/chat/completions" -d "$sbody" >"$T/s.txt"
[ "$(grep -c '^data: ' "$T/s.txt")" = 7 ] || fail "stream should have 5 chunks + usage + [DONE]: $(cat "$T/s.txt")"
[ "$(tail -n2 "$T/s.txt" | head -n1)" = "data: [DONE]" ] || fail "stream must end with data: [DONE]"
text=$(grep '^data: {' "$T/s.txt" | sed 's/^data: //' | jq -rj '.choices[0].delta.content // empty')
[ "$text" = "$(jq -r '.choices[0].message.content' "$T/a.json")" ] || fail "stream text != non-stream text"
grep '^data: {' "$T/s.txt" | tail -n1 | sed 's/^data: //' | jq -e '.choices == [] and .usage.completion_tokens > 0' >/dev/null ||
    fail "usage chunk"
ok "stream: chunks, usage chunk, [DONE], same text as non-stream"

curl -s "$U/v1/completions" -d '{"model":"m","prompt":"Once upon"}' | jq -e '.object == "text_completion" and (.choices[0].text | startswith("Once upon"))' >/dev/null || fail "/v1/completions"
curl -s "$U/v1/embeddings" -d '{"model":"e","input":["a","b"],"dimensions":8}' >"$T/e.json"
jq -e '.object == "list" and (.data | length) == 2 and (.data[0].embedding | length) == 8' "$T/e.json" >/dev/null || fail "/v1/embeddings"
curl -s "$U/v1/embeddings" -d '{"model":"e","input":["a","b"],"dimensions":8}' | cmp -s - "$T/e.json" || fail "embeddings not deterministic"
ok "/v1/completions, /v1/embeddings deterministic"

[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/nope")" = 404 ] || fail "404"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/chat/completions")" = 405 ] || fail "GET chat -> 405"
[ "$(curl -s -o "$T/b.json" -w '%{http_code}' "$U/v1/chat/completions" -d '{bad')" = 400 ] || fail "bad JSON -> 400"
jq -e '.error.message | length > 0' "$T/b.json" >/dev/null || fail "400 carries an OpenAI error body"
ok "404, 405, 400 with JSON error bodies"

# x-mock: per-request faults with the flag names.
code=$(curl -s -D "$T/h.txt" -o "$T/b.json" -w '%{http_code}' -H 'x-mock: fail-rate=1; fail-status=429; retry-after-ms=2500' "$U/v1/chat/completions" -d "$body")
[ "$code" = 429 ] || fail "x-mock 429: $code"
grep -qi '^retry-after: 3' "$T/h.txt" && grep -qi '^retry-after-ms: 2500' "$T/h.txt" || fail "429 headers: $(cat "$T/h.txt")"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'x-mock: nonsense=1' "$U/v1/chat/completions" -d "$body")" = 400 ] || fail "bad x-mock -> 400"
curl -sN -H 'x-mock: cut-after=2' "$U/v1/chat/completions" -d "$sbody" >"$T/cut.txt"
grep -q 'DONE' "$T/cut.txt" && fail "cut stream must not end with [DONE]"
[ "$(grep -c '^data: ' "$T/cut.txt")" = 2 ] || fail "cut-after=2 sent $(grep -c '^data: ' "$T/cut.txt") events"
curl -sN -H 'x-mock: garbage-after=1' "$U/v1/chat/completions" -d "$sbody" >"$T/g.txt"
sed -n 3p "$T/g.txt" | grep -q '^data: ' && ! sed -n 3p "$T/g.txt" | sed 's/^data: //' | jq . >/dev/null 2>&1 || fail "garbage-after: $(head -c 300 "$T/g.txt")"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 0.5 -H 'x-mock: stall=1' "$U/v1/chat/completions" -d "$body")
[ "$code" = 000 ] || fail "stall should send nothing, got $code"
ok "x-mock: 429 + Retry-After, bad key, cut-after, garbage-after, stall"

# Pipelined requests in one write are answered in order on one connection.
/usr/bin/python3 - "$U" <<'PY' || fail "pipelining"
import socket, sys
host, port = sys.argv[1][7:].split(':')
s = socket.create_connection((host, int(port)))
reqs = b''
for i in range(3):
    b = ('{"messages":[{"role":"user","content":"pipe %d"}]}' % i).encode()
    reqs += b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' % (len(b), b)
s.sendall(reqs)
data = b''
s.settimeout(5)
while data.count(b'"object":"chat.completion"') < 3:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
pos = [data.find(b'"content":"pipe %d' % i) for i in range(3)]
assert all(p > 0 for p in pos) and pos == sorted(pos), pos
PY
ok "pipelined requests answered in order"

# Limits: a huge header block and a body over the cap get clean 431 / 413.
big=$(head -c 20000 /dev/zero | tr '\0' a)
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "x-big: $big" "$U/health")" = 431 ] || fail "431"
[ "$(head -c 2000000 /dev/zero | tr '\0' a | curl -s -o /dev/null -w '%{http_code}' --data-binary @- "$U/v1/chat/completions")" = 413 ] || fail "413"
ok "431 for oversized headers, 413 for an oversized body"

curl -s "$U/stats" | jq -e '.requests >= 10 and .streams >= 3 and .faults >= 3 and .connections >= 10' >/dev/null ||
    fail "/stats: $(curl -s "$U/stats")"
ok "/stats counters"

# RPM limit answers 429 like a real provider.
start_server r "$SLUICE" mock --listen 127.0.0.1:0 --rpm 2
for i in 1 2; do [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL_r/v1/chat/completions" -d "$body")" = 200 ] || fail "rpm request $i"; done
code=$(curl -s -D "$T/h.txt" -o /dev/null -w '%{http_code}' "$URL_r/v1/chat/completions" -d "$body")
[ "$code" = 429 ] && grep -qi '^retry-after:' "$T/h.txt" && grep -qi '^x-ratelimit-remaining-requests: 0' "$T/h.txt" ||
    fail "rpm: third request $code $(cat "$T/h.txt")"
ok "--rpm 2: third request gets 429 with Retry-After and x-ratelimit headers"

stop_server m
[ "$STOP_STATUS" = 0 ] || fail "exit status on SIGTERM: $STOP_STATUS"
expect_status 2 "$SLUICE" mock --no-such-option 1
expect_status 2 "$SLUICE" mock --listen nonsense
ok "clean stop; bad options -> exit 2"
