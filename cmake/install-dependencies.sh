#!/usr/bin/env bash
# Installs the Debian 12 packages that keyfolio's build, tests and benchmarks
# need, the PostgreSQL server the tests start included. Does nothing when
# they are all present. Run as root (or through sudo).
#
#   cmake/install-dependencies.sh            # build + tests + benchmarks
#
# Debian 12's default libboost-dev is 1.74, which has neither Boost.JSON nor
# boost::system::result, so the 1.81 packages are named explicitly.
set -euo pipefail

packages=(
  ca-certificates
  cmake
  g++
  make
  pkg-config
  libboost-json1.81-dev
  libboost-system1.81-dev
  libsodium-dev
  catch2
  libsqlite3-dev
  libpq-dev
  postgresql
  libbenchmark-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "keyfolio: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "keyfolio: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
