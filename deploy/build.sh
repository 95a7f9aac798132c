#!/usr/bin/env bash
# Builds the tutti binary for ARM with Debian's cross compilers, no Docker:
#   deploy/build-arm.sh [aarch64] [armv7]      (default: both)
# As root it installs what is missing (the cross gcc, the target's ALSA
# development files, qemu-user-static to run the result). Binaries land in
# target/<triple>/release/tutti; run one with `qemu-aarch64-static BINARY`
# (no -L: the multiarch libraries are found by the normal loader paths).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- aarch64 armv7
export DEBIAN_FRONTEND=noninteractive
for arch in "$@"; do
  case $arch in
    aarch64) triple=aarch64-unknown-linux-gnu; deb=arm64; gnu=aarch64-linux-gnu ;;
    armv7) triple=armv7-unknown-linux-gnueabihf; deb=armhf; gnu=arm-linux-gnueabihf ;;
    *) echo "build-arm.sh: unknown target '$arch' (aarch64 or armv7)" >&2; exit 2 ;;
  esac
  if ! command -v "$gnu-gcc" >/dev/null || [ ! -e "/usr/lib/$gnu/pkgconfig/alsa.pc" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "build-arm.sh: needs $gnu-gcc and libasound2-dev:$deb; run as root to install them" >&2
      exit 1
    fi
    dpkg --add-architecture "$deb"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "gcc-$gnu" "libc6-dev-$deb-cross" \
      pkg-config "libasound2-dev:$deb" qemu-user-static >/dev/null
  fi
  rustup target add "$triple" >/dev/null
  var=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  env "CARGO_TARGET_${var}_LINKER=$gnu-gcc" PKG_CONFIG_ALLOW_CROSS=1 \
    "PKG_CONFIG_LIBDIR=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig" \
    cargo build --release --locked --target "$triple" --bin tutti
  bin="target/$triple/release/tutti"
  echo "$bin: $(stat -c %s "$bin") bytes"
done
