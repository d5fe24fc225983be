# Sourced by the scripts/ensure-*.sh installers: what they share about installing Debian
# packages for the tests. Each caller sets SELF (its name in messages) and INSTALL_LINE (what
# a person would run instead) before calling these.

# Returns when this run may install: not with --check (the caller's first argument), and only
# as root with apt-get; otherwise says why, with the install line, and exits non-zero.
may_install() {
    if [[ "${1:-}" == "--check" ]]; then
        echo "$SELF: install with: $INSTALL_LINE" >&2
        exit 1
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "$SELF: not root, cannot install; run as root: $INSTALL_LINE" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$SELF: no apt-get on this machine; install by hand: $INSTALL_LINE" >&2
        exit 1
    fi
}

# apt-get with a wait for the package lock (another install may be running).
apt_get() {
    apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# Installs the packages without recommends and without starting any system service they
# bring (policy-rc.d answers "not now" while they install): the tests run their own
# instances, and nothing should listen behind their back. Exits non-zero on failure.
install_without_services() {
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d created=0 status=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created=1
    fi
    { apt_get update && apt_get install -y --no-install-recommends "$@"; } || status=$?
    if ((created)); then rm -f "$policy"; fi
    if ((status != 0)); then
        echo "$SELF: installing $* failed (exit $status): $INSTALL_LINE" >&2
        exit 1
    fi
}
