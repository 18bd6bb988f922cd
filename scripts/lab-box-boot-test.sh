#!/usr/bin/env bash
# Boots a raw lab-box disk under qemu (TCG) until it offers a login on its
# serial console: proof that BIOS, bootloader, kernel, initrd and root file system work.
#
#   scripts/lab-box-boot-test.sh [--rewrite-initrd] [--cycles N] [--workdir DIR]
#                                [--timeout SECONDS] DISK.raw
#
# --rewrite-initrd first runs `update-initramfs -u -k all` in the disk's root, as
# installing open-iscsi or nfs-kernel-server does during provisioning: a boot path that
# only reads an initrd laid out as the build wrote it fails here. --cycles repeats
# rewrite + boot. The disk's partition starts at sector 2048 (lab-box.sh). Boots run with
# -snapshot: they leave the disk as it was (no host keys or machine-id baked in). The VM
# gets an eth0 whose DHCP answers (qemu's user network, `restrict=on`: nothing reaches
# beyond the VM), so its boot does not wait for a missing interface.
# Exit 0 when every boot reached the login prompt; else the console's tail is printed.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

rewrite=0 cycles=1 workdir="" timeout=600 disk=""
while [ $# -gt 0 ]; do
  case $1 in
    --rewrite-initrd) rewrite=1 ;;
    --cycles) cycles=$2; shift ;;
    --workdir) workdir=$2; shift ;;
    --timeout) timeout=$2; shift ;;
    -*) echo "lab-box-boot-test: unknown option $1" >&2; exit 2 ;;
    *) disk=$1 ;;
  esac
  shift
done
[ -f "$disk" ] || { echo "usage: $0 [--rewrite-initrd] [--cycles N] [--workdir DIR] DISK.raw" >&2; exit 2; }
[[ $cycles =~ ^[1-9][0-9]*$ ]] || { echo "lab-box-boot-test: --cycles wants a positive number" >&2; exit 2; }

log() { printf 'lab-box-boot-test: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

own_workdir=0
if [ -z "$workdir" ]; then
  workdir=$(mktemp -d /var/tmp/hakeep-boot-test.XXXXXX)
  own_workdir=1
fi
mnt=$workdir/boot-test-mnt
loop="" qemu_pid=""
cleanup() {
  local rc=$?
  [ -z "$qemu_pid" ] || { kill -KILL "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; }
  if mountpoint -q "$mnt" 2>/dev/null; then
    umount "$mnt/dev" "$mnt/sys" "$mnt/proc" 2>/dev/null || true
    umount "$mnt" || umount -l "$mnt" || true
  fi
  [ -z "$loop" ] || losetup -d "$loop" 2>/dev/null || true
  rmdir "$mnt" 2>/dev/null || true
  # A kept console log of a failed boot is the evidence: keep the directory then.
  [ $own_workdir -eq 0 ] || [ "$rc" -ne 0 ] || rm -rf "$workdir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

rewrite_initrd() {
  mkdir -p "$mnt"
  loop=$(losetup --find --show --offset $((2048 * 512)) "$disk")
  mount "$loop" "$mnt"
  mount -t proc proc "$mnt/proc"
  mount -t sysfs sys "$mnt/sys"
  mount --bind /dev "$mnt/dev"
  chroot "$mnt" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C \
    update-initramfs -u -k all >"$workdir/update-initramfs.log" 2>&1 \
    || { cat "$workdir/update-initramfs.log" >&2; die "update-initramfs failed in the image"; }
  umount "$mnt/dev" "$mnt/sys" "$mnt/proc"
  umount "$mnt"
  losetup -d "$loop"
  loop=""
}

boot() { # console log path
  local console=$1 start=$SECONDS
  : >"$console"
  qemu-system-x86_64 -machine pc,accel=tcg -cpu max -smp 1 -m 1024 -snapshot \
    -drive file="$disk",format=raw,if=virtio -display none -no-reboot \
    -nic user,model=virtio-net-pci,restrict=on \
    -serial file:"$console" -monitor none </dev/null >"$console.qemu" 2>&1 &
  qemu_pid=$!
  while [ $((SECONDS - start)) -lt "$timeout" ]; do
    if grep -q 'login:' "$console"; then
      kill -KILL "$qemu_pid" 2>/dev/null || true
      wait "$qemu_pid" 2>/dev/null || true
      qemu_pid=""
      log "login prompt after $((SECONDS - start)) s ($(grep -ao 'Linux version [^ ]*' "$console" | head -n1))"
      return 0
    fi
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 2
  done
  kill -KILL "$qemu_pid" 2>/dev/null || true
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=""
  log "no login prompt within ${timeout} s; qemu said: $(tr '\n' ' ' <"$console.qemu")"
  log "last lines of the console ($console):"
  tail -n 40 "$console" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' >&2
  return 1
}

for i in $(seq 1 "$cycles"); do
  if [ $rewrite -eq 1 ]; then
    log "cycle $i/$cycles: rewriting the initrd"
    rewrite_initrd
  fi
  log "cycle $i/$cycles: booting $disk"
  boot "$workdir/console-$i.log" || exit 1
done
