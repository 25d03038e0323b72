#!/usr/bin/env bash
# test_chat.sh — `sluice chat` as a user runs it: the embedded mock, a real mock server
# through OPENAI_BASE_URL and flags, stdin, --json, and every failure's exit code and message.
. "$(dirname "$0")/lib.sh"
export -n OPENAI_BASE_URL OPENAI_API_KEY
unset OPENAI_BASE_URL OPENAI_API_KEY

# 1. No key, no network: the embedded mock answers, beginning with the prompt.
expect_status 0 "$SLUICE" chat "why is the sky blue?"
grep -q '^why is the sky blue?' "$T/out" || fail "embedded answer does not start with the prompt: $(cat "$T/out")"
[ "$(wc -l <"$T/out")" = 1 ] || fail "answer should end with exactly one newline"
ok "embedded mock streams an answer"

# 2. The prompt from stdin; --json prints one object with text, usage, timings.
echo "tell me about rivers" | "$SLUICE" chat --json >"$T/out" 2>"$T/err" || fail "stdin prompt failed"
jq -e '.ok == true and (.text | startswith("tell me about rivers")) and .usage.completion_tokens > 0
       and .attempts == 1 and .timings.total_ms > 0 and .response.object == "chat.completion"' \
    "$T/out" >/dev/null || fail "--json output wrong: $(cat "$T/out")"
ok "prompt from stdin, --json result"

# 3. A mock server through OPENAI_BASE_URL, then --base-url overriding it.
start_server mock "$SLUICE" mock --listen 127.0.0.1:0 --chunks 7
OPENAI_BASE_URL="$URL_mock/v1" OPENAI_API_KEY=sk-test expect_status 0 "$SLUICE" chat -m m1 --verbose "hello there"
grep -q '^hello there' "$T/out" || fail "remote answer wrong: $(cat "$T/out")"
grep -q 'model=m1 attempts=1' "$T/err" || fail "--verbose line missing: $(cat "$T/err")"
ok "OPENAI_BASE_URL + OPENAI_API_KEY"
OPENAI_BASE_URL="http://127.0.0.1:1/v1" expect_status 0 "$SLUICE" chat --base-url "$URL_mock/v1" "flags win"
ok "--base-url overrides OPENAI_BASE_URL"
MY_KEY=abc expect_status 0 "$SLUICE" chat --base-url "$URL_mock/v1" --api-key-env MY_KEY "key from var"
expect_status 2 "$SLUICE" chat --base-url "$URL_mock/v1" --api-key-env NO_SUCH_VAR_X "x"
grep -q 'NO_SUCH_VAR_X' "$T/err" || fail "missing key variable not named"
ok "--api-key-env"
expect_status 0 "$SLUICE" chat --base-url "$URL_mock/v1" --no-stream --max-tokens 3 --json "short one"
jq -e '.finish_reason == "length" and .usage.completion_tokens >= 1' "$T/out" >/dev/null ||
    fail "--no-stream --max-tokens: $(cat "$T/out")"
ok "--no-stream, --max-tokens"

# 4. Failures: one line on stderr naming what failed, a distinct exit code.
port=$(closed_port)
expect_status 3 "$SLUICE" chat --base-url "http://127.0.0.1:$port/v1" "x"
grep -q "127.0.0.1:$port" "$T/err" || fail "connect error does not name the URL: $(cat "$T/err")"
ok "connection refused -> exit 3"

start_server failing "$SLUICE" mock --listen 127.0.0.1:0 --fail-rate 1 --fail-status 503
expect_status 5 "$SLUICE" chat --base-url "$URL_failing/v1" "x"
grep -q '503' "$T/err" && grep -q 'injected' "$T/err" && grep -q "$URL_failing" "$T/err" ||
    fail "HTTP error line should name URL, status, provider message: $(cat "$T/err")"
[ "$(wc -l <"$T/err")" = 1 ] || fail "HTTP error should be one line: $(cat "$T/err")"
ok "HTTP 503 -> exit 5 with the provider's message"

start_server stall "$SLUICE" mock --listen 127.0.0.1:0 --stall 1
expect_status 4 "$SLUICE" chat --base-url "$URL_stall/v1" --timeout 500ms "x"
ok "stalled provider + --timeout -> exit 4"

start_server cut "$SLUICE" mock --listen 127.0.0.1:0 --cut-after 3 --chunks 10
expect_status 3 "$SLUICE" chat --base-url "$URL_cut/v1" "cut me"
grep -q '^cut me' "$T/out" || fail "delivered text before the cut should be printed"
grep -q "$URL_cut" "$T/err" || fail "a cut stream should name the URL: $(cat "$T/err")"
ok "stream cut mid-answer (connection lost) -> exit 3"

start_server garbage "$SLUICE" mock --listen 127.0.0.1:0 --garbage-after 2 --chunks 10
expect_status 6 "$SLUICE" chat --base-url "$URL_garbage/v1" "garbage"
ok "garbage mid-stream -> exit 6"

# A flaky provider: retries make it through, and --verbose says so.
start_server flaky "$SLUICE" mock --listen 127.0.0.1:0 --fail-rate 0.6 --fail-status 503 --seed 5
for i in 1 2 3; do
    expect_status 0 "$SLUICE" chat --base-url "$URL_flaky/v1" --retries 20 --json "flaky $i"
    jq -e --arg p "flaky $i" '.ok and (.text | startswith($p)) and .attempts >= 1' "$T/out" >/dev/null ||
        fail "retried chat: $(cat "$T/out")"
done
[ "$(curl -s "$URL_flaky/stats" | jq .faults)" -gt 0 ] || fail "the flaky mock injected no fault"
expect_status 5 "$SLUICE" chat --base-url "$URL_failing/v1" --retries 0 --json "x"
jq -e '.attempts == 1 and .error.http_status == 503' "$T/out" >/dev/null || fail "--retries 0: $(cat "$T/out")"
ok "--retries: a flaky provider is retried; --retries 0 makes one attempt"

# Streams cut mid-answer at random: each retry continues where the last one stopped, and
# what the user sees is exactly the answer, no token twice, none missing.
start_server cutty "$SLUICE" mock --listen 127.0.0.1:0 --chunks 12 --interval-ms 1 --cut-after 5 --cut-rate 0.5 --seed 11
retried=0
for i in 1 2 3 4 5 6; do
    want=$(curl -s -H 'x-mock: cut-after=-1' "$URL_cutty/v1/chat/completions" \
        -d "{\"model\":\"mock-model\",\"messages\":[{\"role\":\"user\",\"content\":\"resume $i\"}]}" |
        jq -r '.choices[0].message.content')
    "$SLUICE" chat --base-url "$URL_cutty/v1" -m mock-model --retries 30 -v "resume $i" >"$T/out" 2>"$T/err" || fail "cut+retry chat $i: $(cat "$T/err")"
    [ "$(cat "$T/out")" = "$want" ] || fail "continued stream differs: got '$(cat "$T/out")' want '$want'"
    grep -q 'retrying' "$T/err" && retried=$((retried + 1))
done
[ $retried -gt 0 ] || fail "no stream was cut and continued"
ok "cut streams continued after a retry: exact text, $retried of 6 needed it"

expect_status 2 "$SLUICE" chat --temperature 9 "x"
expect_status 2 "$SLUICE" chat --no-such-flag "x"
expect_status 2 "$SLUICE" chat --base-url "ftp://x" "x"
ok "usage errors -> exit 2"

# 5. Ctrl-C mid-stream: the upstream connection is closed at once, exit 130.
start_server slow "$SLUICE" mock --listen 127.0.0.1:0 --chunks 200 --interval-ms 20
"$SLUICE" chat --base-url "$URL_slow/v1" "interrupt me" >"$T/int.out" 2>"$T/int.err" &
cpid=$!
for _ in $(seq 100); do [ -s "$T/int.out" ] && break; sleep 0.05; done
kill -INT $cpid
wait $cpid
st=$?
[ $st = 130 ] || fail "SIGINT should exit 130, got $st"
[ "$(tail -c1 "$T/int.out" | od -An -c | tr -d ' ')" = '\n' ] || fail "interrupted output should end its line"
aborts=0
for _ in $(seq 50); do
    aborts=$(curl -s "$URL_slow/stats" | jq .client_aborts)
    [ "$aborts" = 1 ] && break
    sleep 0.05
done
[ "$aborts" = 1 ] || fail "the mock did not see the connection closed (client_aborts=$aborts)"
ok "SIGINT -> upstream closed, exit 130"

stop_server mock
[ "$STOP_STATUS" = 0 ] || fail "sluice mock should exit 0 on SIGTERM, got $STOP_STATUS"
ok "mock stops cleanly on SIGTERM"
