#!/usr/bin/env bash
# Installs what the VM lab needs on Debian 12 (only what is missing) and starts libvirt's
# daemons when no systemd runs them. Idempotent; root.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'install-lab-deps: %s\n' "$*" >&2; }

# vagrant + vagrant-libvirt drive the VMs; libvirt runs them with qemu (TCG when there is
# no usable KVM), as the libvirt-qemu user that libvirt-daemon-system makes; the box
# builder needs debootstrap, fdisk (sfdisk) and GRUB's BIOS images and grub-mkimage
# (grub-pc-bin: nothing is installed into the host's own boot sectors); Vagrant unpacks
# boxes with bsdtar.
packages=(vagrant vagrant-libvirt libvirt-daemon libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils dnsmasq-base iptables libarchive-tools
  debootstrap fdisk grub-pc-bin grub-common e2fsprogs util-linux openssh-client)
. "$(dirname "$0")/lib/apt.sh"
mapfile -t missing < <(missing_packages "${packages[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  # A qemu-utils newer than Debian 12's (a backport) breaks qemu-system-x86 7.2: take the
  # release's qemu-utils with it.
  if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -vx qemu-utils)
    missing+=(--allow-downgrades "qemu-utils/$codename")
  fi
  apt_install "${missing[@]}"
fi

# /dev/kvm as Debian's udev makes it (root:kvm 0660). Some hosts have it root-only: then
# libvirt's probe (as root) finds KVM, but its qemu user (in group kvm) cannot open it, so
# libvirt takes its capability cache for outdated on every call and probes qemu again:
# about 5 s per API call, and `vagrant up` of the lab took 13 minutes instead of 1.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
  if [ "$(stat -c %G:%a /dev/kvm)" != kvm:660 ]; then
    log "giving /dev/kvm Debian's owner and mode (root:kvm 0660)"
    chgrp kvm /dev/kvm
    chmod 0660 /dev/kvm
  fi
fi

# Without systemd as PID 1 nothing starts libvirt: start its daemons by hand.
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    systemctl start libvirtd.service
  else
    mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/images
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
  fi
  for _ in $(seq 1 30); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 1
  done
  virsh -c qemu:///system version >/dev/null 2>&1 || { log "libvirtd does not answer"; exit 1; }
fi

# vagrant-libvirt keeps box images and disks in the pool named default.
if ! virsh -c qemu:///system pool-info default >/dev/null 2>&1; then
  log "creating libvirt's default storage pool (/var/lib/libvirt/images)"
  virsh -c qemu:///system pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
  virsh -c qemu:///system pool-build default >/dev/null
fi
if [ "$(virsh -c qemu:///system pool-info default | awk '/^State:/ { print $2 }')" != running ]; then
  virsh -c qemu:///system pool-start default >/dev/null
fi
virsh -c qemu:///system pool-autostart default >/dev/null 2>&1 || true
