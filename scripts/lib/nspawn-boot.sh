# shellcheck shell=bash
# A throwaway container of the test image (scripts/nspawn-rootfs.sh), systemd as PID 1,
# under an overlay in $BASE: booted by nspawn_boot, removed with everything in $BASE by
# nspawn_down (also what a killed earlier run left). The caller sets BASE and
# BOOT_TIMEOUT and defines die(); sourced by scripts/systemd-tests.sh and
# scripts/test-package.sh.

# The container's PID 1: the child of the systemd-nspawn process whose comm is systemd.
nspawn_pid1() {
  local np c
  np=$(cat "$BASE/nspawn.pid" 2>/dev/null) || return 1
  for c in $(pgrep -P "$np" 2>/dev/null); do
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && { echo "$c"; return 0; }
  done
  return 1
}

# Runs "$@" in the container's mount, UTS, IPC and PID namespaces, bounded.
nspawn_exec() {
  local p
  p=$(nspawn_pid1) || return 1
  timeout 30 nsenter -t "$p" -m -u -i -p -- "$@"
}

# nspawn_boot ROOTFS MACHINE BIND: boots ROOTFS as MACHINE with no network, the host
# directory BIND read-only at /mnt/BASENAME-OF-BIND, and waits until systemd answers.
nspawn_boot() {
  local rootfs=$1 machine=$2 bind=$3 deadline
  mkdir -p "$BASE"/{upper,work,root}
  mount -t overlay -o "lowerdir=$rootfs,upperdir=$BASE/upper,workdir=$BASE/work" "$machine" "$BASE/root"
  setsid systemd-nspawn -q -D "$BASE/root" --boot --register=no --keep-unit -M "$machine" \
    --console=read-only --link-journal=no --resolv-conf=off --timezone=off --private-network \
    --bind-ro="$bind:/mnt/$(basename "$bind")" >"$BASE/console.log" 2>&1 </dev/null 3>&- 9>&- &
  echo $! >"$BASE/nspawn.pid"
  deadline=$((SECONDS + BOOT_TIMEOUT))
  until nspawn_pid1 >/dev/null && nspawn_exec test -S /run/systemd/private 2>/dev/null \
    && nspawn_exec systemctl is-system-running --wait >/dev/null 2>&1; do
    # "degraded" is fine for the tests: systemd answers.
    if nspawn_pid1 >/dev/null && [ "$(nspawn_exec systemctl is-system-running 2>/dev/null)" = degraded ]; then
      break
    fi
    [ $SECONDS -lt "$deadline" ] || {
      tail -n 30 "$BASE/console.log" >&2
      die "the container did not boot in ${BOOT_TIMEOUT}s"
    }
    sleep 0.5
  done
}

nspawn_down() {
  local np p
  np=$(cat "$BASE/nspawn.pid" 2>/dev/null || true)
  # A pid file of a killed earlier run may name a pid reused since: only ever our nspawn.
  if [ -n "$np" ] && [ "$(cat "/proc/$np/comm" 2>/dev/null)" != systemd-nspawn ]; then np=; fi
  if p=$(nspawn_pid1); then nsenter -t "$p" -m -u -i -p -- systemctl poweroff >/dev/null 2>&1 || true; fi
  for _ in $(seq 1 50); do
    { [ -n "$np" ] && kill -0 "$np" 2>/dev/null; } || break
    sleep 0.2
  done
  if [ -n "$np" ] && kill -0 "$np" 2>/dev/null; then kill -KILL "$np" 2>/dev/null || true; fi
  for _ in $(seq 1 25); do
    { [ -n "$np" ] && kill -0 "$np" 2>/dev/null; } || break
    sleep 0.2
  done
  awk -v b="$BASE" '$5 == b || index($5, b "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r \
    | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$BASE"
}
