#!/usr/bin/env bash
# Makes sure redis-server is installed for the replica tests (tests/replicas.rs), which start
# their own redis-server on a free loopback port. Installs Debian's package when it is
# missing (CI runs as root) without starting the system service; fails loudly, with the
# install line, when it cannot.
#
# Usage: scripts/ensure-redis.sh [--check]
#   --check  only check; exit non-zero with the install line if it is missing.
set -euo pipefail

INSTALL_LINE="apt-get update && apt-get install -y redis-server"

found() {
    command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]
}

if found; then
    echo "redis:   $(command -v redis-server || echo /usr/bin/redis-server) ($(redis-server --version 2>&1 | head -n1))"
    exit 0
fi

echo "ensure-redis: redis-server is missing" >&2
if [[ "${1:-}" == "--check" ]]; then
    echo "ensure-redis: install it with: $INSTALL_LINE" >&2
    exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "ensure-redis: not root, cannot install; run as root: $INSTALL_LINE" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-redis: no apt-get on this machine; install redis-server by hand" >&2
    exit 1
fi

echo "ensure-redis: running: $INSTALL_LINE" >&2
export DEBIAN_FRONTEND=noninteractive
# The package starts a system service on install; policy-rc.d keeps it from starting, so
# nothing listens on 6379 behind the tests' back (the tests run their own server).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
fi
status=0
{
    apt-get -o DPkg::Lock::Timeout=600 update &&
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends redis-server
} || status=$?
if ((created_policy)); then rm -f "$policy"; fi
if ((status != 0)); then
    echo "ensure-redis: install failed (exit $status): $INSTALL_LINE" >&2
    exit 1
fi
if ! found; then
    echo "ensure-redis: redis-server still missing after install" >&2
    exit 1
fi
echo "redis:   $(command -v redis-server || echo /usr/bin/redis-server) ($(redis-server --version 2>&1 | head -n1))"
