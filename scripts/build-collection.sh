#!/usr/bin/env bash
# Builds the Ansible collection hakeep.ha from the repository's root (galaxy.yml; its
# build_ignore keeps the Rust sources, build output, tests and labs out) and prints the
# tarball's path on stdout:
#
#   scripts/build-collection.sh [OUTPUT-DIR]      (default: target/collection)
#   ansible-galaxy collection install "$(scripts/build-collection.sh)" [-p DIR]
#
# `make collection` runs it with the Ansible venv (scripts/install-ansible.sh) on PATH.
# The collection's version is the Cargo workspace's: the build fails when galaxy.yml and
# Cargo.toml disagree. An earlier tarball of the same version is replaced.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/target/collection}

log() { printf 'build-collection: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v ansible-galaxy >/dev/null \
  || die "ansible-galaxy not found: run with PATH=\"\$(scripts/install-ansible.sh):\$PATH\" (or: make collection)"

# The first `version = "..."` of Cargo.toml is [workspace.package]'s.
cargo_version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$REPO/Cargo.toml" | head -n1)
galaxy_version=$(sed -n 's/^version:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$REPO/galaxy.yml" | head -n1)
[ -n "$cargo_version" ] || die "no version in $REPO/Cargo.toml"
[ "$galaxy_version" = "$cargo_version" ] \
  || die "galaxy.yml has version '$galaxy_version', Cargo.toml $cargo_version: make them agree"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
(cd "$REPO" && ansible-galaxy collection build --force --output-path "$OUT" . >&2)
tarball=$OUT/hakeep-ha-$galaxy_version.tar.gz
[ -f "$tarball" ] || die "ansible-galaxy did not write $tarball"
log "built $tarball ($(tar -tzf "$tarball" | wc -l) entries)"
echo "$tarball"
