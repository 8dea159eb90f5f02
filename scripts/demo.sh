#!/usr/bin/env bash
# `make demo`: runs the demo driver (tests/e2e, bin secretbridge-demo) with the
# controller and provider binaries of the workspace's target directory, all
# built by `cargo test --workspace --no-run` (which `make setup` and `make
# demo` run first), so nothing is compiled twice.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
TARGET_DIR="$("$CARGO" metadata --format-version 1 --no-deps --locked | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET_DIR/debug"
for binary in secretbridge-demo secretbridge-controller terraform-provider-secretbridge; do
    if [ ! -x "$BIN/$binary" ]; then
        printf 'demo: %s is missing; run `make setup` first (it builds the workspace; the demo driver is package secretbridge-e2e in tests/e2e, which must be a workspace member)\n' "$BIN/$binary" >&2
        exit 1
    fi
done
exec "$BIN/secretbridge-demo" \
    --controller "$BIN/secretbridge-controller" \
    --provider "$BIN/terraform-provider-secretbridge" \
    "$@"
