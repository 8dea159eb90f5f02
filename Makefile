# secretbridge entry points. `make setup` installs every tool the tests use into
# .tools/ (git-ignored); `make test` builds once and runs every test area.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: setup test gen bench lint demo

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

# Measurements, never assertions; not part of `make test`. Built with the
# `bench-release` profile (Cargo.toml: our crates as in release, dependencies
# at opt-level 1, to make the cold build cheaper; see bench/README.md for its
# measured time, which is still over the 15-minute budget on 2 cores).
# Prints one table and appends it to bench/results.md (see bench/README.md).
# Options go through BENCH_ARGS, e.g. `make bench BENCH_ARGS="--sizes 100,1000"`.
#
# One build of the controller, the provider (binary and `it` tests) and the
# driver, so the crates they share are compiled once, with one feature set.
# The driver reruns exactly this package set as `cargo test ... --test it` for
# the provider's benchmarks (bench/src/provider.rs), which finds it fresh.
# The controller installs its TLS crypto provider explicitly, so the unified
# rustls features do not change what it runs.
# The driver is then run as a file, not with `cargo run -p`, which would
# resolve a narrower feature set and recompile; SECRETBRIDGE_PREBUILT_BIN_DIR
# hands it (and the provider tests) the binaries built here.
BENCH_ARGS ?=
BENCH_PROFILE := bench-release
bench:
	$(CARGO) build --profile $(BENCH_PROFILE) --locked -p secretbridge-controller -p terraform-provider-secretbridge -p secretbridge-bench --bins --test it
	bin_dir="$$($(CARGO) metadata --format-version 1 --no-deps --locked | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/$(BENCH_PROFILE)" && \
		SECRETBRIDGE_PREBUILT_BIN_DIR="$$bin_dir" "$$bin_dir/secretbridge-bench" $(BENCH_ARGS)

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
