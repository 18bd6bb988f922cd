#!/usr/bin/env bash
# The package test (`make package-test`, after `make package`): installs the .deb into a
# throwaway Debian 12 container booted with systemd (the fast tier's cached image,
# scripts/nspawn-rootfs.sh, under an overlay; no network: --private-network, and every
# command run inside joins the container's namespaces, its network one included), then
# checks what an installed package must give:
#
#   hakeep --version and hakeep version print the package's version; the man page is
#   where man finds it; the bash completion loads (complete -p hakeep); systemctl cat shows
#   the agent unit and keepalived's drop-in; the keepalived_script user exists; neither
#   hakeep unit is enabled or active; a reinstall (the upgrade path of the maintainer
#   scripts) and a purge succeed.
#
# Then lintian on the .deb (no error, no warning: dist/debian/hakeep.lintian-overrides
# holds the overrides, each with its reason), and the .rpm's payload against the .deb's
# (the same file paths and modes, directories aside; the only exception is DEB_ONLY
# below). Every check runs; the exit status is 1 if any failed. The container, its overlay
# and its mounts are removed on every exit, and those of a killed earlier run at the
# start. Root, Debian 12.
#
#   scripts/test-package.sh [DEB RPM]   (default: the ones scripts/build-package.sh made)

# The checks read `TEST && pass ... || fail ...`: pass only logs and returns 0.
# shellcheck disable=SC2015
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=/var/tmp/hakeep-package-test
MACHINE=hakeep-pkgtest
BOOT_TIMEOUT=${HAKEEP_PACKAGE_TEST_BOOT_TIMEOUT:-60}
CMD_TIMEOUT=${HAKEEP_PACKAGE_TEST_CMD_TIMEOUT:-120}
LOCK_TIMEOUT=${HAKEEP_PACKAGE_TEST_LOCK_TIMEOUT:-600}
# In the .deb, not in the .rpm: Debian's own metadata.
DEB_ONLY=(/usr/share/lintian/overrides/hakeep)

log() { printf 'test-package: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
failures=()
pass() { log "ok: $*"; }
fail() { log "FAIL: $*"; failures+=("$*"); }
[ "$(id -u)" -eq 0 ] || die "must run as root"

# --- the packages ----------------------------------------------------------------------------
if [ $# -eq 2 ]; then
  deb=$1 rpm=$2
elif [ $# -eq 0 ]; then
  target=${CARGO_TARGET_DIR:-$REPO/target}
  shopt -s nullglob
  debs=("$target"/debian/hakeep_*.deb)
  rpms=("$target"/generate-rpm/hakeep-*.rpm)
  shopt -u nullglob
  { [ ${#debs[@]} -eq 1 ] && [ ${#rpms[@]} -eq 1 ]; } \
    || die "expected one .deb in $target/debian and one .rpm in $target/generate-rpm (found ${#debs[@]} and ${#rpms[@]}): run scripts/build-package.sh"
  deb=${debs[0]} rpm=${rpms[0]}
else
  die "usage: $0 [DEB RPM]"
fi
[ -f "$deb" ] || die "no such file: $deb"
[ -f "$rpm" ] || die "no such file: $rpm"
for tool in dpkg-deb rpm lintian systemd-nspawn nsenter; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
done
version=$(dpkg-deb -f "$deb" Version)
log "testing $deb (version $version) and $rpm"

# --- the container -----------------------------------------------------------------------------
# shellcheck source=scripts/lib/nspawn-boot.sh
. "$REPO/scripts/lib/nspawn-boot.sh"

# Runs "$@" in the container (all its namespaces, the network one too), with a clean
# environment and a bound.
inside() {
  local p
  p=$(nspawn_pid1) || { echo "test-package: the container is gone" >&2; return 1; }
  timeout "$CMD_TIMEOUT" nsenter -t "$p" -m -u -i -n -p -- \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb \
    DEBIAN_FRONTEND=noninteractive "$@"
}

# One run at a time: a second one waits instead of removing the first one's container.
exec 9>"$BASE.lock"
flock -w "$LOCK_TIMEOUT" 9 || die "another run holds $BASE.lock for more than ${LOCK_TIMEOUT}s"
[ -e "$BASE" ] && { log "removing leftovers of an earlier run"; nspawn_down; }
trap nspawn_down EXIT
trap 'exit 130' INT TERM HUP

rootfs=$("$REPO/scripts/nspawn-rootfs.sh" 3>&- 9>&-)
start=$SECONDS
mkdir -p "$BASE/hakeep-pkg"
cp "$deb" "$BASE/hakeep-pkg/hakeep.deb"
nspawn_boot "$rootfs" "$MACHINE" "$BASE/hakeep-pkg"
log "container up in $((SECONDS - start)) s (systemd $(inside systemctl is-system-running 2>/dev/null || true))"

# --- installed: the checks ---------------------------------------------------------------------
if inside getent passwd keepalived_script >/dev/null 2>&1; then
  log "note: the image already has keepalived_script (the check below proves nothing)"
fi
if inside dpkg -i /mnt/hakeep-pkg/hakeep.deb >"$BASE/dpkg-install.log" 2>&1; then
  pass "dpkg -i (its Depends are in the image; no download)"
else
  cat "$BASE/dpkg-install.log" >&2
  die "dpkg -i failed (log above)"
fi
# shellcheck disable=SC2016 # dpkg-query's format, not a shell expansion
status=$(inside dpkg-query -W -f='${Status}' hakeep 2>/dev/null || true)
[ "$status" = "install ok installed" ] && pass "dpkg: $status" || fail "dpkg status of hakeep: '$status'"

out=$(inside hakeep --version 2>&1 || true)
[[ $out == *"$version"* ]] && pass "hakeep --version: $out" || fail "hakeep --version printed '$out', not $version"
out=$(inside hakeep version 2>&1 || true)
[[ $out == *"$version"* ]] && pass "hakeep version: $out" || fail "hakeep version printed '$out', not $version"

page=/usr/share/man/man1/hakeep.1.gz
# The image has man-db (scripts/nspawn-rootfs.sh), as a Debian server has.
out=$(inside man -w hakeep 2>&1 || true)
[ "$out" = "$page" ] && pass "man -w hakeep: $out" || fail "man -w hakeep printed '$out', not $page"
if command -v man >/dev/null; then
  mkdir -p "$BASE/deb-tree"
  dpkg-deb -x "$deb" "$BASE/deb-tree"
  out=$(man -M "$BASE/deb-tree/usr/share/man" -w hakeep 2>&1 || true)
  [ "$out" = "$BASE/deb-tree$page" ] && pass "host man-db finds the page in the package's MANPATH" \
    || fail "man -M <package>/usr/share/man -w hakeep printed '$out'"
  for f in "$BASE"/deb-tree/usr/share/man/man1/*.1.gz; do
    warnings=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null || true)
    [ -z "$warnings" ] || fail "man --warnings $(basename "$f"): $warnings"
  done
fi

out=$(inside bash -c 'source /usr/share/bash-completion/completions/hakeep && complete -p hakeep' 2>&1 || true)
[[ $out == "complete "*" hakeep" ]] && pass "bash completion: $out" || fail "bash completion: '$out'"
for f in /usr/share/zsh/vendor-completions/_hakeep /usr/share/fish/vendor_completions.d/hakeep.fish; do
  inside test -s "$f" && pass "$f" || fail "$f is missing or empty"
done

out=$(inside systemctl cat hakeep-agent.service 2>&1 || true)
# Debian 12's systemd looks in /lib/systemd/system first (the same directory, merged /usr).
if grep -Eq '^# (/usr)?/lib/systemd/system/hakeep-agent.service$' <<<"$out" \
  && grep -q '^ExecStart=/usr/bin/hakeep agent' <<<"$out"; then
  pass "systemctl cat hakeep-agent.service (ExecStart=/usr/bin/hakeep agent ...)"
else
  fail "systemctl cat hakeep-agent.service: $(head -n 3 <<<"$out")"
fi
out=$(inside systemctl cat hakeep-shutdown.service 2>&1 || true)
grep -q '^ExecStop=/usr/bin/hakeep release --all' <<<"$out" \
  && pass "systemctl cat hakeep-shutdown.service" || fail "systemctl cat hakeep-shutdown.service: $out"
out=$(inside systemctl cat keepalived.service 2>&1 || true)
grep -Eq '^# (/usr)?/lib/systemd/system/keepalived.service.d/hakeep.conf$' <<<"$out" \
  && pass "keepalived.service has the hakeep drop-in" || fail "systemctl cat keepalived.service shows no hakeep drop-in"

# The alert programs, installed as the agent trusts them: root's, not writable by others.
for f in /usr/lib/hakeep/alerts/webhook /usr/lib/hakeep/alerts/email; do
  out=$(inside stat -c '%U %a' "$f" 2>&1 || true)
  [ "$out" = "root 755" ] && pass "$f ($out)" || fail "$f: '$out', not root 755"
done
out=$(inside env -i /usr/lib/hakeep/alerts/webhook 2>&1 || true)
[[ $out == *usage:* ]] && pass "webhook without its URL says how to use it" \
  || fail "webhook without arguments: '$out'"

out=$(inside getent passwd keepalived_script 2>&1 || true)
[[ $out == keepalived_script:*:/usr/sbin/nologin ]] && pass "getent passwd: $out" \
  || fail "keepalived_script: '$out'"

check_not_running() {
  local unit enabled active
  for unit in hakeep-agent.service hakeep-shutdown.service; do
    enabled=$(inside systemctl is-enabled "$unit" 2>&1 || true)
    active=$(inside systemctl is-active "$unit" 2>&1 || true)
    if [ "$enabled" = disabled ] && [ "$active" = inactive ]; then
      pass "$unit $1: $enabled, $active"
    else
      fail "$unit $1: is-enabled '$enabled', is-active '$active' (want disabled, inactive)"
    fi
  done
}
check_not_running "after install"

# The upgrade path of the maintainer scripts ($2 set: try-restart, a no-op when stopped).
if inside dpkg -i /mnt/hakeep-pkg/hakeep.deb >"$BASE/dpkg-reinstall.log" 2>&1; then
  pass "dpkg -i again (upgrade path)"
else
  fail "dpkg -i again: $(tail -n 5 "$BASE/dpkg-reinstall.log")"
fi
check_not_running "after the reinstall"

if inside dpkg --purge hakeep >"$BASE/dpkg-purge.log" 2>&1 && ! inside test -e /usr/bin/hakeep \
  && ! inside test -e /usr/lib/systemd/system/hakeep-agent.service; then
  pass "dpkg --purge removes the binary and the units"
else
  fail "dpkg --purge: $(tail -n 5 "$BASE/dpkg-purge.log")"
fi

# --- lintian -------------------------------------------------------------------------------------
# --fail-on error,warning: a warning fails too, unless overridden (with its reason) in the
# package. Info tags are shown, they do not fail. The overrides are shown by a second run:
# with --show-overrides lintian 2.116 fails on an overridden error.
if lintian --fail-on error,warning --display-info "$deb" >"$BASE/lintian.log" 2>&1; then
  pass "lintian: no error, no warning"
else
  fail "lintian (below)"
fi
lintian --show-overrides "$deb" 2>/dev/null | grep '^O: ' >>"$BASE/lintian.log" || true
grep -v '^running with root privileges' "$BASE/lintian.log" | sed 's/^/  lintian: /' >&2 || true

# --- the payloads ------------------------------------------------------------------------------
# "MODE PATH" of every non-directory entry, sorted; the .deb's without the leading ".".
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { p = $6; sub(/^\./, "", p); print $1, p }' \
  | LC_ALL=C sort >"$BASE/deb.files"
# rpm -qlp lists directories too; FILEMODES tells them apart.
rpm -qp --nosignature --nodigest --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" 2>/dev/null \
  | awk '$1 !~ /^d/' | LC_ALL=C sort >"$BASE/rpm.files"
rpm -qlp --nosignature --nodigest "$rpm" 2>/dev/null | LC_ALL=C sort >"$BASE/rpm.list"
[ -s "$BASE/rpm.list" ] || fail "rpm -qlp $rpm lists nothing"
cp "$BASE/deb.files" "$BASE/deb.compared"
for f in "${DEB_ONLY[@]}"; do
  if grep -q " $f\$" "$BASE/deb.files"; then
    grep -v " $f\$" "$BASE/deb.compared" >"$BASE/deb.tmp" || true
    mv "$BASE/deb.tmp" "$BASE/deb.compared"
  else
    fail "DEB_ONLY lists $f, which the .deb does not have"
  fi
done
if diff -u --label deb --label rpm "$BASE/deb.compared" "$BASE/rpm.files" >"$BASE/payload.diff"; then
  pass "the .rpm and the .deb carry the same $(wc -l <"$BASE/rpm.files") files with the same modes (.deb only: ${DEB_ONLY[*]})"
else
  fail "the .rpm's payload differs from the .deb's (- only in the .deb, + only in the .rpm):"
  sed 's/^/  /' "$BASE/payload.diff" >&2
fi

log "done in $((SECONDS - start)) s"
if [ ${#failures[@]} -gt 0 ]; then
  log "${#failures[@]} check(s) failed:"
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
log "all checks passed"
