#!/usr/bin/env bash
# Builds hakeep's .deb (cargo-deb) and .rpm (cargo-generate-rpm) from this tree and prints
# their paths on stdout, one a line (logs go to stderr). `make package`; tested by
# scripts/test-package.sh (`make package-test`).
#
#   1. installs the pinned cargo-deb and cargo-generate-rpm (`cargo install --locked`) when
#      missing or at another version: about 6 minutes on 2 cores, once per CARGO_HOME;
#   2. `cargo build --release --locked -p hakeep`;
#   3. generates into target/package-assets/ (the asset lists of helpers/hakeep/Cargo.toml
#      point there; rebuilt from scratch each run): the man pages (`hakeep man`, gzip'ed),
#      the bash/zsh/fish completions (`hakeep completions`), a stripped copy of the binary
#      (cargo-generate-rpm does not strip), the Debian copyright file (from LICENSE) and
#      the changelog (version from Cargo.toml, date of the last commit);
#   4. `cargo deb -p hakeep --no-build` and `cargo generate-rpm -p helpers/hakeep`.
#
# Runs from a fresh clone as root (Debian 12); installs dpkg-dev and binutils with apt if
# they are missing (dpkg-shlibdeps computes the .deb's Depends; strip).
#
#   scripts/build-package.sh --previous   also builds target/debian/previous/, the same
#                                         binary as a .deb of version VERSION~previous (older
#                                         than VERSION): what the fast tier's rolling-upgrade
#                                         test converges with before it upgrades
set -euo pipefail

previous=false
case ${1:-} in
  --previous) previous=true ;;
  "") ;;
  *) echo "usage: $0 [--previous]" >&2; exit 2 ;;
esac

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH=$CARGO_BIN:$PATH
CARGO=${CARGO:-cargo}

log() { printf 'build-package: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Stdout carries only the packages' paths (fd 3).
exec 3>&1 1>&2
cd "$REPO"

command -v "$CARGO" >/dev/null || die "cargo is missing: install the Rust toolchain (rustup)"

. "$REPO/scripts/lib/apt.sh"
need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v strip >/dev/null || need+=(binutils)
command -v gzip >/dev/null || need+=(gzip)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing ${need[*]} (apt, as root)"
  log "installing ${need[*]}"
  apt_install "${need[@]}"
fi

# --- 1. the packaging tools, pinned ----------------------------------------------------------
# Prints the version of cargo subcommand $1 ("cargo-deb 3.8.0" -> 3.8.0) in CARGO_HOME's
# bin, where `cargo install` puts it and cargo looks first; nothing if absent. Only there:
# a copy elsewhere on PATH would hide a fresh CARGO_HOME's cold path (CI's).
tool_version() { "$CARGO_BIN/$1" --version 2>/dev/null | awk 'NR == 1 { print $2 }' || true; }
install_tool() {
  local crate=$1 version=$2 start=$SECONDS
  if [ "$(tool_version "$crate")" = "$version" ]; then
    log "$crate $version: installed"
    return 0
  fi
  log "installing $crate $version (cargo install --locked; minutes)"
  nice "$CARGO" install --locked --quiet --force "$crate" --version "=$version" \
    || die "cargo install $crate $version failed"
  [ "$(tool_version "$crate")" = "$version" ] \
    || die "$crate $version installed, but $CARGO_BIN/$crate does not say so"
  log "$crate $version installed in $((SECONDS - start)) s"
}
install_tool cargo-deb "$CARGO_DEB_VERSION"
install_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"

# --- 2. the release binary -------------------------------------------------------------------
start=$SECONDS
log "cargo build --release --locked -p hakeep"
nice "$CARGO" build --release --locked -p hakeep
log "built in $((SECONDS - start)) s"

# The package's version, maintainer and the real target directory (CARGO_TARGET_DIR etc.).
# shellcheck disable=SC2016 # $auto etc. are not shell expansions
meta=$("$CARGO" metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "hakeep")
print(p["version"])
print(p["metadata"]["deb"]["maintainer"])
print(p["metadata"]["deb"]["copyright"])
print(m["target_directory"])')
{ read -r version; read -r maintainer; read -r copyright; read -r target_dir; } <<<"$meta"
bin=$target_dir/release/hakeep
[ -x "$bin" ] || die "no release binary at $bin"

# --- 3. the generated assets -----------------------------------------------------------------
# Fixed path: helpers/hakeep/Cargo.toml names it (relative to the repository).
assets=$REPO/target/package-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
# Reproducible: file dates and the changelog's date are the last commit's.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
commit=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

"$bin" man "$assets/man"
shopt -s nullglob
pages=("$assets"/man/*.1)
shopt -u nullglob
[ ${#pages[@]} -gt 0 ] || die "hakeep man wrote no page"
[ -f "$assets/man/hakeep.1" ] || die "hakeep man wrote no hakeep.1"
gzip -9n "${pages[@]}"

"$bin" completions bash >"$assets/completions/hakeep.bash"
"$bin" completions zsh >"$assets/completions/_hakeep"
"$bin" completions fish >"$assets/completions/hakeep.fish"
for f in "$assets"/completions/*; do
  [ -s "$f" ] || die "empty completion script $f"
done

strip --strip-unneeded --remove-section=.comment -o "$assets/hakeep" "$bin"

# Debian's machine-readable copyright format; the license text is LICENSE's, from its
# "Permission is hereby granted" paragraph on (an empty line becomes " .").
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: hakeep"
  echo "Upstream-Contact: $maintainer"
  echo
  echo "Files: *"
  echo "Copyright: $copyright"
  echo "License: Expat"
  awk '/^Permission is hereby granted/ { on = 1 } on { print ($0 == "" ? " ." : " " $0) }' "$REPO/LICENSE"
} >"$assets/copyright"
grep -q '^ Permission is hereby granted' "$assets/copyright" || die "LICENSE has no MIT permission notice"

# A native package's changelog (Debian format, one entry: this build).
{
  echo "hakeep ($version) unstable; urgency=medium"
  echo
  echo "  * Built from git commit $commit."
  echo
  echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$assets/changelog.gz"
touch -d "@$SOURCE_DATE_EPOCH" "$assets"/* "$assets"/*/*

# --- 4. the packages -------------------------------------------------------------------------
rm -f "$target_dir"/debian/hakeep_*.deb "$target_dir"/generate-rpm/hakeep-*.rpm
# The previous-version .deb first: cargo-deb removes the current one from target/debian
# when it writes a package elsewhere.
old=""
if $previous; then
  rm -rf "$target_dir/debian/previous"
  mkdir -p "$target_dir/debian/previous"
  old=$("$CARGO" deb -p hakeep --no-build --locked --deb-version "$version~previous" \
    --output "$target_dir/debian/previous/" 3>&- 2> >(grep -v \
    "^warning: Only source paths starting with exactly 'target/release/'.*/target/package-assets/" >&2))
  [ -f "$old" ] || die "cargo deb printed no package path for the previous version ($old)"
  log "previous version: $old"
fi
start=$SECONDS
log "cargo deb -p hakeep --no-build"
# cargo-deb warns about every asset under target/ but not under target/release/ (it would
# not build them: build-package.sh made them above); its other messages pass.
deb=$("$CARGO" deb -p hakeep --no-build --locked 3>&- 2> >(grep -v \
  "^warning: Only source paths starting with exactly 'target/release/'.*/target/package-assets/" >&2))
log "cargo generate-rpm -p helpers/hakeep"
"$CARGO" generate-rpm -p helpers/hakeep 3>&-
shopt -s nullglob
rpms=("$target_dir"/generate-rpm/hakeep-*.rpm)
shopt -u nullglob
[ -f "$deb" ] || die "cargo deb printed no package path ($deb)"
[ ${#rpms[@]} -eq 1 ] || die "expected one rpm in $target_dir/generate-rpm, found ${#rpms[@]}"
log "packaged in $((SECONDS - start)) s"
printf '%s\n' "$deb" "${rpms[0]}" >&3
[ -z "$old" ] || printf '%s\n' "$old" >&3

