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

test:
	$(CARGO) test --workspace --locked --no-fail-fast
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Regenerate every committed artefact (CRDs, Terraform schema goldens, docs).
# The drift tests compare the tree against the same generators.
gen:
	SECRETBRIDGE_GEN=1 $(CARGO) test --workspace --locked -- generated_

# Measurements, never assertions; release builds; not part of `make test`.
bench:
	$(CARGO) test --release --locked -p terraform-provider-secretbridge --test it -- --ignored --nocapture bench_

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
