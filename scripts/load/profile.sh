#!/usr/bin/env bash
# Instructions per message of the release binary, by function, with callgrind: the server
# runs under valgrind twice, once receiving N1 and once N2 messages of one kind (un or bn)
# from smtp-source over one connection, against the fast fake API (forgetful mode); the
# difference divided by N2 - N1 is the cost of one message, start-up and one-time work
# (regex compilation, the self-signed certificate, pool set-up) cancelled out. Instruction
# counts do not depend on what else the machine is doing.
#
# usage: scripts/load/profile.sh un|bn [N1 [N2]]     (defaults 100 600)
# It also prints the per-message cost of compiling regexes and reading the configuration
# (both must happen once, at start: expected 0).
# Environment: TOP (functions listed, 40), EXCLUSIVE=1 for self cost instead of inclusive,
# KEEP=1 to keep the callgrind files, BIN (the server binary, default target/release).
set -euo pipefail
KIND=${1:?usage: profile.sh un|bn [N1 [N2]]}
N1=${2:-100}
N2=${3:-600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/notify-inbound}
API_BIN=$ROOT/target/release/examples/fake_notifybc
PORT=${PORT:-25350}
API_PORT=$((PORT + 1))
WORK=$(mktemp -d /tmp/notify-inbound-profile.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "callgrind files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[ -x "$SOURCE" ] || { echo "smtp-source not found: run scripts/load-test.sh once, or apt-get install postfix" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet --bin notify-inbound --example fake_notifybc)

ADDRESS=loadtest@subscriber.example
sed "s/@ADDRESS@/$ADDRESS/g; s/@RCPT@/un-1-12345@notify.example/g" "$ROOT/scripts/load/un.eml" >"$WORK/un.eml"
sed "s/@ADDRESS@/$ADDRESS/g; s/@RCPT@/bn-1-12345@notify.example/g" "$ROOT/scripts/load/bn.eml" >"$WORK/bn.eml"

"$API_BIN" --listen "127.0.0.1:$API_PORT" --forgetful --subscription "1,$ADDRESS,12345" >"$WORK/api.log" 2>&1 &
PIDS+=($!)

wait_port() {
    for _ in $(seq 1 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}
wait_port "$API_PORT"

run() {
    local n=$1 out=$2
    (
        cd "$WORK"
        export NOTIFY_INBOUND__INTERNAL_HTTP_HOST="http://127.0.0.1:$API_PORT"
        export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__DOMAIN=notify.example
        export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_IP=127.0.0.1
        export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_SMTP_PORT=$PORT
        export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_TRANSACTIONS=100000000
        export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_COMMANDS=100000000
        export NOTIFY_INBOUND__OPERATIONS__LISTEN=
        exec valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" serve >"$out.log" 2>&1
    ) &
    local vp=$!
    wait_port "$PORT"
    local from=""
    [ "$KIND" = un ] && from=$ADDRESS
    "$SOURCE" -d -s 1 -m "$n" -f "$from" -t "$KIND-1-12345@notify.example" -F "$WORK/$KIND.eml" "127.0.0.1:$PORT"
    kill -TERM "$vp"
    wait "$vp" || true
}
run "$N1" "$WORK/cg.$N1.out"
run "$N2" "$WORK/cg.$N2.out"
ARGS=(--top "${TOP:-40}" --check)
[ "${EXCLUSIVE:-0}" = 1 ] && ARGS+=(--exclusive)
echo "== $KIND: $BIN"
python3 "$ROOT/scripts/load/cg_diff.py" "$WORK/cg.$N1.out" "$N1" "$WORK/cg.$N2.out" "$N2" "${ARGS[@]}"
