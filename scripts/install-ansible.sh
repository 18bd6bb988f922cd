#!/usr/bin/env bash
# Installs the Ansible tier's Python tools (requirements.txt: ansible, molecule, ansible-lint,
# yamllint) into a venv outside the repo and prints the venv's bin directory on stdout:
#
#   PATH="$(scripts/install-ansible.sh):$PATH" molecule test
#
# molecule runs `ansible-config` and friends by name, so that bin directory must be on PATH.
# Idempotent: a venv built from the same requirements.txt with the same Python is reused;
# a changed requirements.txt rebuilds it. A killed install is redone (the completion stamp
# is written last). Debian 12's /usr/bin/python3, root (python3-venv comes from apt).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${HAKEEP_VENV:-${HAKEEP_CACHE:-/var/cache/hakeep}/venv}
PYTHON=${HAKEEP_PYTHON:-/usr/bin/python3}
REQS=$REPO/requirements.txt
STAMP=$VENV/.hakeep-requirements

# Stdout carries only the venv's bin directory (fd 3); everything else goes to stderr.
exec 3>&1 1>&2
log() { printf 'install-ansible: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$REQS" ] || die "$REQS is missing"
[ -x "$PYTHON" ] || die "$PYTHON is missing (apt-get install python3)"

# ssh is how Ansible reaches the nodes; venv+ensurepip are split out of Debian's python3.
apt_missing=()
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_missing+=(python3-venv)
command -v ssh >/dev/null || apt_missing+=(openssh-client)
if [ ${#apt_missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "need root to install: ${apt_missing[*]}"
  log "installing ${apt_missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

# molecule finds ansible-config through PATH; run the checks away from the repo.
runs() { (cd "$VENV" && PATH="$VENV/bin:$PATH" "$VENV/bin/$1" --version >/dev/null 2>&1); }

want=$( { "$PYTHON" -c 'import sys; print(sys.version)'; cat "$REQS"; } | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
  && runs ansible-playbook && runs molecule; then
  log "up to date: $VENV"
  echo "$VENV/bin" >&3
  exit 0
fi

start=$SECONDS
log "creating $VENV from $REQS"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$REQS" >&2
runs ansible-playbook || die "ansible-playbook does not run from $VENV"
runs molecule || die "molecule does not run from $VENV"
echo "$want" >"$STAMP"
# Whole outputs, first lines kept here: `| head -n1` closed the pipe on a still-writing
# ansible, which then printed a Broken pipe traceback.
ansible_version=$("$VENV/bin/ansible" --version)
molecule_version=$(cd "$VENV" && PATH="$VENV/bin:$PATH" molecule --version 2>/dev/null)
log "installed in $((SECONDS - start)) s: ${ansible_version%%$'\n'*}, ${molecule_version%%$'\n'*}"
echo "$VENV/bin" >&3
