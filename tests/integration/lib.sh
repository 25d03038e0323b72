# lib.sh — shared helpers for the integration tests (sourced, not run).
#
# Every test starts the real `sluice` binary ($SLUICE, set by ctest) and real servers on
# 127.0.0.1 with port 0, reads the port from the "listening http://..." line, and stops
# what it started by PID (never by name). A test prints "ok - name" per check and exits
# non-zero on the first failure.
set -uo pipefail

: "${SLUICE:?SLUICE must point at the sluice binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-it.XXXXXX")
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL - $*" >&2
    for f in "$T"/*.err; do
        [ -s "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
    done
    exit 1
}
ok() { echo "ok - $*"; }

# start_server NAME CMD...: run CMD in the background, wait for its "listening URL" line,
# set URL_<NAME> and PID_<NAME>.
start_server() {
    local name=$1
    shift
    local out="$T/$name.out"
    "$@" >"$out" 2>"$T/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    local line=""
    for _ in $(seq 200); do
        line=$(head -n1 "$out" 2>/dev/null)
        [[ "$line" == listening\ http://* ]] && break
        kill -0 "$pid" 2>/dev/null || fail "$name exited before listening"
        sleep 0.05
    done
    [[ "$line" == listening\ http://* ]] || fail "$name did not print its listening line"
    printf -v "URL_$name" '%s' "${line#listening }"
    printf -v "PID_$name" '%s' "$pid"
}

# stop_server NAME: SIGTERM, wait; the exit status is in STOP_STATUS.
stop_server() {
    local pid_var="PID_$1"
    local pid=${!pid_var}
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    STOP_STATUS=$?
}

# expect_status WANT CMD...: run CMD (stdout to $T/out, stderr to $T/err), check its status.
expect_status() {
    local want=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ "$got" = "$want" ] || fail "expected exit $want, got $got: $* (stderr: $(head -c 500 "$T/err"))"
}

# A free TCP port on 127.0.0.1 with nothing listening (for connection-refused tests).
closed_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
