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

# shellcheck source=scripts/lib/nspawn-boot.sh
. "$REPO/scripts/lib/nspawn-boot.sh"

[ -e "$BASE" ] && { log "removing leftovers of an earlier run"; nspawn_down; }
trap nspawn_down EXIT

rootfs=$("$REPO/scripts/nspawn-rootfs.sh" 3>&-)
log "building the library's test binary"
bin=$(cd "$REPO" && cargo test --locked --lib --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
[ -x "$bin" ] || die "no test binary found"

mkdir -p "$BASE/hakeep-tests"
cp "$bin" "$BASE/hakeep-tests/hakeep-lib-tests"
nspawn_boot "$rootfs" hakeep-sdtest "$BASE/hakeep-tests"
log "container up (systemd $(nspawn_exec systemctl is-system-running 2>/dev/null || true)); running tests matching '$FILTER'"
timeout "$TEST_TIMEOUT" nsenter -t "$(nspawn_pid1)" -m -u -i -p -- env RUST_BACKTRACE=1 \
  /mnt/hakeep-tests/hakeep-lib-tests --ignored --test-threads=1 --nocapture "$FILTER"
