#!/usr/bin/env bash
# `make test`: lint, then every test tier in order (README.md, Makefile).
#
# The caches the later tiers need, the nspawn rootfs (tiers 2 and 3) and the Vagrant box
# (tier 4), are built meanwhile in the background: on a machine with nothing cached their
# debootstrap runs and the box's boot test overlap cargo's compile instead of following
# it. Each builder holds its cache's lock, so a tier that needs one waits for the
# background build, or builds it itself if that failed (the error then shows in the
# tier's own output). With the caches in place the background job finds them and ends at
# once. Its output: target/cache-prefetch.log.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/install-lab-deps.sh
mkdir -p target
prefetch_log=target/cache-prefetch.log
# A session of its own, so a failed run can stop the whole build (debootstrap, qemu).
# shellcheck disable=SC2016 # $SECONDS is the background shell's own
setsid bash -c 'scripts/nspawn-rootfs.sh >/dev/null && echo "cache-prefetch: rootfs ready after $SECONDS s" \
  && scripts/lab-box.sh >/dev/null && echo "cache-prefetch: box ready after $SECONDS s"' \
  >"$prefetch_log" 2>&1 3>&- </dev/null &
prefetch=$!

stop_prefetch() {
  local rc=$?
  if kill -0 "$prefetch" 2>/dev/null; then
    echo "test: stopping the background cache build" >&2
    kill -TERM -- "-$prefetch" 2>/dev/null || true
    wait "$prefetch" 2>/dev/null || true
  fi
  exit "$rc"
}
trap stop_prefetch EXIT

# Each tier's wall time, for the CI budget (docs/lab.md, "Measured here"). Each tier's
# output is also kept in target/test-logs/; a failed tier ends the run with its failure
# lines repeated, since CI shows only the tail of a long run.
logs=target/test-logs
mkdir -p "$logs"
tier() {
  local start=$SECONDS log="$logs/$1.log" rc=0
  make "$@" 2>&1 | tee "$log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "test: make $* failed after $((SECONDS - start)) s (exit $rc); its last failure lines (whole output: $log):" >&2
    grep -E 'fatal: \[|FAILED!|failed: \[|panicked at|^error(\[|:)|^test .* FAILED|ERROR |violation|\.ya?ml:[0-9]+:[0-9]+' "$log" \
      | tail -n 20 | cut -c1-1200 >&2 || true
    exit "$rc"
  fi
  echo "test: make $* took $((SECONDS - start)) s" >&2
}

tier lint
tier rust-test
tier package-test
tier molecule
if ! wait "$prefetch"; then
  echo "test: the background cache build failed (tail of $prefetch_log below); tier 4 builds it again" >&2
  tail -n 20 "$prefetch_log" >&2
fi
grep '^cache-prefetch:' "$prefetch_log" >&2 || true
tier molecule-lab
