#!/usr/bin/env bash
# Runs the D-Bus tests that need a real systemd (observe::systemd's `real_*` tests, which
# are #[ignore]d in a plain `cargo test`): boots the fast tier's Debian 12 image
# (scripts/nspawn-rootfs.sh) as a throwaway container with systemd as PID 1, runs the
# test binary inside it, and always removes the container, its overlay and its files,
# also those of a killed earlier run. Root, Debian 12.
#
#   scripts/systemd-tests.sh [TEST-FILTER]     (default: real_)
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

REPO=$(cd "$(dirname "$0")/.." && pwd)
FILTER=${1:-real_}
BASE=/var/tmp/hakeep-systemd-tests
BOOT_TIMEOUT=${HAKEEP_SYSTEMD_TESTS_BOOT_TIMEOUT:-60}
TEST_TIMEOUT=${HAKEEP_SYSTEMD_TESTS_TIMEOUT:-300}

log() { printf 'systemd-tests: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

# The container's PID 1: the child of the systemd-nspawn process whose comm is systemd.
pid1() {
  local np c
  np=$(cat "$BASE/nspawn.pid" 2>/dev/null) || return 1
  for c in $(pgrep -P "$np" 2>/dev/null); do
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && { echo "$c"; return 0; }
  done
  return 1
}

inside() { nsenter -t "$(pid1)" -m -u -i -p -- "$@"; }

down() {
  local np p
  np=$(cat "$BASE/nspawn.pid" 2>/dev/null || true)
  if p=$(pid1); then nsenter -t "$p" -m -u -i -p -- systemctl poweroff >/dev/null 2>&1 || true; fi
  for _ in $(seq 1 50); do
    { [ -n "$np" ] && kill -0 "$np" 2>/dev/null; } || break
    sleep 0.2
  done
  if [ -n "$np" ] && kill -0 "$np" 2>/dev/null; then kill -KILL "$np" 2>/dev/null || true; fi
  awk -v b="$BASE" 'index($5, b) == 1 { print $5 }' /proc/self/mountinfo | sort -r \
    | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$BASE"
}

[ -e "$BASE" ] && { log "removing leftovers of an earlier run"; down; }
trap down EXIT

rootfs=$("$REPO/scripts/nspawn-rootfs.sh" 3>&-)
log "building the library's test binary"
bin=$(cd "$REPO" && cargo test --locked --lib --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
[ -x "$bin" ] || die "no test binary found"

mkdir -p "$BASE"/{upper,work,root,bin}
cp "$bin" "$BASE/bin/hakeep-lib-tests"
mount -t overlay -o "lowerdir=$rootfs,upperdir=$BASE/upper,workdir=$BASE/work" hakeep-systemd-tests "$BASE/root"
setsid systemd-nspawn -q -D "$BASE/root" --boot --register=no --keep-unit -M hakeep-sdtest \
  --console=read-only --link-journal=no --resolv-conf=off --timezone=off --private-network \
  --bind-ro="$BASE/bin:/mnt/hakeep-tests" >"$BASE/console.log" 2>&1 </dev/null 3>&- &
echo $! >"$BASE/nspawn.pid"
deadline=$((SECONDS + BOOT_TIMEOUT))
until pid1 >/dev/null && inside test -S /run/systemd/private 2>/dev/null \
  && inside systemctl is-system-running --wait >/dev/null 2>&1; do
  # "degraded" is fine for these tests: systemd answers.
  if pid1 >/dev/null && [ "$(inside systemctl is-system-running 2>/dev/null)" = degraded ]; then break; fi
  [ $SECONDS -lt $deadline ] || { tail -n 30 "$BASE/console.log" >&2; die "the container did not boot in ${BOOT_TIMEOUT}s"; }
  sleep 0.5
done
log "container up (systemd $(inside systemctl is-system-running 2>/dev/null || true)); running tests matching '$FILTER'"
timeout "$TEST_TIMEOUT" nsenter -t "$(pid1)" -m -u -i -p -- env RUST_BACKTRACE=1 \
  /mnt/hakeep-tests/hakeep-lib-tests --ignored --test-threads=1 --nocapture "$FILTER"
