#!/usr/bin/env bash
# test_batch.sh — `sluice batch` as a user runs it, against `sluice mock` on loopback:
# every input format, stdin/stdout, exactly one line per id, the errors file, the JSON
# summary, bad lines, --strict, exit codes, the resume rules, signals, kill -9 followed by
# --resume, provider faults, and 5,000 requests in flight.
. "$(dirname "$0")/lib.sh"
unset OPENAI_BASE_URL OPENAI_API_KEY

# ids_once OUT WANT: OUT's lines all parse, and their custom_ids are exactly the lines of
# WANT, each once.
ids_once() {
    jq -e . "$1" >/dev/null 2>&1 || fail "$1: a line is not JSON"
    jq -r .custom_id "$1" | sort >"$T/got.ids"
    local dups
    dups=$(uniq -d "$T/got.ids" | head -5)
    [ -z "$dups" ] || fail "$1: ids with more than one line: $dups"
    sort "$2" | cmp -s - "$T/got.ids" ||
        fail "$1: ids differ from $2: $(sort "$2" | diff - "$T/got.ids" | head -5)"
}
# line_is OUT ID FILTER: the one line of ID in OUT satisfies the jq FILTER. (jq 1.6 -e
# reports the last input, not the last output, so select over single lines cannot be used.)
line_is() {
    jq -s -e --arg id "$2" "[.[] | select(.custom_id == \$id)] | length == 1 and (.[0] | $3)" "$1" >/dev/null
}
numbers() { seq 1 "$1" | sed 's/^/prompt number /'; }
seq_ids() { seq 1 "$1" >"$2"; }
fresh() { rm -f "$T/out.jsonl" "$T/out.jsonl.sluice" "$T/errors.jsonl" "$T/summary.json"; }

start_server mock "$SLUICE" mock --listen 127.0.0.1:0 --ttft-ms 5 --interval-ms 1 --chunks 6
B=(--base-url "$URL_mock/v1" --progress never)

# 1. Every format in one file; custom_id = the Batch API's custom_id, the short form's id,
#    or the line number.
cat >"$T/in.jsonl" <<'EOF'
{"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m1", "messages": [{"role": "user", "content": "alpha"}]}}
{"id": "q-2", "prompt": "bravo", "max_tokens": 3}
{"id": 17, "messages": [{"role": "user", "content": "charlie"}]}
{"prompt": "delta"}
echo this line

{"custom_id": "emb-1", "url": "/v1/embeddings", "body": {"input": "hello", "dimensions": 3}}
EOF
printf '%s\n' req-1 q-2 17 4 5 emb-1 >"$T/want.ids"
fresh
expect_status 0 "$SLUICE" batch "$T/in.jsonl" -o "$T/out.jsonl" "${B[@]}" -m my-model --summary-json "$T/summary.json"
ids_once "$T/out.jsonl" "$T/want.ids"
line_is "$T/out.jsonl" req-1 '.response.status_code == 200 and .error == null
       and .response.body.model == "m1" and (.response.body.choices[0].message.content | startswith("alpha"))
       and (.id | startswith("batch_req_")) and (.response.request_id | startswith("req-mock-"))' ||
    fail "Batch API line result wrong"
line_is "$T/out.jsonl" q-2 '.response.body.choices[0].finish_reason == "length"
       and .response.body.model == "my-model"' || fail "short form result wrong"
line_is "$T/out.jsonl" 5 '.response.body.choices[0].message.content | startswith("echo this line")' ||
    fail "plain text result wrong"
line_is "$T/out.jsonl" emb-1 '.response.body.object == "list"' || fail "embeddings result wrong"
jq -e '.items == 6 and .ok == 6 and .failed == 0 and .invalid_lines == 0 and .unfinished == 0
       and .latency_ms.count == 6 and .tokens.total > 0' "$T/summary.json" >/dev/null ||
    fail "summary json wrong: $(cat "$T/summary.json")"
grep -q '^batch: 6 items: 6 ok, 0 failed' "$T/err" || fail "summary text missing: $(cat "$T/err")"
ok "every input format, one line per id, --summary-json"

# 2. stdin to stdout; --stream gives the same chat.completion bodies.
numbers 30 | "$SLUICE" batch - -o - "${B[@]}" >"$T/stdout.jsonl" 2>"$T/err" || fail "stdin/stdout run failed"
seq_ids 30 "$T/want.ids"
ids_once "$T/stdout.jsonl" "$T/want.ids"
numbers 30 | "$SLUICE" batch - -o - "${B[@]}" --stream >"$T/streamed.jsonl" 2>"$T/err" || fail "--stream run failed"
ids_once "$T/streamed.jsonl" "$T/want.ids"
a=$(jq -cS '{id: .custom_id, m: .response.body.choices[0].message, u: .response.body.usage, o: .response.body.object}' "$T/stdout.jsonl" | sort)
b=$(jq -cS '{id: .custom_id, m: .response.body.choices[0].message, u: .response.body.usage, o: .response.body.object}' "$T/streamed.jsonl" | sort)
[ "$a" = "$b" ] || fail "--stream bodies differ from non-streamed ones"
ok "- as stdin and stdout; --stream assembles the same bodies"

numbers 5 >"$T/in5.txt"
"$SLUICE" batch "$T/in5.txt" -o /dev/null "${B[@]}" --progress always 2>"$T/err" || fail "--progress always failed"
grep -q $'\r\\[.*0/5 ok=0' "$T/err" || fail "no progress bar drawn: $(cat -v "$T/err")"
ok "--progress always draws the bar on stderr"

# 3. Bad lines: named with file and line, counted; lines with an id get an error line;
#    --errors holds the failed lines; exit 1.
cat >"$T/bad.jsonl" <<'EOF'
{"id": "a", "prompt": "fine"}
{"id": "b", "prompt":
{"id": "a", "prompt": "duplicate"}
{"custom_id": "c", "method": "GET", "body": {"messages": [{"role": "user", "content": "x"}]}}
{"id": "d", "prompt": 42}
{"id": "e", "prompt": "fine too"}
EOF
fresh
expect_status 1 "$SLUICE" batch "$T/bad.jsonl" -o "$T/out.jsonl" "${B[@]}" --errors "$T/errors.jsonl" --summary-json "$T/summary.json"
printf '%s\n' a c d e >"$T/want.ids"
ids_once "$T/out.jsonl" "$T/want.ids"
printf '%s\n' c d >"$T/want.ids"
ids_once "$T/errors.jsonl" "$T/want.ids"
for n in 2 3 4 5; do
    grep -q "bad.jsonl:$n: " "$T/err" || fail "line $n not reported with file and line: $(cat "$T/err")"
done
grep -q 'duplicate id "a" (first on line 1)' "$T/err" || fail "duplicate id not reported"
line_is "$T/out.jsonl" c '.response == null and .error.code == "invalid_method"' ||
    fail "invalid line's error line wrong"
jq -e '.ok == 2 and .invalid_lines == 4 and (.failures | length) == 4' "$T/summary.json" >/dev/null ||
    fail "summary of bad lines wrong: $(cat "$T/summary.json")"
ok "bad lines named by file:line, duplicate id, --errors, exit 1"

fresh
expect_status 2 "$SLUICE" batch "$T/bad.jsonl" -o "$T/out.jsonl" "${B[@]}" --strict -c 1
grep -q -- '--strict' "$T/err" || fail "--strict stop not reported"
[ "$(jq -r .custom_id "$T/out.jsonl")" = a ] || fail "--strict ran past the first bad line"
ok "--strict stops at the first bad line (exit 2)"

# 4. Usage errors and refusals: exit 2, nothing written.
expect_status 2 "$SLUICE" batch "$T/in.jsonl"
grep -q -- '-o OUTPUT is required' "$T/err" || fail "missing -o not explained"
expect_status 2 "$SLUICE" batch "$T/in.jsonl" -o "$T/x.jsonl" --bogus
expect_status 2 "$SLUICE" batch "$T/in.jsonl" -o "$T/x.jsonl" -c 0
expect_status 2 "$SLUICE" batch "$T/in.jsonl" -o "$T/x.jsonl" --progress sometimes
expect_status 2 "$SLUICE" batch "$T/nope.jsonl" -o "$T/x.jsonl" "${B[@]}"
grep -q 'nope.jsonl' "$T/err" || fail "missing input not named"
[ ! -e "$T/x.jsonl" ] || fail "an output was created by a refused run"
expect_status 0 "$SLUICE" batch --help
grep -q '130 interrupted' "$T/out" && grep -q -- '--resume' "$T/out" || fail "--help incomplete"
ok "usage errors exit 2; --help documents exit codes"

if [ -w /dev/full ]; then
    expect_status 2 "$SLUICE" batch "$T/in.jsonl" -o /dev/full "${B[@]}"
    grep -q 'cannot write /dev/full: No space left on device' "$T/err" || fail "write error not reported: $(cat "$T/err")"
    grep -q '0 ok, 0 failed, 6 not finished' "$T/err" || fail "unwritten results were counted: $(cat "$T/err")"
    ok "a write error (disk full) stops the run with exit 2; nothing unwritten is counted"
fi

# 5. Resume rules: an existing output needs --resume; a torn last line is repaired; an
#    output made from another input is refused.
numbers 50 >"$T/in50.txt"
seq_ids 50 "$T/want.ids"
fresh
expect_status 0 "$SLUICE" batch "$T/in50.txt" -o "$T/out.jsonl" "${B[@]}"
expect_status 2 "$SLUICE" batch "$T/in50.txt" -o "$T/out.jsonl" "${B[@]}"
grep -q 'exists; use --resume' "$T/err" || fail "existing output not refused: $(cat "$T/err")"
truncate -s -25 "$T/out.jsonl"
expect_status 0 "$SLUICE" batch "$T/in50.txt" -o "$T/out.jsonl" "${B[@]}" --resume --summary-json "$T/summary.json"
grep -q 'removed a torn last line (line 50' "$T/err" || fail "torn line not reported: $(cat "$T/err")"
ids_once "$T/out.jsonl" "$T/want.ids"
jq -e '.skipped == 49 and .ok == 1' "$T/summary.json" >/dev/null || fail "resume did more than the torn id"
numbers 51 >"$T/in51.txt"
cp "$T/out.jsonl" "$T/before.jsonl"
expect_status 2 "$SLUICE" batch "$T/in51.txt" -o "$T/out.jsonl" "${B[@]}" --resume
grep -q 'different input' "$T/err" || fail "foreign output not refused: $(cat "$T/err")"
cmp -s "$T/out.jsonl" "$T/before.jsonl" || fail "a refused resume changed the output"
# without the side file, a file input's ids are compared before anything runs
rm "$T/out.jsonl.sluice"
numbers 40 >"$T/in40.txt"
expect_status 2 "$SLUICE" batch "$T/in40.txt" -o "$T/out.jsonl" "${B[@]}" --resume
grep -q 'whose custom_id is not in the input' "$T/err" || fail "foreign output without side file not refused: $(cat "$T/err")"
cmp -s "$T/out.jsonl" "$T/before.jsonl" || fail "a refused resume (no side file) changed the output"
expect_status 0 "$SLUICE" batch "$T/in50.txt" -o "$T/out.jsonl" "${B[@]}" --resume
[ -s "$T/out.jsonl.sluice" ] || fail "the side file was not written back"
# the same from standard input: it can only be compared at its end, and then it fails
numbers 51 | sed 's/prompt/other/' | expect_status 2 "$SLUICE" batch - -o "$T/out.jsonl" "${B[@]}" --resume
grep -q 'cannot be checked against .* before the run' "$T/err" || fail "no warning for a resume from stdin: $(cat "$T/err")"
grep -q 'made from a different input' "$T/err" || fail "foreign stdin not reported: $(cat "$T/err")"
ok "existing output refused, torn last line repaired, different input refused (stdin: at its end)"

# A second run on an OUTPUT being written is refused before it touches it.
start_server slow "$SLUICE" mock --listen 127.0.0.1:0 --ttft-ms 3000
fresh
"$SLUICE" batch "$T/in50.txt" -o "$T/out.jsonl" --base-url "$URL_slow/v1" --progress never 2>/dev/null &
first=$!
for _ in $(seq 100); do [ -s "$T/out.jsonl.sluice" ] && break; sleep 0.05; done
sleep 0.2
expect_status 2 "$SLUICE" batch "$T/in50.txt" -o "$T/out.jsonl" "${B[@]}" --resume
grep -q 'is being written by another sluice batch' "$T/err" || fail "a second writer was not refused: $(cat "$T/err")"
kill -TERM "$first"
wait "$first"
expect_status 0 "$SLUICE" batch "$T/in50.txt" -o "$T/out.jsonl" "${B[@]}" --resume
ids_once "$T/out.jsonl" "$T/want.ids"
stop_server slow
ok "OUTPUT is locked: a second run on it is refused; once the first ends, --resume finishes"

# 6. SIGINT: in-flight requests finish within the grace period, exit 130; a resume does
#    exactly the rest. A second signal stops at once.
start_server slow "$SLUICE" mock --listen 127.0.0.1:0 --ttft-ms 150 --chunks 3
numbers 200 >"$T/in200.txt"
seq_ids 200 "$T/want.ids"
fresh
"$SLUICE" batch "$T/in200.txt" -o "$T/out.jsonl" --base-url "$URL_slow/v1" --progress never -c 20 \
    >/dev/null 2>"$T/sig.err" &
pid=$!
sleep 0.4
kill -INT $pid
wait $pid
st=$?
[ $st = 130 ] || fail "SIGINT: exit $st, want 130 ($(cat "$T/sig.err"))"
grep -q 'stopping: waiting up to 30s for 20 in-flight requests (signal again to stop now)' "$T/sig.err" ||
    fail "stop message missing: $(cat "$T/sig.err")"
n=$(wc -l <"$T/out.jsonl")
[ "$n" -gt 0 ] && [ "$n" -lt 200 ] || fail "SIGINT: $n lines"

grep -q 'not finished (run again with --resume)' "$T/sig.err" || fail "unfinished count missing"
expect_status 0 "$SLUICE" batch "$T/in200.txt" -o "$T/out.jsonl" --base-url "$URL_slow/v1" --progress never -c 50 --resume --summary-json "$T/summary.json"
ids_once "$T/out.jsonl" "$T/want.ids"
jq -e ".skipped == $n and .ok == $((200 - n))" "$T/summary.json" >/dev/null || fail "resume after SIGINT redid work"
ok "SIGINT: grace, exit 130, resume finishes exactly the rest"

start_server stall "$SLUICE" mock --listen 127.0.0.1:0 --stall 1
fresh
"$SLUICE" batch "$T/in200.txt" -o "$T/out.jsonl" --base-url "$URL_stall/v1" --progress never -c 10 \
    >/dev/null 2>"$T/sig.err" &
pid=$!
sleep 0.3
kill -INT $pid
sleep 0.2
kill -TERM $pid
wait $pid
st=$?
[ $st = 130 ] || fail "second signal: exit $st, want 130"
grep -q 'stopping now' "$T/sig.err" || fail "second signal not acknowledged: $(cat "$T/sig.err")"
[ ! -s "$T/out.jsonl" ] || fail "cancelled requests were written"
grep -q '200 not finished' "$T/sig.err" || fail "unfinished count wrong: $(cat "$T/sig.err")"
ok "a second signal cancels at once, nothing half-written"

# 7. kill -9 at random points, then --resume, several times: exactly one line per id.
start_server k9 "$SLUICE" mock --listen 127.0.0.1:0 --ttft-ms 30 --interval-ms 2 --chunks 5
numbers 300 >"$T/in300.txt"
seq_ids 300 "$T/want.ids"
fresh
for i in 1 2 3 4 5; do
    "$SLUICE" batch "$T/in300.txt" -o "$T/out.jsonl" --base-url "$URL_k9/v1" --progress never -c 8 \
        --resume $([ $((i % 2)) = 0 ] && echo --stream) >/dev/null 2>>"$T/k9.err" &
    pid=$!
    sleep "0.$((RANDOM % 3 + 1))$((RANDOM % 10))"
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
done
before=$(wc -l <"$T/out.jsonl")
expect_status 0 "$SLUICE" batch "$T/in300.txt" -o "$T/out.jsonl" --base-url "$URL_k9/v1" --progress never -c 50 --resume
ids_once "$T/out.jsonl" "$T/want.ids"
ok "kill -9 five times at random points + --resume: one line per id ($before lines before the last run)"

# 8. Provider faults.
start_server cut "$SLUICE" mock --listen 127.0.0.1:0 --cut-after 2 --chunks 6
numbers 10 >"$T/in10.txt"
seq_ids 10 "$T/want.ids"
fresh
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_cut/v1" --progress never --stream --retries 1 --errors "$T/errors.jsonl"
ids_once "$T/out.jsonl" "$T/want.ids"
ids_once "$T/errors.jsonl" "$T/want.ids"
jq -s -e 'all(.response == null and .error != null)' "$T/out.jsonl" >/dev/null ||
    fail "a cut stream was recorded as an answer"
ok "cut streams (--stream) fail each id with an error line"

# Half the streams cut: retries continue them; the assembled bodies equal uncut ones.
start_server halfcut "$SLUICE" mock --listen 127.0.0.1:0 --cut-after 2 --cut-rate 0.5 --chunks 6 --seed 3
fresh
expect_status 0 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_halfcut/v1" --progress never --stream --retries 10 --summary-json "$T/summary.json"
ids_once "$T/out.jsonl" "$T/want.ids"
jq -e '.ok == 10 and .retries > 0' "$T/summary.json" >/dev/null || fail "cut streams were not retried"
"$SLUICE" batch "$T/in10.txt" -o - --base-url "$URL_halfcut/v1" --progress never >"$T/uncut.jsonl" 2>/dev/null # not streamed: never cut
a=$(jq -cS '{id: .custom_id, m: .response.body.choices[0].message}' "$T/out.jsonl" | sort)
b=$(jq -cS '{id: .custom_id, m: .response.body.choices[0].message}' "$T/uncut.jsonl" | sort)
[ "$a" = "$b" ] || fail "continued streams differ from uncut answers"
ok "cut streams retried with --stream: each answer whole, exactly once"

start_server st2 "$SLUICE" mock --listen 127.0.0.1:0 --stall 1
fresh
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_st2/v1" --progress never --timeout 0.2 --retries 0
ids_once "$T/out.jsonl" "$T/want.ids"
[ "$(jq -r .error.code "$T/out.jsonl" | sort -u)" = timeout ] || fail "stall + --timeout: $(head -2 "$T/out.jsonl")"
ok "stalled provider + --timeout: every id fails with timeout"

start_server rl "$SLUICE" mock --listen 127.0.0.1:0 --fail-rate 1 --fail-status 429 --retry-after-ms 5
fresh
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_rl/v1" --progress never --retries 0 --summary-json "$T/summary.json"
ids_once "$T/out.jsonl" "$T/want.ids"
[ "$(jq -r '.error.code' "$T/out.jsonl" | sort | uniq -c | tr -s ' ')" = " 10 http_429" ] ||
    fail "429s: want 10 http_429 errors"
jq -s -e 'all(.response.status_code == 429 and .response.body.error.message != null)' "$T/out.jsonl" >/dev/null ||
    fail "429: the provider's answer is not kept"
jq -e '.ok == 0 and .failed_by_reason.http_4xx == 10 and .retries == 0' "$T/summary.json" >/dev/null || fail "429 summary wrong"
ok "429s without retries: recorded with the provider's answer"

start_server flaky "$SLUICE" mock --listen 127.0.0.1:0 --fail-rate 0.5 --fail-status 429 --retry-after-ms 5 --seed 7
fresh
expect_status 0 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_flaky/v1" --progress never --retries 20 --rpm 6000 --summary-json "$T/summary.json"
ids_once "$T/out.jsonl" "$T/want.ids"
jq -e '.ok == 10 and .retries > 0' "$T/summary.json" >/dev/null || fail "429s were not retried"
# every attempt is in the result line: the count, then 429s with their backoff, then the 200
jq -se --argjson r "$(jq .retries "$T/summary.json")" '
    ([.[] | .attempts // 1] | add) == 10 + $r and
    all(.[] | select(.attempts); (.attempt_log | length) == .attempts and (.attempt_log |
        (.[:-1] | all(.status == 429 and .error == "http_429" and .backoff_ms >= 5)) and
        (.[-1] | .status == 200 and .error == null and .backoff_ms == null)))' "$T/out.jsonl" >/dev/null ||
    fail "the attempts of a retried id are not in its line"
ok "429s retried (honouring retry-after-ms) until every id succeeds; each attempt in the line"

# requests the mock counted (GET /stats)
mock_requests() { curl -s "$1/stats" | jq .requests; }

# 5xx are retried, 400 never: the mock counts every attempt.
start_server s503 "$SLUICE" mock --listen 127.0.0.1:0 --fail-rate 1 --fail-status 503
fresh
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_s503/v1" --progress never --retries 2 --summary-json "$T/summary.json"
ids_once "$T/out.jsonl" "$T/want.ids"
[ "$(mock_requests "$URL_s503")" = 30 ] || fail "503s: $(mock_requests "$URL_s503") attempts, want 30"
jq -se 'all(.[]; .attempts == 3 and .error.code == "http_503" and .response.status_code == 503)' "$T/out.jsonl" >/dev/null ||
    fail "503 lines wrong: $(head -1 "$T/out.jsonl")"
jq -e '.failed_by_reason.http_5xx == 10 and .retries == 20' "$T/summary.json" >/dev/null || fail "503 summary wrong"
start_server s400 "$SLUICE" mock --listen 127.0.0.1:0 --fail-rate 1 --fail-status 400
fresh
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_s400/v1" --progress never --retries 5
[ "$(mock_requests "$URL_s400")" = 10 ] || fail "400s were retried: $(mock_requests "$URL_s400") attempts"
jq -se 'all(.[]; .attempts == null and .error.code == "http_400")' "$T/out.jsonl" >/dev/null || fail "400 lines wrong"
ok "503 retried up to --retries (each attempt counted by the mock), 400 never retried"

# Garbage in a stream: a protocol error, retried, then reported with every attempt.
start_server garbage "$SLUICE" mock --listen 127.0.0.1:0 --garbage-after 2
fresh
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_garbage/v1" --progress never --stream --retries 1 --summary-json "$T/summary.json"
ids_once "$T/out.jsonl" "$T/want.ids"
jq -se 'all(.[]; .error.code == "protocol" and .attempts == 2 and .response == null)' "$T/out.jsonl" >/dev/null ||
    fail "garbage lines wrong: $(head -1 "$T/out.jsonl")"
jq -e '.failed_by_reason.protocol == 10' "$T/summary.json" >/dev/null || fail "garbage summary wrong"
ok "garbage mid-stream: a protocol error, retried, each id failed once with its attempts"

# A slow reader on the provider's side: bodies still go through.
start_server slowread "$SLUICE" mock --listen 127.0.0.1:0 --slow-read-ms 5
awk 'BEGIN { for (i = 1; i <= 10; i++) { s = ""; for (j = 0; j < 3000; j++) s = s "word "; print "{\"id\":\"" i "\",\"prompt\":\"" s "\"}" } }' >"$T/big10.jsonl"
fresh
expect_status 0 "$SLUICE" batch "$T/big10.jsonl" -o "$T/out.jsonl" --base-url "$URL_slowread/v1" --progress never --stream
ids_once "$T/out.jsonl" "$T/want.ids"
ok "a provider that reads slowly: 15 KB requests all answered"

# --deadline bounds a request with all its retries; --breaker fails fast once open.
fresh
start=$(date +%s%N)
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_s503/v1" --progress never --retries 50 --deadline 0.4
[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 20000 ] || fail "--deadline did not bound the run"
# each id ends with its last 503, or with the deadline if it struck during an attempt or a
# backoff: never after 50 retries
jq -se 'all(.[]; (.error.code == "http_503" or (.error.code == "timeout" and (.error.message | test("deadline"))))
        and (.attempts // 1) < 10)' "$T/out.jsonl" >/dev/null ||
    fail "deadline lines wrong: $(head -1 "$T/out.jsonl")"
before=$(mock_requests "$URL_s503")
fresh
expect_status 1 "$SLUICE" batch "$T/in10.txt" -o "$T/out.jsonl" --base-url "$URL_s503/v1" --progress never --retries 0 -c 1 --breaker 3 --breaker-cooldown 60 --summary-json "$T/summary.json"
[ $(( $(mock_requests "$URL_s503") - before )) = 3 ] || fail "the breaker let more than 3 requests through"
jq -e '.failed_by_reason.http_5xx == 3 and .failed_by_reason.circuit_open == 7' "$T/summary.json" >/dev/null ||
    fail "breaker summary wrong: $(jq -c .failed_by_reason "$T/summary.json")"
grep -q 'circuit open' "$T/err" || fail "the summary does not say circuit open"
ok "--deadline gives up on a request within its budget; --breaker 3 stops calling after 3 failures"

# 9. 5,000 requests in flight on one process.
if ulimit -n 12000 2>/dev/null; then
    start_server wide "$SLUICE" mock --listen 127.0.0.1:0 --ttft-ms 100 --chunks 3
    seq 1 6000 >"$T/in6000.txt"
    fresh
    expect_status 0 "$SLUICE" batch "$T/in6000.txt" -o "$T/out.jsonl" --base-url "$URL_wide/v1" --progress never -c 5000 --summary-json "$T/summary.json"
    ids_once "$T/out.jsonl" "$T/in6000.txt"
    jq -e '.ok == 6000' "$T/summary.json" >/dev/null || fail "-c 5000: not all ok"
    ok "--concurrency 5000 on 6000 lines"
    (
        ulimit -n 600
        expect_status 2 "$SLUICE" batch "$T/in6000.txt" -o "$T/y.jsonl" --base-url "$URL_wide/v1" -c 5000
        grep -q 'ulimit -n' "$T/err" || fail "open-file limit not explained: $(cat "$T/err")"
    ) || exit 1
    ok "a too-low open-file limit is refused up front"
else
    echo "skip - --concurrency 5000: cannot raise the open-file limit to 12000"
fi
