# shellcheck shell=bash
# Package helpers of the install scripts (Debian, root). Source it; functions only.

# Prints the packages among the arguments that dpkg does not have installed.
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# Refreshes apt's lists, then installs the arguments (packages and apt-get options).
apt_install() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
