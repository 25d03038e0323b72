# lib.sh — process control and measurement helpers for the bench scripts (sourced).
#
# Every process is started in its own session, remembered by PID and start time, and
# stopped by that PID (never by name); the EXIT trap stops whatever is left. Every load
# run is bounded by a duration or a count and by `timeout`.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS:-$(cd "$ROOT/../shared/peers" 2>/dev/null && pwd)}
RUN=${RUN:-$(mktemp -d /tmp/sluice-bench.XXXXXX)}
BENCH_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
declare -A BENCH_START=()

# bg NAME CMD...: start a server in its own session; sets BG_PID.
bg() {
    local name=$1
    shift
    setsid "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" </dev/null &
    BG_PID=$!
    BENCH_PIDS+=("$BG_PID")
    BENCH_START[$BG_PID]=$(starttime "$BG_PID")
}

stop_pid() {
    local p=$1
    [ "$(starttime "$p" 2>/dev/null)" = "${BENCH_START[$p]:-x}" ] || return 0
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
}
bench_cleanup() { local p; for p in "${BENCH_PIDS[@]}"; do stop_pid "$p"; done; }
trap bench_cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    local port=$1
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# wait_listening NAME: the "listening http://..." line of a sluice server; sets BG_URL.
wait_listening() {
    local line=""
    for _ in $(seq 200); do
        line=$(head -n1 "$RUN/$1.out" 2>/dev/null)
        [[ "$line" == listening\ http://* ]] && { BG_URL=${line#listening }; return 0; }
        sleep 0.05
    done
    return 1
}

# CPU seconds (user+sys) used so far by PID and its children that were waited for.
cpu_s() {
    local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }; set -- $s
    awk -v u="${12}" -v st="${13}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (u + st) / hz }'
}
peak_rss_kb() { awk '/VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

build_release() {
    cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
        cmake --build "$ROOT/build/release" -j"$(nproc)" >/dev/null || die "build failed"
    SLUICE="$ROOT/build/release/sluice"
}
