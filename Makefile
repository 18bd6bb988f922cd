# hakeep: the two commands that matter are `make test` and `make lab` (README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
# Ansible tools live in a venv outside the repo (scripts/install-ansible.sh prints its bin).
WITH_ANSIBLE = PATH="$$(scripts/install-ansible.sh):$$PATH"

.PHONY: help deps lint rust-lint ansible-lint rust-test molecule test bench

help:
	@echo "make test   install what is missing, lint, run every test tier"
	@echo "make bench  run the benchmarks, write docs/benchmarks.md"

## Installs what the tests need (idempotent; Debian 12, root).
deps:
	scripts/install-deps.sh

rust-lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

ansible-lint: deps
	$(WITH_ANSIBLE); ansible-lint; yamllint -s .

lint: rust-lint ansible-lint

## Tiers 1 and 2: unit, rendering + keepalived -t, the agent and operator commands on
## real keepalived in network namespaces.
rust-test: deps
	$(CARGO) test --locked

## Tier 3: site.yml converges systemd-nspawn containers; idempotence; failover verify.
molecule: deps
	$(WITH_ANSIBLE); molecule test

test: lint rust-test molecule

bench: deps
	scripts/bench.sh
