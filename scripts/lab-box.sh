#!/usr/bin/env bash
# Builds (once) the Debian 12 Vagrant box of the lab, for the libvirt provider, and adds
# it to Vagrant as hakeep/bookworm. No box can be downloaded here, so it is made from
# scratch: debootstrap onto a raw disk (MBR + one ext4 partition + GRUB), then qcow2.
#
# Boot path: GRUB's core image sits in the gap before the partition and reads the kernel
# and initrd through its own ext4 driver, so a provisioned VM boots again whatever the
# layout of an initrd that provisioning rewrote (extlinux did not: a VM whose initrd was
# rewritten stopped in the BIOS). Before the box is cached, its initrd is rewritten as
# provisioning does and the disk is booted under qemu until it offers a login
# (scripts/lab-box-boot-test.sh).
#
#   scripts/lab-box.sh           build if missing, add to Vagrant if needed, print the path
#   scripts/lab-box.sh --path    print the box file it would use, build nothing
#
# The lab VMs have no route to an apt mirror, so every package the roles install is in
# the box already. The box file is cached under ${HAKEEP_BOX_CACHE:-$HAKEEP_CACHE/box}
# (HAKEEP_CACHE defaults to /var/cache/hakeep) as hakeep-bookworm-<hash>.box; the hash covers the package list and RECIPE, so changing
# either builds a new box, which then replaces the old one in Vagrant and in libvirt's
# pool. A build runs in a temporary directory and is renamed into place only when
# complete; a killed build's leftovers (mounts, loop device, files) go at the next run.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SUITE=bookworm
BOX_NAME=${HAKEEP_LAB_BOX:-hakeep/bookworm}
# Bump when the customisation below changes in a way the VMs would notice.
RECIPE=4
DISK_GB=8
# The kernel is installed after the upgrade (KERNEL_PACKAGE), so the box has one kernel,
# the newest, whatever debootstrap would have picked.
KERNEL_PACKAGE=linux-image-amd64
PACKAGES=(
  initramfs-tools systemd systemd-sysv udev dbus kmod
  ifupdown isc-dhcp-client netbase iproute2 iputils-ping openssh-server sudo
  python3 python3-apt ca-certificates procps psmisc less logrotate e2fsprogs xfsprogs
  keepalived targetcli-fb python3-rtslib-fb open-iscsi sg3-utils
  nfs-kernel-server nfs-common
  corosync corosync-qdevice corosync-qnetd drbd-utils
)
# Installed, but the roles decide what runs: hakeep starts keepalived's peers' services,
# and nothing may serve NFS or log in to iSCSI before provisioning says so.
# The rest cost boot time under TCG for nothing the lab uses (pNFS block layout, e2scrub,
# man-db).
DISABLED_UNITS=(keepalived.service nfs-server.service open-iscsi.service
  corosync.service corosync-qdevice.service corosync-qnetd.service drbd.service
  rtslib-fb-targetctl.service apt-daily.timer apt-daily-upgrade.timer nfs-blkmap.service e2scrub_all.timer
  e2scrub_reap.service man-db.timer fstrim.timer)

# A lab box, emulated without KVM: AppArmor's profile compilation alone takes minutes of
# boot under TCG, and CPU-bug mitigations slow every emulated instruction.
KERNEL_ARGS="apparmor=0 mitigations=off"

CACHE=${HAKEEP_BOX_CACHE:-${HAKEEP_CACHE:-/var/cache/hakeep}/box}
LOCK_TIMEOUT=${HAKEEP_BOX_LOCK_TIMEOUT:-1800}
INSECURE_KEY_DIR=/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys

log() { printf 'lab-box: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Stdout carries only the box file's path (fd 3): everything else this script or the
# commands it runs print goes to stderr.
exec 3>&1 1>&2
result() { echo "$1" >&3; }

hash=$(printf '%s\n' "suite=$SUITE" "recipe=$RECIPE" "disk=$DISK_GB" "args=$KERNEL_ARGS" \
  "kernel=$KERNEL_PACKAGE" "${PACKAGES[@]}" \
  | LC_ALL=C sort | sha256sum | cut -c1-12)
box_file="$CACHE/hakeep-$SUITE-$hash.box"

if [ "${1:-}" = "--path" ]; then
  result "$box_file"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "must run as root"

. "$(dirname "$0")/lib/build-common.sh"

# --- the box file ---------------------------------------------------------------------------

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w "$LOCK_TIMEOUT" 9 || die "another build holds $CACHE/.lock for more than ${LOCK_TIMEOUT}s"

# A loop device of a killed build still points into its directory: detach it first.
detach_loops_under() {
  local dev file
  while read -r dev file; do
    case "$file" in "$1"/*) losetup -d "$dev" 2>/dev/null || true ;; esac
  done < <(losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null)
}

remove_build() {
  unmount_below "$1"
  detach_loops_under "$1"
  rm -rf --one-file-system "$1"
}

GRUB_DIR=/usr/lib/grub/i386-pc
# GRUB's modules in the core image: enough to find the root partition by UUID, read ext4,
# and run grub.cfg's Linux entry with a serial console.
GRUB_MODULES=(biosdisk part_msdos ext2 search search_fs_uuid normal linux serial terminal
  echo test configfile)

# Writes /boot/grub/grub.cfg and the core image ($1/../core.img, embedded in the disk's
# gap by write_boot_sectors). $1 the mounted root, $2 its UUID. The entry boots /vmlinuz
# and /initrd.img, the symlinks Debian keeps to the newest kernel, so a kernel upgrade
# inside the VM needs no new grub.cfg.
install_grub() {
  local root=$1 uuid=$2 work
  work=$(dirname "$root")
  { [ -e "$root/vmlinuz" ] && [ -e "$root/initrd.img" ]; } \
    || die "the image has no /vmlinuz or /initrd.img symlink"
  mkdir -p "$root/boot/grub"
  cat >"$root/boot/grub/grub.cfg" <<EOF
# Written by hakeep's lab-box.sh. Boots the newest kernel (Debian's /vmlinuz symlinks).
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "Debian GNU/Linux (hakeep lab box)" {
  search --no-floppy --fs-uuid --set=root $uuid
  linux /vmlinuz root=UUID=$uuid ro console=ttyS0,115200 net.ifnames=0 biosdevname=0 $KERNEL_ARGS
  initrd /initrd.img
}
EOF
  cat >"$work/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $uuid
set prefix=(\$root)/boot/grub
EOF
  grub-mkimage -O i386-pc -d "$GRUB_DIR" -c "$work/early.cfg" -p "(hd0,msdos1)/boot/grub" \
    -o "$work/core.img" "${GRUB_MODULES[@]}" || die "grub-mkimage failed"
}

# Puts GRUB's boot code into the MBR (its first 440 bytes: the disk signature and the
# partition table stay) and the core image right after it, in the gap before the first
# partition. boot.img loads sector 1 and core.img's first sector loads the rest from
# sector 2 on: GRUB's defaults, so nothing needs patching. $1 the disk, $2 core.img.
write_boot_sectors() {
  local disk=$1 core=$2 sectors
  sectors=$((($(stat -c %s "$core") + 511) / 512))
  [ "$sectors" -lt 2047 ] || die "GRUB's core image ($sectors sectors) does not fit before the partition"
  dd if="$GRUB_DIR/boot.img" of="$disk" bs=440 count=1 conv=notrunc status=none
  dd if="$core" of="$disk" bs=512 seek=1 conv=notrunc status=none
}

build_box() {
  local sources mirror tmp mnt disk loop uuid start include
  sources=$(host_sources)
  mirror=$(image_mirror "$SUITE" "$sources")
  [ -n "$mirror" ] || die "no '$SUITE' deb source in /etc/apt/sources.list{,.d}; set HAKEEP_APT_MIRROR"
  [ -f "$INSECURE_KEY_DIR/vagrant.pub" ] || die "Vagrant's insecure key is missing: install vagrant"
  for tool in debootstrap sfdisk qemu-img grub-mkimage qemu-system-x86_64; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-lab-deps.sh installs it)"
  done
  [ -f "$GRUB_DIR/boot.img" ] || die "$GRUB_DIR/boot.img is missing: install grub-pc-bin"

  start=$(date +%s)
  tmp=$(mktemp -d "$CACHE/.build-$hash.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now: the trap must clean this build only
  trap "remove_build '$tmp'" EXIT
  trap 'exit 130' INT TERM HUP
  mnt=$tmp/mnt
  disk=$tmp/disk.raw
  mkdir "$mnt"

  truncate -s "${DISK_GB}G" "$disk"
  printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$disk"
  # Partition devices of loop devices don't appear here: map the partition by offset.
  loop=$(losetup --find --show --offset $((2048 * 512)) "$disk")
  # Features newer than GRUB 2.06's ext4 reader are left out.
  mkfs.ext4 -q -L hakeep-root -O ^metadata_csum_seed,^orphan_file "$loop"
  uuid=$(blkid -s UUID -o value "$loop")
  mount "$loop" "$mnt"

  include=$(IFS=,; echo "${PACKAGES[*]}")
  log "debootstrap $SUITE from $mirror (about 5 minutes)"
  debootstrap --variant=minbase --include="$include" --components=main \
    "$SUITE" "$mnt" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  }
  configure_root "$mnt" "$uuid" "$sources" "$mirror"

  install_grub "$mnt" "$uuid"
  sync
  umount "$mnt"
  losetup -d "$loop"
  write_boot_sectors "$disk" "$tmp/core.img"

  # What provisioning does (installing open-iscsi, nfs-kernel-server...): the initrd is
  # rewritten. The box must boot after that, or a provisioned VM never boots again.
  # The console log stays in $CACHE/boot-test for a look when it fails.
  rm -rf "$CACHE/boot-test"
  mkdir -p "$CACHE/boot-test"
  "$(dirname "$0")/lab-box-boot-test.sh" --rewrite-initrd --workdir "$CACHE/boot-test" "$disk" \
    || die "the box does not boot after its initrd was rewritten (console: $CACHE/boot-test)"

  log "converting to qcow2"
  # Compressed: deleted files' blocks (apt's downloads) need not be copied into the pool.
  qemu-img convert -c -O qcow2 "$disk" "$tmp/box.img"
  rm -f "$disk"
  printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$DISK_GB" >"$tmp/metadata.json"
  cat >"$tmp/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
EOF
  echo "$hash" >"$tmp/hakeep-box.id"
  tar -C "$tmp" -cf "$tmp/box.tar" metadata.json Vagrantfile hakeep-box.id box.img
  mv "$tmp/box.tar" "$box_file"
  remove_build "$tmp"
  trap - EXIT
  for old in "$CACHE"/hakeep-"$SUITE"-*.box; do
    [ "$old" = "$box_file" ] || rm -f "$old"
  done
  log "built $box_file in $(($(date +%s) - start)) s"
}

# Everything the VMs need that debootstrap did not do. $1 root, $2 root fs UUID,
# $3 host sources, $4 mirror.
configure_root() {
  local root=$1 uuid=$2 sources=$3 mirror=$4
  write_image_sources "$root" "$SUITE" "$mirror" "$sources" lab-box.sh

  mount -t proc proc "$root/proc"
  mount -t sysfs sys "$root/sys"
  mount --bind /dev "$root/dev"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  log "apt-get upgrade (security and point-release updates)"
  in_image "$root" apt-get update -qq >>"$root/../debootstrap.log" 2>&1 || die "apt-get update in the image failed"
  in_image "$root" apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade \
    >>"$root/../debootstrap.log" 2>&1 || die "apt-get upgrade in the image failed"
  log "installing $KERNEL_PACKAGE"
  in_image "$root" apt-get -y -qq --no-install-recommends install "$KERNEL_PACKAGE" \
    >>"$root/../debootstrap.log" 2>&1 || die "installing $KERNEL_PACKAGE in the image failed"
  local kernels
  kernels=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | wc -l)
  [ "$kernels" -eq 1 ] || die "the image has $kernels kernels in /boot, want exactly one"
  in_image "$root" apt-get clean
  rm -f "$root/usr/sbin/policy-rc.d"

  cat >"$root/etc/fstab" <<EOF
UUID=$uuid / ext4 errors=remount-ro 0 1
EOF
  # eth0 is vagrant-libvirt's management network (DHCP); Vagrant writes the others.
  # `auto`, not `allow-hotplug`: no allow-hotplug interface means ifupdown-pre.service
  # skips its `udevadm settle`, which took 40 s of every boot under TCG.
  cat >"$root/etc/network/interfaces" <<'EOF'
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOF
  echo "hakeep-box" >"$root/etc/hostname"
  cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF

  in_image "$root" useradd --create-home --shell /bin/bash vagrant
  install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
  install -m 0600 -o 1000 -g 1000 "$INSECURE_KEY_DIR/vagrant.pub" "$root/home/vagrant/.ssh/authorized_keys"
  [ "$(stat -c %u "$root/home/vagrant")" = 1000 ] || die "the vagrant user is not uid 1000"
  echo "vagrant ALL=(ALL) NOPASSWD: ALL" >"$root/etc/sudoers.d/vagrant"
  chmod 0440 "$root/etc/sudoers.d/vagrant"

  # Host keys are per VM: made at first boot, never baked into the box. Only ed25519: an
  # RSA key takes minutes to generate under TCG.
  rm -f "$root"/etc/ssh/ssh_host_*
  echo "HostKey /etc/ssh/ssh_host_ed25519_key" >"$root/etc/ssh/sshd_config.d/hostkey.conf"
  cat >"$root/etc/systemd/system/ssh-host-keys.service" <<'EOF'
[Unit]
Description=Generate missing SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
EOF
  systemctl --root="$root" --quiet enable ssh-host-keys.service ssh.service
  for unit in "${DISABLED_UNITS[@]}"; do
    systemctl --root="$root" --quiet disable "$unit" 2>/dev/null || true
  done
  # A serial getty lets the console show a login prompt, nothing else.
  systemctl --root="$root" --quiet enable serial-getty@ttyS0.service
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"

  umount "$root/dev" "$root/sys" "$root/proc"
}

if [ ! -f "$box_file" ]; then
  for stale in "$CACHE"/.build-*; do
    [ -e "$stale" ] || continue
    log "removing leftover of an interrupted build: $stale"
    remove_build "$stale"
  done
  build_box
else
  log "cached: $box_file"
fi

# --- Vagrant's copy and libvirt's -----------------------------------------------------------

vagrant_home=${VAGRANT_HOME:-$HOME/.vagrant.d}
box_dir="$vagrant_home/boxes/${BOX_NAME//\//-VAGRANTSLASH-}/0/libvirt"
if [ "$(cat "$box_dir/hakeep-box.id" 2>/dev/null)" != "$hash" ]; then
  log "adding $box_file to Vagrant as $BOX_NAME"
  vagrant box add --force --name "$BOX_NAME" "$box_file" >&2
fi

# vagrant-libvirt uploads a box into libvirt's pool once, as a volume named after the box
# and its file's time. Older uploads of this box that no VM disk is backed by are garbage.
if virsh -c qemu:///system pool-info default >/dev/null 2>&1; then
  prefix="${BOX_NAME//\//-VAGRANTSLASH-}_vagrant_box_image_"
  current="${prefix}0_$(stat -c %Y "$box_dir/box.img" 2>/dev/null)_box.img"
  mapfile -t volumes < <(virsh -c qemu:///system vol-list --pool default | awk 'NR > 2 && NF { print $1 }')
  backing=""
  for v in "${volumes[@]}"; do
    path=$(virsh -c qemu:///system vol-path --pool default "$v" 2>/dev/null) || continue
    backing+=$(qemu-img info -U --output=json "$path" 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename", ""))' || true)$'\n'
  done
  for v in "${volumes[@]}"; do
    { [[ $v == "$prefix"* ]] && [ "$v" != "$current" ]; } || continue
    path=$(virsh -c qemu:///system vol-path --pool default "$v")
    if ! grep -qxF "$path" <<<"$backing"; then
      log "removing the old box upload $v from libvirt's pool"
      virsh -c qemu:///system vol-delete --pool default "$v" >/dev/null
    fi
  done
fi
result "$box_file"
