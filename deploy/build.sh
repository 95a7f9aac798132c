#!/usr/bin/env bash
# Builds the release tutti binary for ARM (and x86_64) without Docker, and
# checks it:
#   deploy/build.sh [aarch64] [armv7] [x86_64]      (default: both ARM ones)
#
# The binaries link against glibc 2.31 (Raspberry Pi OS bullseye, JetPack 5)
# through cargo-zigbuild, which uses zig as the cross linker; ALSA comes from
# Debian's multiarch packages (libasound2-dev:arm64 / :armhf). With
# TOOLCHAIN=gcc it links with Debian's cross gcc instead: simpler, but the
# binary then needs the build machine's glibc (2.35 on bookworm).
# As root it installs what is missing. Binaries land in
# target/<triple>/release/tutti (or under $CARGO_TARGET_DIR); run one with `qemu-aarch64-static BINARY`
# (no -L: the multiarch libraries are found by the normal loader paths).
# Each binary is checked: no glibc symbol newer than $GLIBC_FLOOR (2.31 with
# zig).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- aarch64 armv7
toolchain=${TOOLCHAIN:-zig}
# With gcc the floor is this machine's own glibc.
floor=${GLIBC_FLOOR:-$([ "$toolchain" = zig ] && echo 2.31 || ldd --version | head -n 1 | grep -o '[0-9.]*$')}
export DEBIAN_FRONTEND=noninteractive
as_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "build.sh: $1 is missing; run as root to install it" >&2
    exit 1
  fi
}
if [ "$toolchain" = zig ]; then
  deploy/tools.sh
  export PATH="$PWD/target/tools/venv/bin:$PWD/target/tools/bin:$PATH"
fi
for arch in "$@"; do
  case $arch in
    aarch64) triple=aarch64-unknown-linux-gnu; deb=arm64; gnu=aarch64-linux-gnu ;;
    armv7) triple=armv7-unknown-linux-gnueabihf; deb=armhf; gnu=arm-linux-gnueabihf ;;
    x86_64) triple=x86_64-unknown-linux-gnu; deb=amd64; gnu=x86_64-linux-gnu ;;
    *) echo "build.sh: unknown target '$arch' (aarch64, armv7 or x86_64)" >&2; exit 2 ;;
  esac
  if [ "$arch" = x86_64 ]; then
    # The native toolchain; only the glibc floor differs from a plain build.
    if [ "$toolchain" = gcc ]; then
      echo "build.sh: x86_64 with TOOLCHAIN=gcc is a plain cargo build --release" >&2
      exit 2
    fi
  elif ! command -v "$gnu-gcc" >/dev/null || ! command -v "$gnu-objdump" >/dev/null \
    || [ ! -e "/usr/lib/$gnu/pkgconfig/alsa.pc" ]; then
    as_root "$gnu-gcc or libasound2-dev:$deb"
    dpkg --add-architecture "$deb"
    apt-get update -qq || echo "build.sh: apt-get update reported errors; trying the install anyway" >&2
    apt-get install -y -qq --no-install-recommends "gcc-$gnu" "libc6-dev-$deb-cross" \
      "binutils-$gnu" pkg-config "libasound2-dev:$deb" qemu-user-static >/dev/null
  fi
  rustup target add "$triple" >/dev/null
  export PKG_CONFIG_ALLOW_CROSS=1 "PKG_CONFIG_LIBDIR=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig"
  start=$(date +%s)
  if [ "$toolchain" = zig ]; then
    # libasound.so itself was linked against bookworm's glibc; those symbols
    # are resolved on the device by its own libasound, so zig must not check
    # them against 2.31.
    RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-Wl,--allow-shlib-undefined" \
      cargo zigbuild --release --locked --target "$triple.$floor" --bin tutti
  else
    var=$(echo "$triple" | tr 'a-z-' 'A-Z_')
    env "CARGO_TARGET_${var}_LINKER=$gnu-gcc" \
      cargo build --release --locked --target "$triple" --bin tutti
  fi
  bin="${CARGO_TARGET_DIR:-target}/$triple/release/tutti"
  newest=$("$gnu-objdump" -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  echo "$bin: $(stat -c %s "$bin") bytes, needs glibc $newest, built in $(( $(date +%s) - start )) s"
  if [ "$(printf '%s\n%s\n' "$newest" "$floor" | sort -V | tail -n 1)" != "$floor" ]; then
    echo "build.sh: $bin needs glibc $newest, newer than the floor $floor" >&2
    exit 1
  fi
done
