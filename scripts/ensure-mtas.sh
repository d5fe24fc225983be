#!/usr/bin/env bash
# Makes sure the real mail servers the MTA tests (tests/real_mta.rs) drive are available:
#
# - Postfix, installed from Debian's package with debconf preseeded to "No configuration", its
#   system service kept from starting. The tests run their own instances (`postfix -c DIR`)
#   in temporary directories; scripts/load-test.sh uses its smtp-source.
# - Exim, which conflicts with Postfix as a package: its .debs (exim4-daemon-light and the
#   libraries it links) are downloaded and unpacked with `dpkg -x` under target/mta/exim4,
#   never installed. The tests run that binary with `-C` and a configuration of their own.
#
# The tests find Exim through EXIM_BIN, default target/mta/exim4/usr/sbin/exim4.
#
# Usage: scripts/ensure-mtas.sh [--check]
#   --check  only check; exit non-zero with the install line if anything is missing.
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
SELF=ensure-mtas
cd "$(dirname "$0")/.."

EXIM_ROOT=${EXIM_ROOT:-target/mta/exim4}
EXIM_BIN="$EXIM_ROOT/usr/sbin/exim4"
# Exim's own packages, unpacked; the shared libraries it links that a minimal system lacks are
# installed normally (they conflict with nothing).
EXIM_DEBS=(exim4-daemon-light exim4-base exim4-config)
EXIM_LIBS=(libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0 libcrypt1)
INSTALL_LINE="scripts/ensure-mtas.sh (as root: apt-get install -y postfix ${EXIM_LIBS[*]}; apt-get download ${EXIM_DEBS[*]}; dpkg -x each into $EXIM_ROOT; useradd --system --user-group Debian-exim)"

missing() {
    command -v postfix >/dev/null 2>&1 || [[ -x /usr/sbin/postfix ]] || echo "postfix"
    [[ -x /usr/sbin/postqueue ]] || echo "postqueue (postfix)"
    if [[ ! -x "$EXIM_BIN" ]]; then
        echo "exim ($EXIM_BIN)"
    elif ! getent passwd Debian-exim >/dev/null; then
        echo "the Debian-exim user exim runs as"
    elif ! "$EXIM_BIN" -C /dev/null -bV >/dev/null 2>&1; then
        echo "exim's libraries ($("$EXIM_BIN" -C /dev/null -bV 2>&1 | head -n1))"
    fi
}

report() {
    echo "postfix: /usr/sbin/postfix ($(/usr/sbin/postconf -d -h mail_version 2>/dev/null))"
    echo "exim:    $EXIM_BIN ($("$EXIM_BIN" -C /dev/null -bV 2>/dev/null | head -n1))"
}

gaps=$(missing)
if [[ -z "$gaps" ]]; then
    report
    exit 0
fi

echo "ensure-mtas: missing:" >&2
sed 's/^/  - /' <<<"$gaps" >&2
may_install "${1:-}"

export DEBIAN_FRONTEND=noninteractive
apt_get update

if [[ ! -x /usr/sbin/postfix ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Only the tests' own instances listen, never the system's Postfix.
    install_without_services postfix
fi

if [[ ! -x "$EXIM_BIN" ]] || ! "$EXIM_BIN" -C /dev/null -bV >/dev/null 2>&1; then
    apt_get install -y --no-install-recommends "${EXIM_LIBS[@]}"
    work=$(mktemp -d)
    chmod 755 "$work"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && apt_get download "${EXIM_DEBS[@]}")
    rm -rf "$EXIM_ROOT"
    mkdir -p "$EXIM_ROOT"
    for deb in "$work"/*.deb; do
        dpkg -x "$deb" "$EXIM_ROOT"
    done
fi

# The user Exim's binary is built to run as (the package's maintainer scripts would create it).
if ! getent passwd Debian-exim >/dev/null; then
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin Debian-exim
fi

gaps=$(missing)
if [[ -n "$gaps" ]]; then
    echo "ensure-mtas: still missing after install:" >&2
    sed 's/^/  - /' <<<"$gaps" >&2
    exit 1
fi
report
