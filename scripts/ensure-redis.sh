#!/usr/bin/env bash
# Makes sure redis-server is installed for the replica tests (tests/replicas.rs), which start
# their own redis-server on a free loopback port. Installs Debian's package when it is
# missing (CI runs as root) without starting the system service; fails loudly, with the
# install line, when it cannot.
#
# Usage: scripts/ensure-redis.sh [--check]
#   --check  only check; exit non-zero with the install line if it is missing.
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
SELF=ensure-redis

INSTALL_LINE="apt-get update && apt-get install -y redis-server"

found() {
    command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]
}

if found; then
    echo "redis:   $(command -v redis-server || echo /usr/bin/redis-server) ($(redis-server --version 2>&1 | head -n1))"
    exit 0
fi

echo "ensure-redis: redis-server is missing" >&2
may_install "${1:-}"
echo "$SELF: running: $INSTALL_LINE" >&2
install_without_services redis-server
if ! found; then
    echo "ensure-redis: redis-server still missing after install" >&2
    exit 1
fi
echo "redis:   $(command -v redis-server || echo /usr/bin/redis-server) ($(redis-server --version 2>&1 | head -n1))"
