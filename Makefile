# hakeep: the two commands that matter are `make test` and `make lab` (README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
# Ansible tools live in a venv outside the repo (scripts/install-ansible.sh prints its bin).
WITH_ANSIBLE = PATH="$$(scripts/install-ansible.sh):$$PATH"

.PHONY: help deps lint rust-lint ansible-lint shell-lint rust-test molecule molecule-lab test bench lab lab-destroy lab-status

help:
	@echo "make test   install what is missing, lint, run every test tier"
	@echo "make lab    install what is missing, bring the Vagrant lab up (docs/lab.md)"
	@echo "make lab-destroy  remove the lab's VMs and networks"
	@echo "make bench  run the benchmarks, write docs/benchmarks.md"

## Installs what the tests need (idempotent; Debian 12, root).
deps:
	scripts/install-deps.sh

rust-lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

ansible-lint: deps
	$(WITH_ANSIBLE); ansible-lint; yamllint -s .

# Every shell script of the repository (.shellcheckrc: follow sourced files).
SHELL_SCRIPTS = scripts/*.sh scripts/lib/*.sh .ci/run helpers/hakeep/tests/fixtures/*.sh

shell-lint: deps
	shellcheck -x $(SHELL_SCRIPTS)

lint: rust-lint ansible-lint shell-lint

## Tiers 1 and 2: unit, rendering + keepalived -t, the agent and operator commands on
## real keepalived in network namespaces; the D-Bus tests against a real systemd (in a
## throwaway container). The integration tests are one binary (helpers/hakeep/tests/main.rs):
## `cargo test --test integration operator::` runs a module.
rust-test: deps
	$(CARGO) test --locked
	scripts/systemd-tests.sh

## Tier 3: site.yml converges systemd-nspawn containers; idempotence; failover verify.
molecule: deps
	$(WITH_ANSIBLE); molecule test

## Tier 4: site.yml converges the Vagrant lab's VMs (libvirt; TCG without KVM), then
## crash, switchover and split brain under a writing NFS client (docs/lab.md).
molecule-lab: deps
	$(WITH_ANSIBLE); molecule test -s lab

## Every tier in order; the rootfs and the box build in the background meanwhile
## (scripts/test-all.sh).
test: deps
	scripts/test-all.sh

## The Vagrant lab: iscsi, nfs1, nfs2, client (Vagrantfile). Idempotent.
lab: deps
	scripts/lab.sh up >/dev/null
	scripts/lab.sh status || true
	@echo "Failover: scripts/lab.sh crash NODE powers off NODE, the one ACTIVE ON above (or: vagrant ssh NODE -c 'sudo hakeep switchover nfs --to OTHER'); docs/lab.md"

lab-status:
	scripts/lab.sh status

lab-destroy:
	scripts/lab.sh down

## Tier 5: cargo bench --bench config and --bench failover (B1-B5 on the tier-2 lab, a
## plain program on tests/harness; root); writes docs/benchmarks.md and docs/bench/*.csv.
bench: deps
	scripts/bench.sh
