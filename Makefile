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

# Measurements, never assertions; release builds; not part of `make test`.
# Prints one table and appends it to bench/results.md (see bench/README.md).
# Options go through BENCH_ARGS, e.g. `make bench BENCH_ARGS="--sizes 100,1000"`.
BENCH_ARGS ?=
bench:
	# One package per command, as the driver builds them: building them
	# together would unify features and compile shared crates twice.
	$(CARGO) build --release --locked -p secretbridge-controller --bin secretbridge-controller
	$(CARGO) test --release --locked -p terraform-provider-secretbridge --test it --no-run
	$(CARGO) run --release --locked -p secretbridge-bench -- $(BENCH_ARGS)

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
