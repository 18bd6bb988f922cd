# shellcheck shell=bash
# Shared by the image builders (nspawn-rootfs.sh, lab-box.sh): the host's apt sources and
# removal of build trees that may still have mounts. Source it; it defines functions only.

# Prints "URI SUITE COMPONENTS..." for every enabled `deb` source of the host, from both the
# one-line format (*.list) and deb822 (*.sources).
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' "$f" | awk '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if (i + 1 <= NF) { line = $i " " $(i + 1); for (j = i + 2; j <= NF; j++) line = line " " $j; print line }
      }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
          nu = split(uris, u, " "); ns = split(suites, s, " ")
          for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) print u[a] " " s[b] " " comps
        }
        types = ""; uris = ""; suites = ""; comps = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
        if (key == "types") types = $0
        else if (key == "uris") uris = $0
        else if (key == "suites") suites = $0
        else if (key == "components") comps = $0
        else if (key == "enabled") enabled = tolower($0)
      }
      END { flush() }' "$f"
  done
}

# Unmounts everything at or below $1 (deepest first), so rm never crosses into a mount.
unmount_below() {
  local dir=$1 m
  for _ in 1 2 3; do
    mapfile -t mounts < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' \
      /proc/self/mountinfo | sort -r)
    [ ${#mounts[@]} -gt 0 ] || return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

remove_tree() {
  unmount_below "$1"
  rm -rf --one-file-system "$1"
}

# Prints the Debian mirror to debootstrap $1 (a suite) from: HAKEEP_APT_MIRROR, else the
# first of the host's sources ($2, host_sources' output) for that suite.
image_mirror() {
  local suite=$1 sources=$2
  if [ -n "${HAKEEP_APT_MIRROR:-}" ]; then
    echo "$HAKEEP_APT_MIRROR"
  else
    awk -v s="$suite" '$2 == s { print $1; exit }' <<<"$sources"
  fi
}

# Writes an image's sources.list: the host's sources ($4) of suite $2 and its -updates and
# -security, else the mirror $3. $1 the image's root, $5 who writes it (for the header).
write_image_sources() {
  local root=$1 suite=$2 mirror=$3 sources=$4 writer=$5
  {
    echo "# Written by hakeep's $writer from the build host's apt sources."
    awk -v s="$suite" '$2 == s || $2 == s "-updates" || $2 == s "-security" { print "deb " $0 }' \
      <<<"$sources" | sort -u
  } >"$root/etc/apt/sources.list"
  grep -q "^deb .* $suite " "$root/etc/apt/sources.list" \
    || echo "deb $mirror $suite main" >>"$root/etc/apt/sources.list"
}

# Runs a command in the image at $1 with a clean, non-interactive environment.
in_image() {
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"
}
