# hakeep: the two commands that matter are `make test` and `make lab` (README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: test deps lint rust-test bench help

help:
	@echo "make test   install what is missing, lint, run every test tier"
	@echo "make bench  run the benchmarks, write docs/benchmarks.md"

## Installs what the tests need (idempotent; Debian 12, root).
deps:
	scripts/install-deps.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

rust-test: deps
	$(CARGO) test --locked

test: lint rust-test

bench: deps
	scripts/bench.sh
