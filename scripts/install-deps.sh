#!/usr/bin/env bash
# Installs what the test tiers need on Debian 12, only what is missing. Idempotent.
set -euo pipefail

# openssh-server/-client: the operator tests run a real sshd in each test node (its own
# network namespace, the node's address) and make keys with ssh-keygen; a host sshd does
# not get in their way. python3-jsonschema: the schema tests (tier 1 `schemas`, tier 2
# `operator`) validate `status --json` and `check --json` against docs/status.schema.json
# and docs/check.schema.json (JSON Schema 2020-12).
# busybox: `make bench` runs 64 light services (busybox httpd) per node.
# The shellcheck package: `make lint` checks every shell script.
# lintian, rpm: `make package-test` lints the .deb and lists the .rpm (rpm -qlp).
# lib{quorum,votequorum,cmap,cpg,cfg}-dev: the agent follows quorum through corosync's
# client libraries (the rust-corosync crate links them).
packages=(keepalived iproute2 util-linux e2fsprogs psmisc procps iputils-ping python3 curl debootstrap systemd-container python3-venv pkg-config libssl-dev
  openssh-server openssh-client python3-jsonschema busybox shellcheck lintian rpm
  libquorum-dev libvotequorum-dev libcmap-dev libcpg-dev libcfg-dev libcorosync-common-dev)
. "$(dirname "$0")/lib/apt.sh"
mapfile -t missing < <(missing_packages "${packages[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt_install "${missing[@]}"
fi

# keepalived's script security needs this user; the keepalived role creates it on nodes too.
if ! getent passwd keepalived_script >/dev/null; then
  useradd --system --no-create-home --shell /usr/sbin/nologin keepalived_script
fi

# Debian's keepalived package starts a daemon on install where systemd runs; the tests
# start their own, so a stray host daemon would only confuse them.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now keepalived.service >/dev/null 2>&1 || true
fi

command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup)" >&2; exit 1; }
