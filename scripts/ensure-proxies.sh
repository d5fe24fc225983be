#!/usr/bin/env bash
# Makes sure the real proxies the end-to-end tests put in front of notify-inbound are installed:
# nginx with its stream and mail modules, and HAProxy. Installs them from Debian's packages when
# they are missing (CI runs as root); fails loudly, with the install line, when it cannot.
#
# Usage: scripts/ensure-proxies.sh [--check]
#   --check  only check; exit non-zero with the install line if anything is missing.
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
SELF=ensure-proxies

PACKAGES=(nginx libnginx-mod-stream libnginx-mod-mail haproxy)
INSTALL_LINE="apt-get update && apt-get install -y ${PACKAGES[*]}"

# Debian's dynamic module files, loaded by the test configurations with load_module.
NGINX_MODULE_DIR=${NGINX_MODULE_DIR:-/usr/lib/nginx/modules}
STREAM_MODULE="$NGINX_MODULE_DIR/ngx_stream_module.so"
MAIL_MODULE="$NGINX_MODULE_DIR/ngx_mail_module.so"

missing() {
    local what=()
    command -v nginx >/dev/null 2>&1 || what+=("nginx")
    command -v haproxy >/dev/null 2>&1 || what+=("haproxy")
    # The modules may be built in (nginx -V lists --with-stream / --with-mail without "=dynamic")
    # or shipped as Debian's dynamic modules.
    if command -v nginx >/dev/null 2>&1; then
        local v
        v=$(nginx -V 2>&1 || true)
        if [[ ! -f "$STREAM_MODULE" ]] && ! grep -Eq -- '--with-stream( |$)' <<<"$v"; then
            what+=("nginx stream module ($STREAM_MODULE)")
        fi
        if [[ ! -f "$MAIL_MODULE" ]] && ! grep -Eq -- '--with-mail( |$)' <<<"$v"; then
            what+=("nginx mail module ($MAIL_MODULE)")
        fi
    fi
    if ((${#what[@]})); then
        printf '%s\n' "${what[@]}"
    fi
}

report() {
    echo "nginx:   $(command -v nginx) ($(nginx -v 2>&1))"
    echo "haproxy: $(command -v haproxy) ($(haproxy -v 2>&1 | head -n1))"
    for m in "$STREAM_MODULE" "$MAIL_MODULE"; do
        if [[ -f "$m" ]]; then echo "module:  $m"; fi
    done
}

gaps=$(missing)
if [[ -z "$gaps" ]]; then
    report
    exit 0
fi

echo "ensure-proxies: missing:" >&2
sed 's/^/  - /' <<<"$gaps" >&2

may_install "${1:-}"
echo "$SELF: running: $INSTALL_LINE" >&2
# Debian's nginx package would start a system service on install (port 80).
install_without_services "${PACKAGES[@]}"

gaps=$(missing)
if [[ -n "$gaps" ]]; then
    echo "ensure-proxies: still missing after install:" >&2
    sed 's/^/  - /' <<<"$gaps" >&2
    exit 1
fi
report
