#!/usr/bin/env bash
# test_examples.sh — the example programs in examples/ work against a real mock: the pull
# iterator and the callback API each print an answer that begins with their prompt, and
# many_calls runs N calls C at a time to one summary line.
. "$(dirname "$0")/lib.sh"
: "${SL_BUILD_DIR:?}"
start_server m "$SLUICE" mock --listen 127.0.0.1:0 --chunks 12 --interval-ms 2

expect_status 0 "$SL_BUILD_DIR/example_stream_pull" "$URL_m/v1" "pull me please"
grep -q '^pull me please' "$T/out" || fail "stream_pull output: $(cat "$T/out")"
ok "examples/stream_pull: the blocking iterator"

expect_status 0 "$SL_BUILD_DIR/example_stream_callbacks" "$URL_m/v1"
[ -s "$T/out" ] || fail "stream_callbacks printed nothing"
ok "examples/stream_callbacks: callbacks on a loop"

expect_status 0 "$SL_BUILD_DIR/example_many_calls" 50 8 "$URL_m/v1"
grep -q '^calls 50 concurrency 8 ok 50 errors 0 wall ' "$T/out" || fail "many_calls: $(cat "$T/out")"
ok "examples/many_calls: N calls, C in flight"

port=$(closed_port)
"$SL_BUILD_DIR/example_stream_pull" "http://127.0.0.1:$port/v1" "x" >"$T/out" 2>"$T/err"
[ $? != 0 ] || fail "stream_pull should fail against a closed port"
"$SL_BUILD_DIR/example_many_calls" 3 2 "http://127.0.0.1:$port/v1" >"$T/out" 2>"$T/err"
[ $? = 1 ] || fail "many_calls should fail against a closed port"
grep -q '^calls 3 concurrency 2 ok 0 errors 3 wall ' "$T/out" || fail "many_calls: $(cat "$T/out")"
ok "examples report a failed call with a non-zero exit"
