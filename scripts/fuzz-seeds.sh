#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ on the stable toolchain, as plain libFuzzer binaries
# (without the coverage and AddressSanitizer instrumentation cargo-fuzz adds), and runs each
# target once over its seed corpus: a target that no longer compiles, or a seed that now
# panics or fails one of the target's checks, fails the run. libFuzzer is C++, so this needs
# a C++ compiler (installed when missing). Fuzzing itself is in docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v c++ >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y g++
fi
# The main target directory: what the fuzz crate shares with the main crate is built once.
cargo build --locked --manifest-path fuzz/Cargo.toml --target-dir target --bins
for seeds in fuzz/seeds/*/; do
  name=$(basename "$seeds")
  # Given files rather than a directory, libFuzzer runs each input once and stops; a
  # panicking input aborts with a non-zero status.
  mapfile -t inputs < <(find "$seeds" -type f | sort)
  if [ "${#inputs[@]}" -eq 0 ]; then
    echo "fuzz-seeds: no seeds in $seeds" >&2
    exit 1
  fi
  echo "fuzz-seeds: $name over ${#inputs[@]} seeds"
  "target/debug/$name" "${inputs[@]}" 2>"target/fuzz-seeds-$name.log" || {
    cat "target/fuzz-seeds-$name.log" >&2
    echo "fuzz-seeds: $name failed on its seeds" >&2
    exit 1
  }
  ran=$(grep -c '^Running: ' "target/fuzz-seeds-$name.log" || true)
  if [ "$ran" -ne "${#inputs[@]}" ]; then
    cat "target/fuzz-seeds-$name.log" >&2
    echo "fuzz-seeds: $name ran $ran of ${#inputs[@]} seeds" >&2
    exit 1
  fi
done
echo "fuzz-seeds: every target built and passed its seeds"
