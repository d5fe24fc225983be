#!/usr/bin/env bash
# Regenerates tests/corpus/mta/: real bounce and delay messages written by real MTAs (Postfix
# and Exim, as scripts/ensure-mtas.sh provides them, and OpenSMTPD), with tests/corpus/mta/expected.jsonl
# giving each file's expected verdict from what the MTA did.
#
# Each MTA runs as a private instance in a temporary directory on loopback ports: it accepts a
# notification from `bn-{id}-{code}@inbound.example` to a subscriber, fails to deliver it
# (locally, or because a small fake MX on loopback refuses it), and sends its DSN to a sink
# on loopback, which keeps it. Nothing resolves names through DNS; mail never leaves 127.0.0.1.
#
# Scenarios: user unknown (local, and a remote 550 5.1.1), host unknown (a remote 550 5.1.2
# "domain not found"; Exim also for a domain nothing routes, "Unrouteable address"), mailbox
# full (452 4.2.2 until the MTA gives up, and 552 5.2.2), message too big (552 5.3.4), policy
# reject (550 5.7.1), and delays (the MTA's delay warning while 452 4.2.2 goes on).
#
# OpenSMTPD (6.8, unpacked from its .deb under target/mta/opensmtpd) writes the same scenarios
# but the local one: it refuses an unknown local user during the SMTP session, so there is no
# DSN to keep. Sendmail (8.17, unpacked from its .debs under target/mta/sendmail, its
# configuration built with its own m4 files) writes the remote ones; it runs in a mount
# namespace whose /etc/hosts names the machine with a domain and whose resolver answers
# nothing, since Sendmail waits for a fully qualified name of its own host before anything.
#
# Usage (as root): scripts/generate-mta-bounces.sh   (then review and commit the changes)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/tests/corpus/mta
EXIM=${EXIM_BIN:-$ROOT/target/mta/exim4/usr/sbin/exim4}
OSMTPD_ROOT=$ROOT/target/mta/opensmtpd
SM_ROOT=$ROOT/target/mta/sendmail

scripts/ensure-mtas.sh >/dev/null

W=$(mktemp -d /tmp/mta-bounces.XXXXXX)
chmod 755 "$W"
PIDS=()
OSMTPD_PID=
MADE_MAILNAME=0
MADE_SPOOL=0
[[ -e /var/spool/smtpd ]] || MADE_SPOOL=1
cleanup() {
    if [[ -n $OSMTPD_PID ]]; then kill "$OSMTPD_PID" 2>/dev/null || true; fi
    if ((MADE_MAILNAME)); then rm -f /etc/mailname; fi
    if ((MADE_SPOOL)); then sleep 1; rm -rf /var/spool/smtpd; fi
    if [[ -f $W/pf/conf/main.cf ]]; then /usr/sbin/postfix -c "$W/pf/conf" stop >/dev/null 2>&1 || true; fi
    if [[ -f $W/ex/exim.pid ]]; then kill "$(cat "$W/ex/exim.pid")" 2>/dev/null || true; fi
    pkill -f "$W/sm/sendmail.cf" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$W"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
SINK=$(free_port)
MX=$(free_port)
PF=$(free_port)
EX=$(free_port)
OS=$(free_port)
SM=$(free_port)

# The sink keeps each message under the local part of its recipient, numbered per recipient.
# The MX answers by the recipient's local part.
cat >"$W/smtp.py" <<'EOF'
import os, socket, sys, threading
mode, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
counts = {}
RCPT = {
    "nouser": "550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table",
    "nohost": "550 5.1.2 <{a}>: Recipient address rejected: Domain not found",
    "fullperm": "552 5.2.2 <{a}>: Recipient address rejected: Mailbox full, quota exceeded",
    "full": "452 4.2.2 <{a}>: Mailbox full",
    "policy": "550 5.7.1 <{a}>: Recipient address rejected: Access denied",
}
def session(c):
    try:
        talk(c)
    except OSError:
        pass
def talk(c):
    f = c.makefile("rb")
    say = lambda s: c.sendall((s + "\r\n").encode())
    say("220 %s ESMTP" % ("mx.remote.example" if mode == "mx" else "sink.example"))
    rcpts = []
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.decode("utf-8", "replace").rstrip("\r\n")
        up = cmd.upper()
        if up.startswith("EHLO"):
            say("250-hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 ENHANCEDSTATUSCODES")
        elif up.startswith("MAIL"):
            rcpts = []
            say("250 2.1.0 Ok")
        elif up.startswith("RCPT"):
            a = cmd.split(":", 1)[1].strip().lstrip("<").split(">")[0]
            local = a.split("@")[0].lower()
            rule = next((r for k, r in RCPT.items() if mode == "mx" and local.startswith(k)), None)
            if rule:
                say(rule.format(a=a))
            else:
                rcpts.append(a)
                say("250 2.1.5 Ok")
        elif up == "DATA":
            say("354 End data with <CR><LF>.<CR><LF>")
            data = b""
            while True:
                l = f.readline()
                if not l or l in (b".\r\n", b".\n"):
                    break
                data += l[1:] if l.startswith(b".") else l
            if mode == "mx" and any(r.lower().startswith("big") for r in rcpts):
                say("552 5.3.4 Error: message file too big")
                continue
            for r in rcpts:
                local = r.split("@")[0]
                with lock:
                    n = counts[local] = counts.get(local, 0) + 1
                with open(os.path.join(out, "%s.%d.eml" % (local, n)), "wb") as fh:
                    fh.write(data)
            say("250 2.0.0 Ok: queued")
        elif up == "QUIT":
            say("221 2.0.0 Bye")
            return
        else:
            say("250 2.0.0 Ok")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen()
while True:
    c, _ = s.accept()
    threading.Thread(target=session, args=(c,), daemon=True).start()
EOF
mkdir -p "$W/inbox" "$W/mx"
python3 "$W/smtp.py" sink "$SINK" "$W/inbox" & PIDS+=($!)
python3 "$W/smtp.py" mx "$MX" "$W/mx" & PIDS+=($!)

# ---- Postfix ----
D=$W/pf
mkdir -p "$D/conf" "$D/queue" "$D/data"
chown postfix:postfix "$D/data"
printf 'inbound.example smtp:[127.0.0.1]:%s\nremote.example smtp:[127.0.0.1]:%s\n' "$SINK" "$MX" >"$D/conf/transport"
cat >"$D/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $D/queue
data_directory = $D/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mta-postfix.example
mydomain = mta-postfix.example
myorigin = \$myhostname
mydestination = local.example
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
local_recipient_maps =
alias_maps =
alias_database =
smtp_dns_support_level = disabled
transport_maps = texthash:$D/conf/transport
maillog_file = $D/maillog
maillog_file_prefixes = $D
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 1s
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
delay_warning_time = 0
biff = no
EOF
{
    echo "127.0.0.1:$PF inet n - n - - smtpd"
    for s in "pickup unix n - n 60 1 pickup" "cleanup unix n - n - 0 cleanup" \
        "qmgr unix n - n 300 1 qmgr" "tlsmgr unix - - n 1000? 1 tlsmgr" \
        "rewrite unix - - n - - trivial-rewrite" "bounce unix - - n - 0 bounce" \
        "defer unix - - n - 0 bounce" "trace unix - - n - 0 bounce" \
        "verify unix - - n - 1 verify" "flush unix n - n 1000? 0 flush" \
        "proxymap unix - - n - - proxymap" "smtp unix - - n - - smtp" \
        "relay unix - - n - - smtp" "showq unix n - n - - showq" "error unix - - n - - error" \
        "retry unix - - n - - error" "discard unix - - n - - discard" \
        "local unix - n n - - local" "anvil unix - - n - 1 anvil" \
        "scache unix - - n - 1 scache" "postlog unix-dgram n - n - 1 postlogd"; do
        echo "$s"
    done
} >"$D/conf/master.cf"
/usr/sbin/postfix -c "$D/conf" start

# ---- Exim ----
E=$W/ex
mkdir -p "$E/spool" "$E/log"
chown -R Debian-exim:Debian-exim "$E/spool" "$E/log"
cat >"$E/exim.conf" <<EOF
exim_path = $EXIM
keep_environment =
primary_hostname = mta-exim.example
qualify_domain = mta-exim.example
domainlist local_domains = local.example
spool_directory = $E/spool
log_file_path = $E/log/%slog
pid_file_path = $E/exim.pid
local_interfaces = 127.0.0.1
daemon_smtp_ports = $EX
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = accept
tls_advertise_hosts =
delay_warning = 2s
begin routers
notify:
  driver = manualroute
  domains = inbound.example
  route_list = * 127.0.0.1
  self = send
  transport = to_sink
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1
  self = send
  transport = to_mx
localuser:
  driver = accept
  domains = +local_domains
  check_local_user
  transport = local_delivery
begin transports
to_sink:
  driver = smtp
  port = $SINK
  allow_localhost
to_mx:
  driver = smtp
  port = $MX
  allow_localhost
local_delivery:
  driver = appendfile
  file = /dev/null
begin retry
* * F,6s,1s
EOF
"$EXIM" -C "$E/exim.conf" -bd -q1s

# ---- OpenSMTPD ----
# Unpacked from its .deb like Exim (it conflicts with Postfix as a package). Its queue is
# compiled in as /var/spool/smtpd; its name comes from /etc/mailname, made for the run when
# the machine has none.
O=$W/osd
mkdir -p "$O"
if [[ ! -x $OSMTPD_ROOT/usr/sbin/smtpd ]]; then
    (cd "$O" && chmod 777 . && apt-get -o DPkg::Lock::Timeout=600 download opensmtpd)
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends libevent-2.1-7 libssl3 libdb5.3
    mkdir -p "$OSMTPD_ROOT"
    dpkg -x "$O"/opensmtpd_*.deb "$OSMTPD_ROOT"
fi
for u in opensmtpd opensmtpq; do
    getent passwd $u >/dev/null ||
        useradd --system --user-group --home-dir /var/lib/opensmtpd --no-create-home --shell /usr/sbin/nologin $u
done
mkdir -p /var/lib/opensmtpd/empty
if [[ ! -e /etc/mailname ]]; then
    echo mta-opensmtpd.example >/etc/mailname
    MADE_MAILNAME=1
fi
cat >"$O/smtpd.conf" <<EOF
queue ttl 6s
bounce warn-interval 2s
listen on 127.0.0.1 port $OS hostname mta-opensmtpd.example
action "sink" relay host smtp://127.0.0.1:$SINK
action "mx" relay host smtp://127.0.0.1:$MX
action "local" mbox
match from any for domain "inbound.example" action "sink"
match from any for domain "remote.example" action "mx"
match from any for domain "local.example" action "local"
EOF
"$OSMTPD_ROOT/usr/sbin/smtpd" -f "$O/smtpd.conf" -d -v >"$O/log" 2>&1 &
OSMTPD_PID=$!

# ---- Sendmail ----
S=$W/sm
mkdir -p "$S/queue"
if [[ ! -x $SM_ROOT/usr/libexec/sendmail/sendmail ]]; then
    (cd "$S" && chmod 777 . && apt-get -o DPkg::Lock::Timeout=600 download sendmail-bin sendmail-base sendmail-cf)
    mkdir -p "$SM_ROOT"
    for d in "$S"/sendmail-*.deb; do dpkg -x "$d" "$SM_ROOT"; done
fi
printf 'inbound.example esmtp:[127.0.0.1]\nremote.example relay:[127.0.0.1]\n' >"$S/mailertable"
printf 'nameserver 127.0.0.1\n' >"$S/resolv.conf"
printf '127.0.0.1 localhost\n127.0.0.1 %s.mta-sendmail.example %s\n' "$(hostname)" "$(hostname)" >"$S/hosts"
cat >"$S/sendmail.mc" <<EOF
divert(0)dnl
include(\`$SM_ROOT/usr/share/sendmail/cf/m4/cf.m4')dnl
OSTYPE(\`linux')dnl
define(\`confDONT_BLAME_SENDMAIL', \`GroupWritableDirPathSafe,MapInUnsafeDirPath')dnl
define(\`confDOMAIN_NAME', \`mta-sendmail.example')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`QUEUE_DIR', \`$S/queue')dnl
define(\`confDEF_USER_ID', \`0:0')dnl
define(\`confRUN_AS_USER', \`root')dnl
define(\`confTO_QUEUEWARN', \`2s')dnl
define(\`confTO_QUEUERETURN', \`6s')dnl
define(\`confMIN_QUEUE_AGE', \`0s')dnl
define(\`ESMTP_MAILER_ARGS', \`TCP \$h $SINK')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $MX')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`mailertable', \`hash $S/mailertable')dnl
DAEMON_OPTIONS(\`Port=$SM, Addr=127.0.0.1, Name=MTA')dnl
MAILER(\`smtp')dnl
EOF
m4 "$S/sendmail.mc" >"$S/sendmail.cf"
"$SM_ROOT/usr/libexec/sendmail/makemap" -C "$S/sendmail.cf" hash "$S/mailertable" <"$S/mailertable"
unshare --mount sh -c "mount --bind $S/resolv.conf /etc/resolv.conf && mount --bind $S/hosts /etc/hosts &&
    exec $SM_ROOT/usr/libexec/sendmail/sendmail -C $S/sendmail.cf -bD -q1s" >"$S/log" 2>&1 &
PIDS+=($!)

wait_port() {
    for _ in $(seq 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}
for p in "$SINK" "$MX" "$PF" "$EX" "$OS" "$SM"; do wait_port "$p"; done

# submit PORT SENDER RECIPIENT: a notification as NotifyBC sends it.
submit() {
    python3 - "$@" <<'EOF'
import smtplib, sys
port, sender, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
code = sender.split("-")[2].split("@")[0]
msg = ("From: Notify <notify@inbound.example>\r\nTo: %s\r\nSubject: Your notification\r\n"
       "Message-ID: <%s@notify.example>\r\nDate: Mon, 07 Dec 2026 02:00:00 +0000\r\n"
       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
       "Hello subscriber.\r\n" % (rcpt, code))
with smtplib.SMTP("127.0.0.1", port) as s:
    s.sendmail(sender, [rcpt], msg)
EOF
}

# Scenario table: file name, MTA, recipient, kind, hard. Each gets its own bn id (the line
# number) so the sink can tell the DSNs apart.
SCENARIOS=(
    "postfix-user-unknown-local postfix nosuchuser@local.example bounce true"
    "postfix-user-unknown-remote postfix nouser@remote.example bounce true"
    "postfix-host-unknown-remote postfix nohost@remote.example bounce true"
    "postfix-mailbox-full-expired postfix full@remote.example bounce false"
    "postfix-mailbox-full-permanent postfix fullperm@remote.example bounce false"
    "postfix-message-too-big postfix big@remote.example bounce false"
    "postfix-policy-reject postfix policy@remote.example bounce false"
    "exim-user-unknown-local exim nosuchuser@local.example bounce true"
    "exim-user-unknown-remote exim nouser@remote.example bounce true"
    "exim-host-unknown-remote exim nohost@remote.example bounce true"
    "exim-unrouteable-address exim someone@unrouteable.example bounce true"
    "exim-mailbox-full-expired exim full@remote.example bounce false"
    "exim-mailbox-full-permanent exim fullperm@remote.example bounce false"
    "exim-message-too-big exim big@remote.example bounce false"
    "exim-policy-reject exim policy@remote.example bounce false"
    "opensmtpd-user-unknown-remote opensmtpd nouser@remote.example bounce true"
    "opensmtpd-host-unknown-remote opensmtpd nohost@remote.example bounce true"
    "opensmtpd-mailbox-full-expired opensmtpd full@remote.example bounce false"
    "opensmtpd-mailbox-full-permanent opensmtpd fullperm@remote.example bounce false"
    "opensmtpd-message-too-big opensmtpd big@remote.example bounce false"
    "opensmtpd-policy-reject opensmtpd policy@remote.example bounce false"
    "sendmail-user-unknown-remote sendmail nouser@remote.example bounce true"
    "sendmail-host-unknown-remote sendmail nohost@remote.example bounce true"
    "sendmail-mailbox-full-expired sendmail full@remote.example bounce false"
    "sendmail-mailbox-full-permanent sendmail fullperm@remote.example bounce false"
    "sendmail-message-too-big sendmail big@remote.example bounce false"
    "sendmail-policy-reject sendmail policy@remote.example bounce false"
)
# Delays: Postfix needs a queue lifetime above zero for a warning, so they go after the
# bounces, with the lifetime raised; Exim warns at 2 s and gives up at 6 s (its
# mailbox-full-expired bounce above is the end of the same story).
DELAYS=(
    "postfix-delay-warning postfix full-delayed@remote.example delay false"
    "exim-delay-warning exim full-delayed@remote.example delay false"
    "opensmtpd-delay-warning opensmtpd full-delayed@remote.example delay false"
    "sendmail-delay-warning sendmail full-delayed@remote.example delay false"
)

declare -A SENDER
n=0
send_all() {
    local row name mta rcpt port
    for row in "$@"; do
        read -r name mta rcpt _ _ <<<"$row"
        n=$((n + 1))
        SENDER[$name]="bn-$n-$((50000 + n))@inbound.example"
        case $mta in postfix) port=$PF ;; exim) port=$EX ;; sendmail) port=$SM ;; *) port=$OS ;; esac
        submit "$port" "${SENDER[$name]}" "$rcpt"
    done
}

# wait_dsn NAME KIND: the sink's file for NAME's bn address whose report is a failure
# (KIND bounce) or a delay warning (KIND delay), bounded. An address can get both: Exim and
# OpenSMTPD warn before they give up. OpenSMTPD 6.8 reports giving up ("Envelope expired")
# with `Action: delayed`; it is a failure all the same.
wait_dsn() {
    local local_part=${SENDER[$1]%@*} f
    for _ in $(seq 300); do
        for f in "$W/inbox/$local_part".*.eml; do
            [[ -f $f ]] || continue
            if { [[ $2 == bounce ]] && grep -qiE "^Action: *failed|Envelope expired" "$f"; } ||
                { [[ $2 == delay ]] && grep -qi "^Action: *delayed" "$f" && ! grep -q "Envelope expired" "$f"; }; then
                echo "$f"
                return 0
            fi
        done
        sleep 0.1
    done
    echo "no $2 DSN for $1 (${SENDER[$1]}) within 30 s" >&2
    cat "$W/pf/maillog" "$E/log/mainlog" "$O/log" "$S/log" >&2
    exit 1
}

send_all "${SCENARIOS[@]}"
for row in "${SCENARIOS[@]}"; do read -r name _ _ kind _ <<<"$row"; wait_dsn "$name" "$kind" >/dev/null; done
/usr/sbin/postconf -c "$D/conf" -e maximal_queue_lifetime=1h bounce_queue_lifetime=1h delay_warning_time=1s
/usr/sbin/postfix -c "$D/conf" reload
sleep 2
send_all "${DELAYS[@]}"
for row in "${DELAYS[@]}"; do read -r name _ _ kind _ <<<"$row"; wait_dsn "$name" "$kind" >/dev/null; done

rm -rf "$OUT"
mkdir -p "$OUT"
: >"$OUT/expected.jsonl"
for row in "${SCENARIOS[@]}" "${DELAYS[@]}"; do
    read -r name mta rcpt kind hard <<<"$row"
    src=$(wait_dsn "$name" "$kind")
    cp "$src" "$OUT/$name.eml"
    case $mta in postfix) log=$D/maillog ;; exim) log=$E/log/mainlog ;; sendmail) log=$S/log ;; *) log=$O/log ;; esac
    python3 - "$OUT/$name.eml" "$name" "$mta" "$rcpt" "$kind" "$hard" "$log" >>"$OUT/expected.jsonl" <<'EOF'
import json, re, sys
path, name, mta, rcpt, kind, hard, log = sys.argv[1:]
text = open(path, encoding="utf-8", errors="replace").read()
# The status the MTA wrote for the recipient in its delivery-status part.
dsn_status = re.findall(r"(?mi)^Status:\s*([245]\.\d{1,3}\.\d{1,3})", text)
dsn_status = dsn_status[0] if dsn_status else ""
# The MTA's own log lines for the recipient's failed (or deferred) deliveries, as evidence.
marks = ("status=deferred", " == ", 'result="TempFail"') if kind == "delay" else ("status=", " ** ", " == ", "result=", "Expire for")
lines = [l.strip() for l in open(log, errors="replace") if ("<%s>" % rcpt in l or " %s" % rcpt in l) and any(m in l for m in marks)]
# The expected status is the most specific one the report carries: the enhanced code of the
# last reply the MTA got for the recipient (Postfix logs it as dsn=, Exim and OpenSMTPD quote
# the remote's reply) when the report quotes it too, else the status the report gives.
status = ""
for l in lines:
    m = re.search(r"\bdsn=([245]\.\d{1,3}\.\d{1,3})", l) or re.search(r"\b[245]\d\d ([245]\.\d{1,3}\.\d{1,3})\b", l)
    if m:
        status = m.group(1)
if status not in text:
    status = ""
status = status or dsn_status
evidence = [l for l in lines if re.search(r"\b[245]\d\d [245]\.|dsn=|\*\*|Expire for", l)]
print(json.dumps({
    "file": name + ".eml",
    "mta": mta,
    "kind": kind,
    "recipient": rcpt,
    "hard": hard == "true",
    "status": status,
    "dsn_status": dsn_status,
    "mta_log": evidence[-1] if evidence else (lines[-1] if lines else ""),
}))
EOF
done
{
    echo "postfix: $(/usr/sbin/postconf -d -h mail_version)"
    echo "exim: $("$EXIM" -C /dev/null -bV 2>/dev/null | head -n1)"
    echo "opensmtpd: $(zcat "$OSMTPD_ROOT/usr/share/doc/opensmtpd/changelog.Debian.gz" | head -n1)"
    echo "sendmail: $(zcat "$SM_ROOT/usr/share/doc/sendmail-bin/changelog.Debian.gz" 2>/dev/null | head -n1)"
} >"$OUT/VERSIONS"
echo "wrote $(ls "$OUT"/*.eml | wc -l) messages to $OUT"
