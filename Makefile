# secretbridge entry points. `make setup` installs every tool the tests use into
# .tools/ (git-ignored); `make test` builds once and runs every test area.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: setup test gen bench lint demo fuzz

# Setup ends by building everything `make test` and `make demo` run, once.
setup:
	bash scripts/setup.sh
	$(CARGO) test --workspace --locked --no-run

# Applies examples-terraform/local to the loopback stand-ins and prints the
# synced Secrets. The binaries come from the same build as `make test` (a
# no-op after `make setup`).
demo:
	$(CARGO) test --workspace --locked --no-run -q
	bash scripts/demo.sh

# Build once with the workspace's feature set, then let tests take the binaries
# from that build (SECRETBRIDGE_PREBUILT_BIN_DIR) instead of `cargo build -p`.
test:
	$(CARGO) test --workspace --locked --no-run -q
	SECRETBRIDGE_PREBUILT_BIN_DIR="$$($(CARGO) metadata --format-version 1 --no-deps --locked | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug" \
		$(CARGO) test --workspace --locked --no-fail-fast
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Regenerate every committed artefact (CRDs, Terraform schema goldens, docs).
# The drift tests compare the tree against the same generators.
gen:
	SECRETBRIDGE_GEN=1 $(CARGO) test --workspace --locked -- generated_

# Measurements, never assertions; not part of `make test`. Our crates are
# built as in `release`, on top of the dependencies `make setup` compiled:
# bench/cargo-config.toml overrides only the workspace members of the `dev`
# profile, and `--examples` (there are none) makes cargo resolve
# the same features as `make setup`'s test build, so no dependency is
# rebuilt. The three binaries are copied out of target/debug, which the next
# `make test` relinks to its debug builds, and the driver runs from there.
# It runs the provider's benchmarks as `cargo test` in the `make test` build
# (bench/src/provider.rs). Prints one table and appends it to
# bench/results.md (see bench/README.md). Options go through BENCH_ARGS,
# e.g. `make bench BENCH_ARGS="--sizes 100,1000"`.
BENCH_ARGS ?=
BENCH_BINS := secretbridge-controller terraform-provider-secretbridge secretbridge-bench
bench:
	$(CARGO) build --workspace --locked --examples --config bench/cargo-config.toml $(addprefix --bin ,$(BENCH_BINS))
	target="$$($(CARGO) metadata --format-version 1 --no-deps --locked | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')" && \
		mkdir -p "$$target/bench-bin" && \
		for bin in $(BENCH_BINS); do cp "$$target/debug/$$bin" "$$target/bench-bin/$$bin.new" && mv "$$target/bench-bin/$$bin.new" "$$target/bench-bin/$$bin"; done && \
		SECRETBRIDGE_PREBUILT_BIN_DIR="$$target/bench-bin" "$$target/bench-bin/secretbridge-bench" $(BENCH_ARGS)

# Fuzzes what a tenant controls (template text, durations, the spec to
# desired Secret path) for FUZZ_SECONDS per target, under a 1 GiB address
# space limit so a memory blow-up fails instead of swapping. Not part of
# `make test`, which runs the same properties for a few hundred cases.
FUZZ_SECONDS ?= 30
fuzz:
	$(CARGO) test -p secretbridge-controller --lib --locked --no-run -q
	SECRETBRIDGE_FUZZ_SECONDS=$(FUZZ_SECONDS) prlimit --as=1073741824 -- $(CARGO) test -p secretbridge-controller --lib --locked -q -- fuzz_ --test-threads=1

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
