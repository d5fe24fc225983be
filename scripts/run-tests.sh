#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, the whole test suite (with the real
# nginx and HAProxy the deployment tests drive, installed when missing) and the OpenShift
# manifest validation. Needs only the Rust toolchain and python3; installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/ensure-proxies.sh ]; then
  scripts/ensure-proxies.sh
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets

if [ -x scripts/validate-manifests.sh ]; then
  scripts/validate-manifests.sh
fi
echo "all checks passed"
