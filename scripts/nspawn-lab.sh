#!/usr/bin/env bash
# The container lab of the fast Ansible/molecule tier: three Debian 12 systemd-nspawn
# containers (systemd as PID 1) on a private bridge, reachable from the host over SSH.
#
#   scripts/nspawn-lab.sh [--prefix P] up       build the lab (reuses a healthy one)
#   scripts/nspawn-lab.sh [--prefix P] down     remove everything of lab P, also after a
#                                               killed earlier run; never fails on "already gone"
#   scripts/nspawn-lab.sh [--prefix P] status   JSON summary; exit 0 when every node runs
#   scripts/nspawn-lab.sh [--prefix P] kill N   power loss of node N: SIGKILL to its PID 1 (the
#                                               whole pid namespace dies at once) and its link
#                                               cut (the netns outlives the processes and would
#                                               go on answering ARP/ping for its addresses)
#   scripts/nspawn-lab.sh [--prefix P] start N  boot node N again on its kept root, with the
#                                               network of a fresh boot (only its own address)
#   scripts/nspawn-lab.sh [--prefix P] link N down|up   cut or restore node N's link only
#
# Prefix P (default hkm, or HAKEEP_LAB_PREFIX) names everything the lab makes on the host:
#
#   bridge     P-br0, host address NET.1/24 (NET = HAKEEP_LAB_NET, default 10.214.0).
#              No NAT, no default route in the containers, ip_forward untouched: test
#              traffic never leaves the bridge.
#   nodes      s1 NET.11, s2 NET.12 (servers), c1 NET.50 (client); hostname NAME, nspawn
#              machine name P-NAME. Each has its own netns P-NAME (/run/netns/P-NAME)
#              holding eth1, a veth whose host end P-NAME is on the bridge; its root is an
#              overlay over the cached image (scripts/nspawn-rootfs.sh) at
#              /var/lib/hakeep-lab/P/NAME/root, or a copy of it.
#   volumes    db.img and web.img (sparse, ext4, 256 MiB) on loop devices, bound into both
#              servers as /dev/hakeep-db and /dev/hakeep-web.
#   ssh        root@NODE with /var/lib/hakeep-lab/P/ssh/id_ed25519; the nodes' host keys are
#              in /var/lib/hakeep-lab/P/ssh/known_hosts; `ssh -F .../ssh/config s1` works.
#   summary    /var/lib/hakeep-lab/P/lab.json (also printed on stdout by up and status).
#
# Every wait is bounded. Root, Debian 12, no systemd needed on the host.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_BASE=/var/lib/hakeep-lab

PREFIX=${HAKEEP_LAB_PREFIX:-hkm}
NET=${HAKEEP_LAB_NET:-10.214.0}
ROOTFS_MODE=${HAKEEP_LAB_ROOTFS_MODE:-auto}   # auto (overlay, else copy) | overlay | copy
BOOT_TIMEOUT=${HAKEEP_LAB_BOOT_TIMEOUT:-120}  # seconds for every node to answer on SSH
STOP_TIMEOUT=${HAKEEP_LAB_STOP_TIMEOUT:-30}   # seconds for an orderly shutdown before SIGKILL
LOCK_TIMEOUT=${HAKEEP_LAB_LOCK_TIMEOUT:-600}
VOLUME_SIZE=${HAKEEP_LAB_VOLUME_SIZE:-256M}
# Added to systemd-nspawn's default set (which already has CAP_SYS_ADMIN, so mount works):
# keepalived adds and removes addresses.
CAPABILITIES=${HAKEEP_LAB_CAPABILITIES:-CAP_NET_ADMIN}

NODES=(s1 s2 c1)
declare -A ADDR=([s1]=11 [s2]=12 [c1]=50)
declare -A GROUP=([s1]=hakeep_nodes [s2]=hakeep_nodes [c1]=clients)
SERVERS=(s1 s2)
VOLUMES=(db web)

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

cmd=
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    up | down | status) cmd=$1; shift ;;
    kill | start)
      [ $# -ge 2 ] || usage
      cmd=$1; node=$2; shift 2 ;;
    link)
      { [ $# -ge 3 ] && { [ "$3" = up ] || [ "$3" = down ]; }; } || usage
      cmd=$1; node=$2; updown=$3; shift 3 ;;
    -h | --help) usage ;;
    *) echo "nspawn-lab: unknown argument: $1" >&2; usage ;;
  esac
done
[ -n "$cmd" ] || usage
# Interface names have at most 15 characters: P-br0 and P-NAME.
[[ $PREFIX =~ ^[a-z][a-z0-9]{0,9}$ ]] || { echo "nspawn-lab: prefix must match [a-z][a-z0-9]{0,9}" >&2; exit 2; }
[[ $NET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "nspawn-lab: HAKEEP_LAB_NET must be A.B.C" >&2; exit 2; }

LAB=$LAB_BASE/$PREFIX
BRIDGE=$PREFIX-br0
SSH_DIR=$LAB/ssh
KEY=$SSH_DIR/id_ed25519
KNOWN_HOSTS=$SSH_DIR/known_hosts
SSH_CONFIG=$SSH_DIR/config
SUMMARY=$LAB/lab.json

log() { printf 'nspawn-lab[%s]: %s\n' "$PREFIX" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
# Host tools, installed from apt when missing (command:package).
missing=()
for tool in systemd-nspawn:systemd-container ip:iproute2 losetup:mount mkfs.ext4:e2fsprogs \
  ssh:openssh-client ssh-keygen:openssh-client pgrep:procps flock:util-linux setsid:util-linux; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

netns() { echo "$PREFIX-$1"; }
addr() { echo "$NET.${ADDR[$1]}"; }
is_server() { local s; for s in "${SERVERS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# --- processes ------------------------------------------------------------------------------
# Running and not a zombie (an orphan's zombie lingers until the host's init reaps it).
alive() {
  local state
  [ -n "$1" ] && state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]
}

# The systemd-nspawn processes of this lab: every one whose command line boots a root under
# the lab dir (found in /proc, not through the pid files: a killed `up` may not have written
# them, and a stale one may name an unrelated process by now).
nspawn_pids() {
  local p cmdline
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd-nspawn ] || continue
    cmdline=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    case " $cmdline " in *" -D $LAB/"*) echo "$p" ;; esac
  done
}

# PID 1 of the container NAME as seen from the host: the child of its systemd-nspawn whose
# command is `systemd` (nspawn's intermediate child exits right away).
leader_of() {
  local nspawn=$1
  alive "$nspawn" || return 0
  pgrep -P "$nspawn" -x systemd | head -n1
}

# Every container leader (PID 1 of a pid namespace) whose root carries this lab's marker,
# also those whose systemd-nspawn was killed.
leader_pids() {
  local p nspid
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    nspid=$(awk '/^NSpid:/ { print (NF >= 3 ? $NF : "host") }' "/proc/$p/status" 2>/dev/null) || continue
    [ "$nspid" = 1 ] || continue
    case $(cat "/proc/$p/root/etc/hakeep-lab-id" 2>/dev/null) in "$PREFIX/"*) echo "$p" ;; esac
  done
}

wait_gone() { # timeout pid...
  local deadline=$((SECONDS + $1)) p left
  shift
  while :; do
    left=()
    for p in "$@"; do alive "$p" && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && return 0
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

stop_containers() {
  local nspawns leaders p
  mapfile -t nspawns < <(nspawn_pids)
  mapfile -t leaders < <(leader_pids)
  [ ${#nspawns[@]} -gt 0 ] || [ ${#leaders[@]} -gt 0 ] || return 0
  log "stopping containers (nspawn: ${nspawns[*]:-none}; PID 1: ${leaders[*]:-none})"
  # Orderly: SIGTERM makes systemd-nspawn send SIGRTMIN+3 (poweroff) to the container's
  # systemd; a leader whose nspawn is gone gets SIGRTMIN+3 directly.
  for p in "${nspawns[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${leaders[@]}"; do kill -s RTMIN+3 "$p" 2>/dev/null || true; done
  if ! wait_gone "$STOP_TIMEOUT" "${nspawns[@]}" "${leaders[@]}"; then
    log "no orderly shutdown within ${STOP_TIMEOUT}s: SIGKILL"
    # Killing PID 1 of a pid namespace kills every process in it.
    for p in "${leaders[@]}" $(leader_pids); do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${nspawns[@]}" $(nspawn_pids); do kill -KILL "$p" 2>/dev/null || true; done
    wait_gone 15 "${nspawns[@]}" "${leaders[@]}" || die "processes survived SIGKILL: ${nspawns[*]} ${leaders[*]}"
  fi
}

# --- mounts, network, loops -----------------------------------------------------------------
mounts_below() { # dir: every mount at or below it, deepest first
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r -u
}

unmount_below() {
  local dir=$1 m try
  for try in 1 2 3 4 5; do
    mapfile -t ms < <(mounts_below "$dir")
    [ ${#ms[@]} -eq 0 ] && return 0
    for m in "${ms[@]}"; do umount "$m" 2>/dev/null || { [ "$try" -ge 3 ] && umount -l "$m" 2>/dev/null; } || true; done
    sleep 0.2
  done
  mounts_below "$dir" | grep -q . && die "could not unmount: $(mounts_below "$dir" | tr '\n' ' ')"
  return 0
}

detach_loops() {
  local dev back
  # Only loop devices whose backing file is this lab's (also when already deleted).
  while read -r dev back; do
    case $back in "$LAB/"*) log "detaching $dev ($back)"; losetup -d "$dev" 2>/dev/null || true ;; esac
  done < <(losetup -l -n -O NAME,BACK-FILE 2>/dev/null || true)
}

remove_network() {
  local n
  for n in "${NODES[@]}"; do
    ip link del "$(netns "$n")" 2>/dev/null || true
    ip netns del "$(netns "$n")" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
}

lab_exists() {
  local n
  [ -e "$LAB" ] && return 0
  ip link show "$BRIDGE" >/dev/null 2>&1 && return 0
  for n in "${NODES[@]}"; do [ -e "/run/netns/$(netns "$n")" ] && return 0; done
  losetup -l -n -O BACK-FILE 2>/dev/null | grep -q "^$LAB/" && return 0
  nspawn_pids | grep -q . && return 0
  leader_pids | grep -q . && return 0
  return 1
}

do_down() {
  local lock
  stop_containers
  for lock in "$LAB"/*/nspawn-lock; do
    [ -f "$lock" ] && rm -f "/run/systemd/nspawn/locks/$(cat "$lock")"
  done
  unmount_below "$LAB"
  remove_network
  detach_loops
  if [ -e "$LAB" ]; then
    mounts_below "$LAB" | grep -q . && die "mounts remain under $LAB"
    rm -rf --one-file-system "$LAB"
  fi
}

# --- up ---------------------------------------------------------------------------------------
ssh_base() {
  echo ssh -F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=3 \
    -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o LogLevel=ERROR
}

ssh_ok() { # node
  # shellcheck disable=SC2046
  timeout 10 $(ssh_base) "root@$(addr "$1")" true </dev/null >/dev/null 2>&1
}

prepare_root() { # node rootfs
  local n=$1 rootfs=$2 dir=$LAB/$1 root=$LAB/$1/root
  mkdir -p "$root"
  local mode=$ROOTFS_MODE
  if [ "$mode" = auto ] || [ "$mode" = overlay ]; then
    mkdir -p "$dir/upper" "$dir/work"
    if mount -t overlay "hakeep-lab-$PREFIX-$n" \
      -o "lowerdir=$rootfs,upperdir=$dir/upper,workdir=$dir/work" "$root" 2>"$dir/overlay.err"; then
      mode=overlay
    elif [ "$mode" = overlay ]; then
      die "overlay mount failed: $(cat "$dir/overlay.err")"
    else
      log "$n: overlay failed ($(cat "$dir/overlay.err")), copying the image"
      mode=copy
    fi
  fi
  if [ "$mode" = copy ]; then
    cp -a --reflink=auto "$rootfs/." "$root/"
  fi
  echo "$mode" >"$dir/rootfs-mode"
  # systemd-nspawn's lock on this root (/run/systemd/nspawn/locks/inode-DEV:INO); it stays
  # behind when nspawn is SIGKILLed, so down removes it.
  stat -c 'inode-%d:%i' "$root" >"$dir/nspawn-lock"

  # Identity of this container.
  echo "$n" >"$root/etc/hostname"
  echo "$PREFIX/$n" >"$root/etc/hakeep-lab-id"
  rm -f "$root/etc/machine-id"
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
  echo >>"$root/etc/machine-id"
  chmod 0444 "$root/etc/machine-id"
  {
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    local m
    for m in "${NODES[@]}"; do printf '%s\t%s\n' "$(addr "$m")" "$m"; done
  } >"$root/etc/hosts"

  # SSH: host keys of its own, root logs in with the lab key.
  rm -f "$root"/etc/ssh/ssh_host_*
  ssh-keygen -q -A -f "$root" >/dev/null
  install -d -m 0700 "$root/root/.ssh"
  install -m 0600 "$KEY.pub" "$root/root/.ssh/authorized_keys"
  local pub
  for pub in "$root"/etc/ssh/ssh_host_*_key.pub; do
    printf '%s,%s %s\n' "$n" "$(addr "$n")" "$(cut -d' ' -f1,2 "$pub")" >>"$KNOWN_HOSTS"
  done
}

create_volume() { # name
  local v=$1 img=$LAB/$1.img dev
  truncate -s "$VOLUME_SIZE" "$img"
  mkfs.ext4 -q -F -L "hakeep-$v" "$img"
  dev=$(losetup --find --show "$img")
  echo "$dev" >"$LAB/$v.loop"
  log "volume $v: $img on $dev"
}

start_node() { # node
  local n=$1 args=() v
  args=(-q -D "$LAB/$n/root" --boot --register=no --keep-unit
    --network-namespace-path="/run/netns/$(netns "$n")"
    -M "$PREFIX-$n" --hostname="$n"
    --console=read-only --resolv-conf=off --timezone=off --link-journal=no)
  [ -z "$CAPABILITIES" ] || args+=(--capability="$CAPABILITIES")
  if is_server "$n"; then
    for v in "${VOLUMES[@]}"; do args+=(--bind="$(cat "$LAB/$v.loop"):/dev/hakeep-$v"); done
  fi
  printf '%q ' systemd-nspawn "${args[@]}" >"$LAB/$n.cmd"
  echo >>"$LAB/$n.cmd"
  # The lock (fd 8) must not be inherited: the container would hold it for its lifetime.
  setsid systemd-nspawn "${args[@]}" </dev/null >"$LAB/$n.log" 2>&1 3>&- 8>&- &
  echo $! >"$LAB/$n.pid"
}

wait_nodes() { # node...
  local deadline=$((SECONDS + BOOT_TIMEOUT)) n pending pid
  pending=("$@")
  while [ ${#pending[@]} -gt 0 ]; do
    local still=()
    for n in "${pending[@]}"; do
      pid=$(cat "$LAB/$n.pid")
      alive "$pid" || { tail -n 20 "$LAB/$n.log" >&2; die "$n: systemd-nspawn exited (log: $LAB/$n.log)"; }
      ssh_ok "$n" || still+=("$n")
    done
    pending=("${still[@]+"${still[@]}"}")
    [ ${#pending[@]} -eq 0 ] && break
    [ $SECONDS -ge $deadline ] && die "no SSH within ${BOOT_TIMEOUT}s from: ${pending[*]} (logs in $LAB)"
    sleep 1
  done
}

write_ssh_config() {
  {
    echo "# ssh -F $SSH_CONFIG s1"
    local n
    for n in "${NODES[@]}"; do printf 'Host %s\n  HostName %s\n' "$n" "$(addr "$n")"; done
    cat <<EOF
Host *
  User root
  IdentityFile $KEY
  IdentitiesOnly yes
  UserKnownHostsFile $KNOWN_HOSTS
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
EOF
  } >"$SSH_CONFIG"
}

json_str() { printf '"%s"' "$1"; }

summary() { # writes lab.json and prints it
  local n v first=1 pid leader rootfs mode
  rootfs=$(cat "$LAB/rootfs" 2>/dev/null || true)
  {
    printf '{\n  "prefix": %s,\n  "dir": %s,\n' "$(json_str "$PREFIX")" "$(json_str "$LAB")"
    printf '  "bridge": %s,\n  "bridge_address": %s,\n' "$(json_str "$BRIDGE")" "$(json_str "$NET.1/24")"
    printf '  "rootfs": %s,\n' "$(json_str "$rootfs")"
    printf '  "ssh": {"user": "root", "port": 22, "identity_file": %s, "known_hosts": %s, "config": %s},\n' \
      "$(json_str "$KEY")" "$(json_str "$KNOWN_HOSTS")" "$(json_str "$SSH_CONFIG")"
    printf '  "volumes": {'
    for v in "${VOLUMES[@]}"; do
      [ $first -eq 1 ] || printf ','
      first=0
      printf '\n    %s: {"image": %s, "loop": %s, "device": %s}' "$(json_str "$v")" \
        "$(json_str "$LAB/$v.img")" "$(json_str "$(cat "$LAB/$v.loop" 2>/dev/null || true)")" \
        "$(json_str "/dev/hakeep-$v")"
    done
    printf '\n  },\n  "nodes": ['
    first=1
    for n in "${NODES[@]}"; do
      pid=$(cat "$LAB/$n.pid" 2>/dev/null || true)
      alive "$pid" || pid=
      leader=$(leader_of "$pid")
      mode=$(cat "$LAB/$n/rootfs-mode" 2>/dev/null || true)
      [ $first -eq 1 ] || printf ','
      first=0
      printf '\n    {"name": %s, "address": %s, "prefix_length": 24, "interface": "eth1", "group": %s,' \
        "$(json_str "$n")" "$(json_str "$(addr "$n")")" "$(json_str "${GROUP[$n]}")"
      printf '\n     "netns": %s, "host_veth": %s, "root": %s, "rootfs_mode": %s,' \
        "$(json_str "$(netns "$n")")" "$(json_str "$(netns "$n")")" "$(json_str "$LAB/$n/root")" "$(json_str "$mode")"
      printf '\n     "nspawn_pid": %s, "leader_pid": %s, "log": %s, "devices": [%s]}' \
        "${pid:-null}" "${leader:-null}" "$(json_str "$LAB/$n.log")" \
        "$(is_server "$n" && printf '"/dev/hakeep-db", "/dev/hakeep-web"')"
    done
    printf '\n  ]\n}\n'
  } >"$SUMMARY.tmp"
  mv "$SUMMARY.tmp" "$SUMMARY"
  cat "$SUMMARY" >&3
}

healthy() {
  local n pid
  [ -f "$SUMMARY" ] || return 1
  ip link show "$BRIDGE" >/dev/null 2>&1 || return 1
  for n in "${NODES[@]}"; do
    pid=$(cat "$LAB/$n.pid" 2>/dev/null || true)
    alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ] || return 1
    [ -n "$(leader_of "$pid")" ] || return 1
    ssh_ok "$n" || return 1
  done
}

do_up() {
  local rootfs n v start=$SECONDS
  if healthy; then
    log "already up"
    summary
    return 0
  fi
  if lab_exists; then
    log "removing leftovers of an earlier lab"
    do_down
  fi
  # Two labs on one subnet would steal each other's route.
  local used
  used=$(ip -o -4 addr show | awk -v net="$NET." -v br="$BRIDGE" \
    'index($4, net) == 1 && $2 != br { print $2 " " $4 }')
  [ -z "$used" ] || die "$NET.0/24 is already in use here ($used): pick another HAKEEP_LAB_NET"
  rootfs=$("$SCRIPT_DIR/nspawn-rootfs.sh" 3>&- 8>&-)
  [ -f "$rootfs/.hakeep-rootfs" ] || die "no image at $rootfs"

  mkdir -p "$LAB" "$SSH_DIR"
  chmod 0700 "$SSH_DIR"
  echo "$rootfs" >"$LAB/rootfs"
  ssh-keygen -q -t ed25519 -N '' -C "hakeep-lab-$PREFIX" -f "$KEY"
  : >"$KNOWN_HOSTS"

  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up

  for v in "${VOLUMES[@]}"; do create_volume "$v"; done

  for n in "${NODES[@]}"; do
    ip netns add "$(netns "$n")"
    ip -n "$(netns "$n")" link set lo up
    ip link add "$(netns "$n")" type veth peer name eth1 netns "$(netns "$n")"
    ip link set "$(netns "$n")" master "$BRIDGE" up
    ip -n "$(netns "$n")" addr add "$(addr "$n")/24" dev eth1
    ip -n "$(netns "$n")" link set eth1 up
    prepare_root "$n" "$rootfs"
  done
  write_ssh_config

  for n in "${NODES[@]}"; do start_node "$n"; done
  wait_nodes "${NODES[@]}"
  log "up in $((SECONDS - start)) s"
  summary
}

do_status() {
  local n pid up=1
  if [ ! -d "$LAB" ]; then
    printf '{"prefix": "%s", "state": "down"}\n' "$PREFIX"
    return 3
  fi
  for n in "${NODES[@]}"; do
    pid=$(cat "$LAB/$n.pid" 2>/dev/null || true)
    alive "$pid" && [ -n "$(leader_of "$pid")" ] || up=0
  done
  summary
  [ $up -eq 1 ]
}

# Leaders of node N: the child of its nspawn, or any PID 1 carrying its marker.
node_leaders() {
  local p
  leader_of "$(cat "$LAB/$1.pid" 2>/dev/null || true)"
  for p in $(leader_pids); do
    [ "$(cat "/proc/$p/root/etc/hakeep-lab-id" 2>/dev/null)" = "$PREFIX/$1" ] && echo "$p"
  done
}

do_kill() { # node
  local n=$1 leaders pid
  mapfile -t leaders < <(node_leaders "$n" | sort -u)
  pid=$(cat "$LAB/$n.pid" 2>/dev/null || true)
  if [ ${#leaders[@]} -eq 0 ]; then
    log "$n is not running"
    return 0
  fi
  log "$n: SIGKILL to PID 1 (${leaders[*]}), link down"
  kill -KILL "${leaders[@]}" 2>/dev/null || true
  ip link set "$(netns "$n")" down 2>/dev/null || true
  wait_gone 15 "${leaders[@]}" "$pid" || die "$n did not die within 15s"
}

do_start() { # node
  local n=$1 pid
  { [ -d "$LAB/$n/root" ] && [ -e "/run/netns/$(netns "$n")" ]; } || die "lab $PREFIX has no node $n: run up"
  pid=$(cat "$LAB/$n.pid" 2>/dev/null || true)
  if alive "$pid" && [ -n "$(leader_of "$pid")" ]; then
    log "$n is already running"
  else
    [ -z "$(node_leaders "$n")" ] || do_kill "$n"
    [ -f "$LAB/$n/nspawn-lock" ] && rm -f "/run/systemd/nspawn/locks/$(cat "$LAB/$n/nspawn-lock")"
    # A fresh boot's network: only the node's own address (no floating IPs left behind).
    ip -n "$(netns "$n")" addr flush dev eth1
    ip -n "$(netns "$n")" addr add "$(addr "$n")/24" dev eth1
    ip -n "$(netns "$n")" link set eth1 up
    ip link set "$(netns "$n")" up
    log "$n: booting"
    start_node "$n"
  fi
  wait_nodes "$n"
  summary
}

# Stdout (fd 3 from here on) carries only the JSON summary; every other line this script
# or the commands it runs print goes to stderr.
exec 3>&1 1>&2

mkdir -p /run/lock
exec 8>"/run/lock/hakeep-lab-$PREFIX.lock"
flock -w "$LOCK_TIMEOUT" 8 || die "another nspawn-lab.sh holds the lock of lab $PREFIX"

case $cmd in
  up)
    # A failed up leaves nothing behind (HAKEEP_LAB_KEEP_ON_FAILURE=1 keeps it for a look).
    # shellcheck disable=SC2154 # rc is assigned inside the trap
    trap 'rc=$?; if [ $rc -ne 0 ] && [ "${HAKEEP_LAB_KEEP_ON_FAILURE:-0}" != 1 ]; then
            log "up failed, cleaning up"; do_down || true; fi' EXIT
    do_up
    trap - EXIT
    ;;
  down)
    start=$SECONDS
    if lab_exists; then
      do_down
      log "down in $((SECONDS - start)) s"
    else
      log "nothing to remove"
    fi
    ;;
  status) do_status ;;
  kill | start | link)
    known=0
    for n in "${NODES[@]}"; do [ "$n" = "$node" ] && known=1; done
    [ $known -eq 1 ] || die "unknown node $node (nodes: ${NODES[*]})"
    case $cmd in
      kill) do_kill "$node" ;;
      start) do_start "$node" ;;
      link)
        [ -e "/sys/class/net/$(netns "$node")" ] || die "no link $(netns "$node"): is lab $PREFIX up?"
        ip link set "$(netns "$node")" "$updown"
        log "$node: link $updown"
        ;;
    esac
    ;;
esac
