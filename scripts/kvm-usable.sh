#!/usr/bin/env bash
# Exits 0 when KVM really boots the lab's box here, 1 when it does not.
#
#   scripts/kvm-usable.sh IMAGE     IMAGE: the box's disk (qcow2), booted read-only
#
# /dev/kvm and libvirt's "kvm" domain type are not enough: on some hosts (nested,
# restricted) KVM runs simple real-mode code but stops in the boot loader with "KVM
# internal error ... emulation failure", and the VM would hang until Vagrant's boot
# timeout. So boot the box itself for a few seconds and look for the kernel's first line
# on the serial console.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

image=${1:?usage: kvm-usable.sh IMAGE}
[ -r /dev/kvm ] && [ -w /dev/kvm ] || exit 1
command -v qemu-system-x86_64 >/dev/null || exit 1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# -snapshot: writes go to a temporary file, never to the image.
timeout 30 qemu-system-x86_64 -accel kvm -display none -nodefaults -no-reboot -m 512 \
  -snapshot -drive file="$image",format=qcow2,if=virtio -serial file:"$dir/serial" \
  >"$dir/qemu.log" 2>&1 &
qemu=$!
for _ in $(seq 1 30); do
  if grep -q "Linux version" "$dir/serial" 2>/dev/null; then
    kill "$qemu" 2>/dev/null || true
    wait "$qemu" 2>/dev/null || true
    exit 0
  fi
  kill -0 "$qemu" 2>/dev/null || break
  grep -q "KVM internal error" "$dir/qemu.log" 2>/dev/null && break
  sleep 1
done
kill "$qemu" 2>/dev/null || true
wait "$qemu" 2>/dev/null || true
exit 1
