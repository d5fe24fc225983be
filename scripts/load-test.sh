#!/usr/bin/env bash
# Load run against the release binary, side by side with Postfix's smtp-sink under the same
# client (Postfix's smtp-source), in one run:
#
#   1. messages/s at $SESSIONS concurrent persistent connections, `un` and `bn` (a
#      multipart/report DSN), notify-inbound against smtp-sink, with the ratio and the
#      targets (>= 0.7x the sink for un, >= 0.5x for bn). Each connection is its own
#      smtp-source process (-d -s 1) sending to its own subscription, as real traffic
#      does (smtp-source cannot vary the recipient, and bounces for one address are
#      serialised by design, docs/behaviour.md §4);
#   2. the same with one smtp-source process driving all sessions to one recipient (bn for
#      one address is then serialised: the worst case, shown for what it is);
#   3. a sender that opens one connection per message: connect-to-greeting latency
#      (examples/connect_latency.rs) and smtp-source's rate without -d, both servers.
#
# notify-inbound calls a fast fake NotifyBC API (examples/fake_notifybc.rs) in forgetful
# mode: effects are counted, not kept, so a subscription can be sent to again and again and
# every message takes the path of a first message (un: 1 API call, bn: 3). The calls are
# checked against the messages sent, and the CPU time of the server, the fake API and the
# clients is printed so the bottleneck is visible, with the HTTP connections the API client
# opened during the run (its keep-alive pool). The server logs one line per transaction
# at info, to a file.
#
# Only smtp-source and smtp-sink are used from Debian's postfix package; the Postfix mail
# service is neither started nor needed. If they are missing the package is installed.
#
# Environment: MESSAGES (per run, default 20000), SESSIONS (50), REPEAT (3; the median is
# summarised), CONNECTIONS (2000, one-connection-per-message runs), BASE_PORT (25250),
# LOG_LEVEL (info), TABLES ("many one": which of tables 1 and 2 to run), SERVER_BIN (another
# notify-inbound binary to measure, e.g. an earlier build), KEEP=1 keeps the work directory.
set -euo pipefail

MESSAGES=${MESSAGES:-20000}
SESSIONS=${SESSIONS:-50}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-2000}
BASE_PORT=${BASE_PORT:-25250}
LOG_LEVEL=${LOG_LEVEL:-info}
TABLES=${TABLES:-many one}
SMTP_PORT=$BASE_PORT
SINK_PORT=$((BASE_PORT + 1))
API_PORT=$((BASE_PORT + 2))
PER_SESSION=$((MESSAGES / SESSIONS))
MESSAGES=$((PER_SESSION * SESSIONS))

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/notify-inbound-load.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

find_tool() {
    for d in /usr/sbin /usr/lib/postfix /usr/bin; do
        if [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    return 1
}
if ! find_tool smtp-source >/dev/null || ! find_tool smtp-sink >/dev/null; then
    echo "installing Debian's postfix package for smtp-source and smtp-sink (the mail service is not used)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix >"$WORK/apt.log" 2>&1 \
        || { apt-get update >>"$WORK/apt.log" 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix >>"$WORK/apt.log" 2>&1; }
fi
SOURCE=$(find_tool smtp-source)
SINK=$(find_tool smtp-sink)

echo "== building the release binary and the load helpers"
(cd "$ROOT" && cargo build --release --quiet --bin notify-inbound --example fake_notifybc --example connect_latency)
BIN=${SERVER_BIN:-$ROOT/target/release/notify-inbound}
API_BIN=$ROOT/target/release/examples/fake_notifybc
LATENCY_BIN=$ROOT/target/release/examples/connect_latency

tick_hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
secs() { awk -v t="$1" -v hz="$tick_hz" 'BEGIN { printf "%.2f", t / hz }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
per_sec() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.0f", n / t }'; }
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}
stats() {
    exec 3<>"/dev/tcp/127.0.0.1/$API_PORT"
    printf 'GET /_stats HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    sed -n '$p' <&3
    exec 3<&-
}
stat_field() { sed -E "s/.*\"$2\":([0-9]+).*/\1/" <<<"$1"; }

# Message files for smtp-source -F (LF line ends; smtp-source sends CRLF), one per session:
# session i writes to subscription i (load{i}@subscriber.example, code 12345).
for i in $(seq 1 "$SESSIONS"); do
    for kind in un bn; do
        sed "s/@ADDRESS@/load$i@subscriber.example/g; s/@RCPT@/$kind-$i-12345@notify.example/g" \
            "$ROOT/scripts/load/$kind.eml" >"$WORK/$kind.$i.eml"
    done
done

echo "== starting the fake API, notify-inbound and smtp-sink"
"$API_BIN" --listen "127.0.0.1:$API_PORT" --forgetful --subscriptions "$SESSIONS" >"$WORK/api.log" 2>&1 &
API_PID=$!
PIDS+=("$API_PID")
wait_port "$API_PORT"
(
    cd "$WORK"
    export NOTIFY_INBOUND__INTERNAL_HTTP_HOST="http://127.0.0.1:$API_PORT"
    export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__DOMAIN=notify.example
    export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_IP=127.0.0.1
    export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_SMTP_PORT=$SMTP_PORT
    export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_CONNECTIONS_PER_IP=1000
    export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_CONNECTIONS_PER_NETWORK=1000
    export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_TRANSACTIONS=100000000
    export NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_COMMANDS=100000000
    export NOTIFY_INBOUND__OPERATIONS__LISTEN=
    export NOTIFY_INBOUND__LOG__LEVEL=$LOG_LEVEL
    exec "$BIN" serve >"$WORK/server.log" 2>&1
) &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
SINK_USER=()
if [ "$(id -u)" = 0 ]; then SINK_USER=(-u postfix); fi
"$SINK" "${SINK_USER[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
wait_port "$SMTP_PORT"
wait_port "$SINK_PORT"

echo "== machine"
echo "cpus: $(nproc) ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); $(uname -sr)"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $BIN"
echo "client: $SOURCE; messages per run: $MESSAGES; sessions: $SESSIONS; runs: $REPEAT"

# clients MODE PORT KIND COUNT SESSIONS [smtp-source options]: runs the client(s) and sets
# REAL and CLIENT_CPU (seconds). MODE "many": one smtp-source per session, each to its
# own subscription; "one": one smtp-source for all sessions, to subscription 1.
clients() {
    local mode=$1 port=$2 kind=$3 count=$4 sessions=$5
    shift 5
    local TIMEFORMAT='%R %U %S'
    {
        time (
            if [ "$mode" = many ]; then
                for i in $(seq 1 "$sessions"); do
                    local from=""
                    [ "$kind" = un ] && from=load$i@subscriber.example
                    "$SOURCE" "$@" -s 1 -m $((count / sessions)) -f "$from" -t "$kind-$i-12345@notify.example" \
                        -F "$WORK/$kind.$i.eml" "127.0.0.1:$port" >"$WORK/source.$i.out" 2>&1 \
                        || echo "failed" >"$WORK/source.$i.failed" &
                done
                wait
            else
                local from=""
                [ "$kind" = un ] && from=load1@subscriber.example
                "$SOURCE" "$@" -s "$sessions" -m "$count" -f "$from" -t "$kind-1-12345@notify.example" \
                    -F "$WORK/$kind.1.eml" "127.0.0.1:$port" >"$WORK/source.1.out" 2>&1 \
                    || echo "failed" >"$WORK/source.1.failed"
            fi
        )
    } 2>"$WORK/time.out"
    if compgen -G "$WORK/source.*.failed" >/dev/null; then
        echo "smtp-source failed against port $port ($kind):" >&2
        for f in "$WORK"/source.*.failed; do cat "${f%.failed}.out" >&2; done
        exit 1
    fi
    local user sys
    read -r REAL user sys <"$WORK/time.out"
    CLIENT_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A RATE
# table MODE TITLE: REPEAT runs per kind, sink then server, effects checked.
table() {
    local mode=$1
    printf '\n== %s\n' "$2"
    printf '%-4s %-14s %9s %8s %10s %10s %10s %10s %10s\n' kind server msg/s secs "srv cpu s" "api cpu s" "cli cpu s" "calls/msg" "api conns"
    for kind in un bn; do
        clients "$mode" "$SINK_PORT" "$kind" $((SESSIONS * 10)) "$SESSIONS" -d
        clients "$mode" "$SMTP_PORT" "$kind" $((SESSIONS * 10)) "$SESSIONS" -d
        : >"$WORK/rates.sink"
        : >"$WORK/rates.server"
        for _ in $(seq 1 "$REPEAT"); do
            local k0 k1
            k0=$(cpu_ticks "$SINK_PID")
            clients "$mode" "$SINK_PORT" "$kind" "$MESSAGES" "$SESSIONS" -d
            k1=$(cpu_ticks "$SINK_PID")
            local rate
            rate=$(per_sec "$MESSAGES" "$REAL")
            echo "$rate" >>"$WORK/rates.sink"
            printf '%-4s %-14s %9s %8s %10s %10s %10s %10s %10s\n' "$kind" smtp-sink "$rate" "$REAL" \
                "$(secs $((k1 - k0)))" - "$CLIENT_CPU" - -

            local before after s0 s1 a0 a1
            before=$(stats)
            s0=$(cpu_ticks "$SERVER_PID")
            a0=$(cpu_ticks "$API_PID")
            clients "$mode" "$SMTP_PORT" "$kind" "$MESSAGES" "$SESSIONS" -d
            s1=$(cpu_ticks "$SERVER_PID")
            a1=$(cpu_ticks "$API_PID")
            after=$(stats)
            local calls effects want refused
            calls=$(($(stat_field "$after" total) - $(stat_field "$before" total)))
            refused=$(($(stat_field "$after" refused) - $(stat_field "$before" refused)))
            # The server's API health probe (a subscription search every 5 s) lands in the
            # same counts: the un flow searches for nothing, the bn flow once per message.
            local probes
            probes=$(($(stat_field "$after" find_subscriptions) - $(stat_field "$before" find_subscriptions)))
            if [ "$kind" = un ]; then
                effects=$(($(stat_field "$after" unsubscribe) - $(stat_field "$before" unsubscribe)))
                want=$MESSAGES
            else
                effects=$(($(stat_field "$after" create_bounce) - $(stat_field "$before" create_bounce)))
                want=$((3 * MESSAGES))
                probes=$((probes - MESSAGES))
            fi
            calls=$((calls - probes))
            if [ "$probes" -lt 0 ] || [ "$probes" -gt $((${REAL%.*} / 5 + 1)) ]; then
                echo "unexpected subscription searches: $probes beyond the flows' own" >&2
                exit 1
            fi
            if [ "$effects" != "$MESSAGES" ] || [ "$calls" != "$want" ] || [ "$refused" != 0 ]; then
                echo "effects do not match: $effects effects, $calls calls, $refused refused for $MESSAGES messages" >&2
                exit 1
            fi
            rate=$(per_sec "$MESSAGES" "$REAL")
            echo "$rate" >>"$WORK/rates.server"
            printf '%-4s %-14s %9s %8s %10s %10s %10s %10s %10s\n' "$kind" notify-inbound "$rate" "$REAL" \
                "$(secs $((s1 - s0)))" "$(secs $((a1 - a0)))" "$CLIENT_CPU" "$(ratio "$calls" "$MESSAGES")" \
                "$(($(stat_field "$after" connections) - $(stat_field "$before" connections)))"
        done
        RATE[$mode.$kind.sink]=$(median <"$WORK/rates.sink")
        RATE[$mode.$kind.server]=$(median <"$WORK/rates.server")
    done
}

for mode in $TABLES; do
    case $mode in
        many) table many "$SESSIONS concurrent persistent connections, one smtp-source -d -s 1 per connection, each to its own subscription" ;;
        one) table one "$SESSIONS concurrent persistent connections from one smtp-source -d -s $SESSIONS, all to one subscription" ;;
        *) echo "TABLES: many and/or one, not $mode" >&2; exit 2 ;;
    esac
done

printf '\n== one connection per message (smtp-source without -d, un, %s messages)\n' "$CONNECTIONS"
printf '%-14s %10s %10s\n' server "1 session" "$SESSIONS sess."
for target in smtp-sink notify-inbound; do
    port=$SINK_PORT
    [ "$target" = notify-inbound ] && port=$SMTP_PORT
    clients one "$port" un "$CONNECTIONS" 1
    one=$(per_sec "$CONNECTIONS" "$REAL")
    clients one "$port" un "$CONNECTIONS" "$SESSIONS"
    many=$(per_sec "$CONNECTIONS" "$REAL")
    printf '%-14s %10s %10s   msg/s\n' "$target" "$one" "$many"
done

printf '\n== connect-to-greeting latency, one connection at a time (%s connections)\n' "$CONNECTIONS"
echo "smtp-sink:      $("$LATENCY_BIN" "127.0.0.1:$SINK_PORT" "$CONNECTIONS")"
echo "notify-inbound: $("$LATENCY_BIN" "127.0.0.1:$SMTP_PORT" "$CONNECTIONS")"

printf '\n== summary (median of %s runs, %s concurrent connections, %s messages per run)\n' "$REPEAT" "$SESSIONS" "$MESSAGES"
for mode in $TABLES; do
    for kind in un bn; do
        target=0.7
        [ "$kind" = bn ] && target=0.5
        label="one client per connection"
        [ "$mode" = one ] && label="one client, one recipient"
        awk -v k="$kind" -v l="$label" -v s="${RATE[$mode.$kind.sink]}" -v n="${RATE[$mode.$kind.server]}" -v t="$target" 'BEGIN {
            r = n / s
            printf "%s (%s): notify-inbound %d msg/s, smtp-sink %d msg/s: %.2fx the sink (target >= %.1fx: %s)\n",
                k, l, n, s, r, t, (r >= t ? "met" : "NOT met")
        }'
    done
done
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
