#!/usr/bin/env bash
# Drives the Vagrant lab (Vagrantfile): four libvirt VMs, iscsi, nfs1, nfs2 and client.
#
#   scripts/lab.sh up [--no-provision]  deps, box, `vagrant up`, then site.yml (Vagrant's
#                                       Ansible provisioner) unless these VMs already had
#                                       it; prints a JSON summary on stdout
#   scripts/lab.sh down                 `vagrant destroy -f`, then any leftover domain or
#                                       network of this lab (a killed run's)
#   scripts/lab.sh status               `hakeep status --all-nodes`, run on nfs1
#   scripts/lab.sh crash NODE           hard power-off (virsh destroy), as a crash
#   scripts/lab.sh start NODE           power a crashed node on again
#   scripts/lab.sh reset NODE           hard reset (virsh reset), as the reset button
#   scripts/lab.sh await-reboot NODE [SECS]
#                                       waits (at most SECS, 600) until NODE's guest
#                                       reboots, i.e. its shutdown has finished; start it
#                                       before the reboot
#   scripts/lab.sh consoles [LINES]     the last LINES (40) of every VM's serial console
#   scripts/lab.sh heartbeat NODE cut|heal
#                                       unplug / plug NODE's heartbeat NIC on the host's
#                                       bridge; its link stays up, as when a switch fails
#
# `down` never deletes the VMs' serial console logs: it moves them to
# /var/log/hakeep-lab/LAB/TIME/ (the newest 5 runs are kept), so a failed run can be
# read afterwards.
#
# HAKEEP_LAB_NAME (default hakeep-lab) prefixes the VMs and networks; another name keeps
# its own Vagrant state in .vagrant/labs/NAME, so two labs with different names and networks
# (HAKEEP_LAB_NET, ...: see the Vagrantfile) can exist side by side. Root, Debian 12.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

REPO=$(cd "$(dirname "$0")/.." && pwd)
LAB=${HAKEEP_LAB_NAME:-hakeep-lab}
NET=${HAKEEP_LAB_NET:-192.168.60}
BOX=${HAKEEP_LAB_BOX:-hakeep/bookworm}
MACHINES=(iscsi nfs1 nfs2 client)
VIRSH=(virsh -c qemu:///system)
export VAGRANT_DEFAULT_PROVIDER=${VAGRANT_DEFAULT_PROVIDER:-libvirt}
# The default lab keeps Vagrant's state where a plain `vagrant ssh nfs1` finds it.
if [ "$LAB" = hakeep-lab ]; then
  export VAGRANT_DOTFILE_PATH=${VAGRANT_DOTFILE_PATH:-$REPO/.vagrant}
else
  export VAGRANT_DOTFILE_PATH=${VAGRANT_DOTFILE_PATH:-$REPO/.vagrant/labs/$LAB}
fi
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_PLUGINS_INSTALL=1
MARKER=$VAGRANT_DOTFILE_PATH/hakeep-provisioned

# Stdout (fd 3) carries only the JSON summary; everything else goes to stderr.
exec 3>&1 1>&2
log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Vagrant's chatter goes to stderr (fd 3 is not theirs to keep).
vagrant_() { (cd "$REPO" && vagrant "$@") 3>&-; }

domain_of() { echo "$LAB-$1"; }

# The UUIDs of this lab's domains, as Vagrant knows them: they change when a VM is made anew.
machine_ids() {
  local m
  for m in "${MACHINES[@]}"; do
    printf '%s=%s\n' "$m" "$(cat "$VAGRANT_DOTFILE_PATH/machines/$m/libvirt/id" 2>/dev/null || true)"
  done
}

summary() {
  local m addr key first=1
  printf '{"lab":"%s","vip":"%s.100","nodes":[' "$LAB" "$NET"
  for m in "${MACHINES[@]}"; do
    case $m in iscsi) addr=$NET.10 ;; nfs1) addr=$NET.11 ;; nfs2) addr=$NET.12 ;; client) addr=$NET.50 ;; esac
    key=$VAGRANT_DOTFILE_PATH/machines/$m/$VAGRANT_DEFAULT_PROVIDER/private_key
    [ $first -eq 1 ] || printf ','
    first=0
    printf '{"name":"%s","address":"%s","user":"vagrant","identity_file":"%s","domain":"%s"}' \
      "$m" "$addr" "$key" "$(domain_of "$m")"
  done
  printf ']}\n'
} >&3

cmd_up() {
  local provision=1
  [ "${1:-}" = "--no-provision" ] && provision=0
  # Daemons started on the way (libvirtd, virtlogd) must not keep fd 3 open.
  "$REPO/scripts/install-lab-deps.sh" 3>&-
  "$REPO/scripts/lab-box.sh" >/dev/null 3>&-
  # Vagrant's Ansible provisioner runs ansible-playbook from the venv.
  PATH="$("$REPO/scripts/install-ansible.sh" 3>&-):$PATH"
  export PATH
  mkdir -p "$VAGRANT_DOTFILE_PATH"
  choose_driver
  remove_strays
  log "vagrant up --no-provision (VMs boot in parallel; under TCG this takes minutes)"
  if ! vagrant_ up --no-provision; then
    cmd_consoles 30 >&2
    die "vagrant up failed (the VMs' consoles are above)"
  fi
  if [ $provision -eq 1 ]; then
    # Provisioned VMs are left alone; new ones (all, or one made anew) get site.yml.
    local ids
    ids=$(machine_ids)
    if [ "$(cat "$MARKER" 2>/dev/null)" != "$ids" ]; then
      log "provisioning: vagrant provision ${MACHINES[-1]} (site.yml, inventories/lab)"
      if ! vagrant_ provision "${MACHINES[-1]}"; then
        cmd_consoles 30 >&2
        die "provisioning failed (the VMs' consoles are above)"
      fi
      echo "$ids" >"$MARKER"
    else
      log "already provisioned"
    fi
  fi
  summary
}

# kvm when it really boots the box here (scripts/kvm-usable.sh), else qemu (TCG). Probed
# once per lab; HAKEEP_LAB_DRIVER overrides.
choose_driver() {
  local cached=$VAGRANT_DOTFILE_PATH/driver box_img
  if [ -z "${HAKEEP_LAB_DRIVER:-}" ]; then
    if [ ! -s "$cached" ]; then
      box_img=${VAGRANT_HOME:-$HOME/.vagrant.d}/boxes/${BOX//\//-VAGRANTSLASH-}/0/libvirt/box.img
      if "$REPO/scripts/kvm-usable.sh" "$box_img"; then echo kvm >"$cached"; else echo qemu >"$cached"; fi
    fi
    HAKEEP_LAB_DRIVER=$(cat "$cached")
  fi
  export HAKEEP_LAB_DRIVER
  log "libvirt domain type: $HAKEEP_LAB_DRIVER"
}

# Domains and networks named like this lab's but unknown to its Vagrant state: the
# leftovers of a killed run or of a deleted checkout. They would block `vagrant up`.
remove_strays() {
  local d known
  known=$(machine_ids | cut -d= -f2 | grep -v '^$' || true)
  for d in $("${VIRSH[@]}" list --all --name | grep "^$LAB-" || true); do
    if ! grep -qxF "$("${VIRSH[@]}" domuuid "$d")" <<<"$known"; then
      log "removing leftover domain $d"
      remove_domain "$d"
    fi
  done
}

remove_domain() {
  "${VIRSH[@]}" destroy "$1" >/dev/null 2>&1 || true
  "${VIRSH[@]}" undefine "$1" --remove-all-storage --nvram >/dev/null 2>&1 \
    || "${VIRSH[@]}" undefine "$1" --remove-all-storage >/dev/null 2>&1 || true
}

cmd_down() {
  if [ -d "$VAGRANT_DOTFILE_PATH/machines" ] && command -v vagrant >/dev/null; then
    vagrant_ destroy -f >&2 || log "vagrant destroy failed; removing what is left by hand"
  fi
  if command -v virsh >/dev/null && "${VIRSH[@]}" version >/dev/null 2>&1; then
    local d n
    for d in $("${VIRSH[@]}" list --all --name | grep "^$LAB-" || true); do
      log "removing domain $d"
      remove_domain "$d"
    done
    for n in "$LAB-net" "$LAB-hb" "$LAB-mgmt"; do
      if "${VIRSH[@]}" net-info "$n" >/dev/null 2>&1; then
        log "removing network $n"
        "${VIRSH[@]}" net-destroy "$n" >/dev/null 2>&1 || true
        "${VIRSH[@]}" net-undefine "$n" >/dev/null 2>&1 || true
      fi
    done
  fi
  rm -rf "$VAGRANT_DOTFILE_PATH/machines" "$MARKER" "$VAGRANT_DOTFILE_PATH/driver"
  keep_consoles
}

CONSOLE_ARCHIVE=/var/log/hakeep-lab/$LAB
consoles_now() { ls /var/log/libvirt/qemu/"$LAB"-*-console.log 2>/dev/null || true; }

# Moves the consoles of the VMs just removed into the archive; keeps the newest 5 runs.
keep_consoles() {
  local logs dir old
  mapfile -t logs < <(consoles_now)
  [ ${#logs[@]} -gt 0 ] || return 0
  dir=$CONSOLE_ARCHIVE/$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$dir"
  mv "${logs[@]}" "$dir/"
  log "console logs kept in $dir"
  mapfile -t old < <(find "$CONSOLE_ARCHIVE" -mindepth 1 -maxdepth 1 -type d | sort -r | tail -n +6)
  [ ${#old[@]} -eq 0 ] || rm -rf "${old[@]}"
}

# The tail of each VM's console on stdout (the VMs of this lab now; `down` moves them to
# the archive, where they can be read as files).
cmd_consoles() {
  local lines=${1:-40} f logs
  mapfile -t logs < <(consoles_now)
  [ ${#logs[@]} -gt 0 ] || { log "no console logs of lab $LAB now (kept ones: $CONSOLE_ARCHIVE)"; return 0; }
  for f in "${logs[@]}"; do
    printf '===== %s (last %s lines) =====\n' "$f" "$lines"
    # Without the terminal's colour and cursor codes, so it reads in a CI log.
    tail -n "$lines" "$f" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g'
  done
}

cmd_status() {
  vagrant_ ssh nfs1 -- sudo /usr/bin/hakeep status --all-nodes
}

# The host-side interface (vnetN) of NODE's NIC on network $2.
host_port() {
  "${VIRSH[@]}" domiflist "$(domain_of "$1")" | awk -v n="$2" '$3 == n { print $1 }'
}

cmd_heartbeat() {
  local node=$1 action=$2 port bridge
  port=$(host_port "$node" "$LAB-hb")
  [ -n "$port" ] || die "$node has no NIC on $LAB-hb"
  bridge=$("${VIRSH[@]}" net-info "$LAB-hb" | awk '/^Bridge:/ { print $2 }')
  case $action in
    cut) ip link set dev "$port" nomaster ;;
    heal) ip link set dev "$port" master "$bridge" ;;
    *) die "heartbeat: cut or heal, not '$action'" ;;
  esac
  log "heartbeat of $node: $action ($port, bridge $bridge)"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  summary) summary ;;
  crash) [ -n "${2:-}" ] || die "crash NODE"; "${VIRSH[@]}" destroy "$(domain_of "$2")" >/dev/null; log "$2 powered off" ;;
  start) [ -n "${2:-}" ] || die "start NODE"; "${VIRSH[@]}" start "$(domain_of "$2")" >/dev/null; log "$2 powered on" ;;
  reset) [ -n "${2:-}" ] || die "reset NODE"; "${VIRSH[@]}" reset "$(domain_of "$2")" >/dev/null; log "$2 reset" ;;
  await-reboot)
    [ -n "${2:-}" ] || die "await-reboot NODE [SECS]"
    # libvirt's reboot event: the guest reset itself at the end of its shutdown. (Read
    # whole: a `grep -q` on the pipe would stop virsh with SIGPIPE before it exits.)
    events=$("${VIRSH[@]}" event --domain "$(domain_of "$2")" --event reboot --timeout "${3:-600}")
    [[ $events == *"'reboot'"* ]] || die "$2 did not reboot within ${3:-600} s"
    log "$2 rebooted" ;;
  consoles) cmd_consoles "${2:-40}" >&3 ;;
  heartbeat) [ $# -eq 3 ] || die "heartbeat NODE cut|heal"; cmd_heartbeat "$2" "$3" ;;
  *) sed -n '2,28p' "$0" >&2; exit 2 ;;
esac
