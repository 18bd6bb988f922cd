# hakeep: the two commands that matter are `make test` and `make lab` (README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
# Ansible tools live in a venv outside the repo (scripts/install-ansible.sh prints its bin).
WITH_ANSIBLE = PATH="$$(scripts/install-ansible.sh):$$PATH"

.PHONY: help deps lint rust-lint ansible-lint ansible-unit shell-lint collection rust-test molecule molecule-lab test bench lab lab-destroy lab-status package package-test

help:
	@echo "make test   install what is missing, lint, run every test tier"
	@echo "make lab    install what is missing, bring the Vagrant lab up (docs/lab.md)"
	@echo "make lab-destroy  remove the lab's VMs and networks"
	@echo "make bench  run the benchmarks, write docs/benchmarks.md"
	@echo "make package  build the .deb and .rpm: target/debian/*.deb, target/generate-rpm/*.rpm"
	@echo "make package-test  install the .deb in a throwaway container, lintian, compare with the .rpm"
	@echo "make collection  build the Ansible collection hakeep.ha: target/collection/hakeep-ha-VERSION.tar.gz"

## Installs what the tests need (idempotent; Debian 12, root).
deps:
	scripts/install-deps.sh

rust-lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

ansible-lint: deps
	$(WITH_ANSIBLE); ansible-lint; yamllint -s .

# Every shell script of the repository (.shellcheckrc: follow sourced files).
SHELL_SCRIPTS = scripts/*.sh scripts/lib/*.sh .ci/run helpers/hakeep/tests/fixtures/*.sh dist/alerts/* \
  molecule/lab/files/*.sh

shell-lint: deps
	shellcheck -x $(SHELL_SCRIPTS)

## The collection module's unit tests (tests/unit, pytest; no LIO needed).
ansible-unit: deps
	$(WITH_ANSIBLE); PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -p no:cacheprovider -q tests/unit

lint: rust-lint ansible-lint ansible-unit shell-lint

## The Ansible collection hakeep.ha (galaxy.yml) as a tarball under target/collection/;
## needs only the Ansible venv (scripts/install-ansible.sh installs it when missing).
collection:
	$(WITH_ANSIBLE); scripts/build-collection.sh

## Tiers 1 and 2: unit, rendering + keepalived -t, the agent and operator commands on
## real keepalived in network namespaces; the D-Bus tests against a real systemd (in a
## throwaway container). The integration tests are one binary (helpers/hakeep/tests/main.rs):
## `cargo test --test integration operator::` runs a module.
rust-test: deps
	$(CARGO) test --locked
	scripts/systemd-tests.sh

## Tier 3: the collection hakeep.ha (installed from its tarball) converges systemd-nspawn
## containers with the package of a previous version; idempotence; failover verify, then
## a rolling upgrade to the current package (molecule/default/verify.yml).
molecule: deps
	scripts/build-package.sh --previous >/dev/null
	$(WITH_ANSIBLE); molecule test

## Tier 4: site.yml converges the Vagrant lab's VMs (libvirt; TCG without KVM), then
## crash, switchover and split brain under a writing NFS client (docs/lab.md).
molecule-lab: deps
	scripts/build-package.sh >/dev/null
	$(WITH_ANSIBLE); molecule test -s lab

## Every tier in order; the rootfs and the box build in the background meanwhile
## (scripts/test-all.sh).
test: deps
	scripts/test-all.sh

## The Vagrant lab: iscsi, nfs1, nfs2, client (Vagrantfile). Idempotent.
lab: deps
	scripts/build-package.sh >/dev/null
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

## The packages: target/debian/hakeep_VERSION_amd64.deb (cargo-deb) and
## target/generate-rpm/hakeep-VERSION-1.x86_64.rpm (cargo-generate-rpm); the first run
## installs both tools (cargo install, minutes). scripts/build-package.sh prints the paths.
package: deps
	scripts/build-package.sh

## The .deb installed into a throwaway systemd container of the cached Debian 12 image,
## lintian, the .rpm's payload against the .deb's (scripts/test-package.sh).
package-test: package
	scripts/test-package.sh
