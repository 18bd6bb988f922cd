#!/usr/bin/env bash
# Builds (once) the Debian 12 root filesystem the nspawn containers of the fast Ansible
# tier boot from, and prints its path on stdout (logs go to stderr).
#
#   scripts/nspawn-rootfs.sh            build if missing, print the path
#   scripts/nspawn-rootfs.sh --path     print the path it would use, build nothing
#
# The containers have no network at converge time, so everything the roles install must
# already be in the image. The image lives outside the repo, under
# ${HAKEEP_ROOTFS_CACHE:-$HAKEEP_CACHE/rootfs}/bookworm-<hash>/ (HAKEEP_CACHE defaults to
# /var/cache/hakeep), where the hash covers
# the package list and the recipe version below: change either and a new image is built;
# otherwise the cached one is reused. A build runs in a temporary directory next to the
# final one and is renamed into place only when complete, so a killed build never leaves
# something that looks like a finished image (its leftovers are removed by the next run).
#
# The apt mirror is the host's own (its sources.list / sources.list.d), never hardcoded;
# HAKEEP_APT_MIRROR overrides it. Debian 12, root.
set -euo pipefail

SUITE=bookworm
# Bump when the customisation below changes in a way the containers would notice.
RECIPE=4
PACKAGES=(
  ca-certificates corosync corosync-qdevice corosync-qnetd curl dbus e2fsprogs
  exim4-daemon-light iproute2 iputils-ping keepalived less logrotate man-db mariadb-client
  mariadb-server nginx-light openssh-server procps prometheus psmisc python3 python3-apt sudo
  systemd systemd-sysv
  # Run-time libraries of the BeeGFS daemons built by scripts/build-beegfs.sh (the
  # containers have no apt mirror to resolve a local .deb's dependencies from).
  libattr1 libblkid1 libcurl4 libibverbs1 libnl-3-200 libnl-route-3-200 librdmacm1 libuuid1
)
# Units the roles manage: installed, but not started at boot by the image (mariadb.socket
# would start MariaDB on a standby node at the first client connection). The apt timers
# only fail: the containers have no mirror. Prometheus (with promtool) and exim4 are for
# the monitoring tests: Prometheus runs only where a test starts it. corosync and its
# qdevice/qnetd run only where the roles configure quorum.
DISABLED_UNITS=(keepalived.service mariadb.service mariadb.socket nginx.service
  apt-daily.timer apt-daily-upgrade.timer prometheus.service corosync.service
  corosync-qdevice.service corosync-qnetd.service)

CACHE=${HAKEEP_ROOTFS_CACHE:-${HAKEEP_CACHE:-/var/cache/hakeep}/rootfs}
LOCK_TIMEOUT=${HAKEEP_ROOTFS_LOCK_TIMEOUT:-1800}

log() { printf 'nspawn-rootfs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Stdout carries only the image's path (fd 3): everything else this script or the commands
# it runs print goes to stderr, so a chatty command can never corrupt the answer.
exec 3>&1 1>&2
result() { echo "$1" >&3; }

hash=$(printf '%s\n' "suite=$SUITE" "variant=minbase" "recipe=$RECIPE" "${PACKAGES[@]}" \
  | LC_ALL=C sort | sha256sum | cut -c1-12)
final="$CACHE/$SUITE-$hash"

if [ "${1:-}" = "--path" ]; then
  result "$final"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "must run as root"

. "$(dirname "$0")/lib/build-common.sh"

sources=$(host_sources)
mirror=$(image_mirror "$SUITE" "$sources")
[ -n "$mirror" ] || die "no '$SUITE' deb source in /etc/apt/sources.list{,.d}; set HAKEEP_APT_MIRROR"

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemctl >/dev/null || missing+=(systemd)   # systemctl --root, offline
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$CACHE"
# Held until the build and every process it started are gone: a build whose script was
# killed keeps the lock until its orphaned debootstrap ends, then the next run removes it.
exec 9>"$CACHE/.lock"
flock -w "$LOCK_TIMEOUT" 9 || die "another build holds $CACHE/.lock for more than ${LOCK_TIMEOUT}s"

if [ -f "$final/.hakeep-rootfs" ]; then
  log "cached: $final"
  result "$final"
  exit 0
fi

# We hold the lock: any temporary build directory is a leftover of a killed build.
for stale in "$CACHE"/.build-*; do
  [ -e "$stale" ] || continue
  log "removing leftover of an interrupted build: $stale"
  remove_tree "$stale"
done
# A directory without the completion marker is not an image (never renamed half-built, but
# be strict anyway).
[ -e "$final" ] && remove_tree "$final"

tmp=$(mktemp -d "$CACHE/.build-$SUITE-$hash.XXXXXX")
cleanup() {
  local rc=$?
  if [ -n "${tmp:-}" ] && [ -e "$tmp" ]; then remove_tree "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

start=$(date +%s)
include=$(IFS=,; echo "${PACKAGES[*]}")
log "debootstrap $SUITE (minbase) from $mirror into $tmp"
debootstrap --variant=minbase --include="$include" --components=main \
  "$SUITE" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
  tail -n 30 "$tmp/debootstrap.log" >&2
  die "debootstrap failed (log above)"
}
root=$tmp/root

# --- apt sources as on the host (for lists and security updates at build time) ------------
write_image_sources "$root" "$SUITE" "$mirror" "$sources" nspawn-rootfs.sh

mount -t proc proc "$root/proc"
# No daemon may start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
log "apt-get update + upgrade (security and point-release updates)"
in_image "$root" apt-get update -qq >>"$tmp/debootstrap.log" 2>&1 || die "apt-get update in the image failed"
in_image "$root" apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade >>"$tmp/debootstrap.log" 2>&1 \
  || { tail -n 30 "$tmp/debootstrap.log" >&2; die "apt-get upgrade in the image failed"; }
in_image "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"
umount "$root/proc"

# --- systemd and services ----------------------------------------------------------------
for unit in "${DISABLED_UNITS[@]}"; do
  systemctl --root="$root" --quiet disable "$unit" 2>/dev/null || true
  if systemctl --root="$root" --quiet is-enabled "$unit" 2>/dev/null; then
    die "could not disable $unit in the image"
  fi
done
systemctl --root="$root" --quiet enable ssh.service
# A console getty on nspawn's read-only console only restarts in a loop.
systemctl --root="$root" --quiet mask console-getty.service

# Empty machine-id: systemd generates one at first boot (nspawn-lab.sh writes a unique one
# per container anyway). dbus reads the same id.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"

# Host keys are per container (nspawn-lab.sh generates them), never baked into the image.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/root/.ssh"
chmod 0700 "$root/root/.ssh"
chroot "$root" /usr/sbin/usermod -s /bin/bash root

echo "hakeep-node" >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
# No DNS in the lab: an empty resolv.conf rather than the build host's.
: >"$root/etc/resolv.conf"

cat >"$root/.hakeep-rootfs" <<EOF
suite=$SUITE
recipe=$RECIPE
hash=$hash
mirror=$mirror
packages=${PACKAGES[*]}
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
chmod 0755 "$root"

# Atomic: the image appears complete or not at all.
mv "$root" "$final"
remove_tree "$tmp"
tmp=
# Older images of this suite are replaced.
for old in "$CACHE/$SUITE"-*; do
  { [ "$old" != "$final" ] && [ -d "$old" ]; } || continue
  if grep -qF "$old" /proc/self/mountinfo; then
    log "keeping old image $old: a running lab still uses it"
  else
    log "removing old image $old"
    remove_tree "$old"
  fi
done
log "built $final in $(($(date +%s) - start)) s"
result "$final"
