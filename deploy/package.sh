#!/usr/bin/env bash
# Debian packages of tutti, made with cargo-deb from the [package.metadata.deb]
# section of Cargo.toml:
#   deploy/package.sh [amd64] [arm64] [armhf]      (default: all three)
# Each binary is built by deploy/build.sh (release, glibc 2.31 floor) unless
# it is already there and newer than the sources; PROFILE=recipe packages
# the quick x86 build (target/recipe/tutti) as amd64 instead, which is what CI
# installs and upgrades with deploy/deb-check.sh. DEB_VERSION overrides the
# package version (default: Cargo's, revision 1).
# Every package is then checked: its files, its conffiles, its maintainer
# scripts (sh -n) and lintian, which must report no error.
# Packages land in target/packages/ (cargo-deb's own target/debian/ keeps
# only the latest of each architecture).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- amd64 arm64 armhf
profile=${PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-target}
export PATH="$PWD/target/tools/venv/bin:$PWD/target/tools/bin:$PATH"
deploy/tools.sh
command -v file >/dev/null || { echo "package.sh: needs file(1) to check the binaries: apt-get install file" >&2; exit 1; }
version_args=()
[ -z "${DEB_VERSION:-}" ] || version_args=(--deb-version "$DEB_VERSION")
for deb in "$@"; do
  case $deb in
    amd64) arch=x86_64 triple=x86_64-unknown-linux-gnu ;;
    arm64) arch=aarch64 triple=aarch64-unknown-linux-gnu ;;
    armhf) arch=armv7 triple=armv7-unknown-linux-gnueabihf ;;
    *) echo "package.sh: unknown architecture '$deb' (amd64, arm64 or armhf)" >&2; exit 2 ;;
  esac
  if [ "$profile" = recipe ]; then
    [ "$deb" = amd64 ] || { echo "package.sh: PROFILE=recipe is for amd64 only" >&2; exit 2; }
    # CI's training step made it, with the synth feature: a build without
    # it would recompile, so a current one is taken as it is.
    bin=$target_dir/recipe/tutti
    build=(cargo build --profile recipe --locked --bin tutti)
    # Unstripped: cargo-deb strips it with this machine's strip.
    args=(--profile recipe)
  else
    bin=$target_dir/$triple/release/tutti
    build=(deploy/build.sh "$arch")
    # Stripped by the release profile already.
    args=(--target "$triple" --no-strip)
  fi
  if [ ! -x "$bin" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$bin" | head -n 1)" ]; then
    "${build[@]}"
  fi
  made=$(cargo deb --no-build "${args[@]}" "${version_args[@]}" 2>&1 | tail -n 1)
  [ -f "$made" ] || { echo "package.sh: cargo deb failed for $deb: $made" >&2; exit 1; }
  mkdir -p "$target_dir/packages"
  out=$target_dir/packages/$(basename "$made")
  mv "$made" "$out"
  [ "$(dpkg-deb -f "$out" Architecture)" = "$deb" ] \
    || { echo "package.sh: $out is not an $deb package" >&2; exit 1; }

  # Contents: exactly these files, the binary for the right machine.
  files=$(dpkg-deb -c "$out" | awk '$1 !~ /^d/ {print $NF}' | sed 's|^\./|/|' | sort)
  want=$(printf '%s\n' /etc/tutti/tutti.toml /usr/bin/tutti \
    /usr/lib/systemd/system/tutti.service /usr/share/doc/tutti/MODEL.md \
    /usr/share/doc/tutti/README.md /usr/share/doc/tutti/changelog.Debian.gz \
    $(for page in docs/*.md docs/img/*.png; do echo "/usr/share/doc/tutti/$page"; done) \
    $(for example in deploy/examples/*; do echo "/usr/share/doc/tutti/examples/${example##*/}"; done) \
    /usr/share/doc/tutti/copyright /usr/share/tutti/models/tutti.json \
    /usr/share/tutti/models/forest.json /usr/share/tutti/models/forest.onnx \
    /usr/share/tutti/models/cnn.json /usr/share/tutti/models/cnn.onnx \
    /usr/share/tutti/models/ensemble.json /usr/share/tutti/models/ensemble.onnx | sort)
  if [ "$files" != "$want" ]; then
    echo "package.sh: $out holds other files than expected:" >&2
    diff <(echo "$want") <(echo "$files") >&2 || true
    exit 1
  fi
  dir=$(mktemp -d)
  dpkg-deb -x "$out" "$dir"
  dpkg-deb -e "$out" "$dir/DEBIAN"
  case $(file -b "$dir/usr/bin/tutti") in
    *x86-64*) machine=amd64 ;;
    *aarch64*) machine=arm64 ;;
    *"ARM, EABI5"*) machine=armhf ;;
    *) machine=unknown ;;
  esac
  [ "$machine" = "$deb" ] || { echo "package.sh: $out holds a binary for $machine" >&2; exit 1; }
  [ "$(cat "$dir/DEBIAN/conffiles")" = /etc/tutti/tutti.toml ] \
    || { echo "package.sh: $out: conffiles should be /etc/tutti/tutti.toml only" >&2; exit 1; }
  cmp -s "$dir/usr/lib/systemd/system/tutti.service" deploy/tutti.service \
    || { echo "package.sh: $out: the unit differs from deploy/tutti.service" >&2; exit 1; }
  for script in postinst prerm postrm; do
    sh -n "$dir/DEBIAN/$script" || { echo "package.sh: $out: $script is not valid sh" >&2; exit 1; }
  done
  grep -q 'deb-systemd-helper enable tutti.service' "$dir/DEBIAN/postinst" \
    || { echo "package.sh: $out: postinst does not enable the unit" >&2; exit 1; }
  grep -q 'rm -rf /var/lib/private/tutti' "$dir/DEBIAN/postrm" \
    || { echo "package.sh: $out: postrm does not purge the state" >&2; exit 1; }
  rm -rf "$dir"
  if command -v lintian >/dev/null; then
    # Warnings are shown, errors fail. (As root lintian says so first; that
    # line is not about the package.)
    status=0
    report=$(lintian --fail-on error --suppress-tags initial-upload-closes-no-bugs "$out" 2>&1) \
      || status=$?
    grep -v 'running with root privileges' <<<"$report" || true
    [ "$status" = 0 ] || { echo "package.sh: lintian reports errors in $out" >&2; exit 1; }
  fi
  echo "$out: $(stat -c %s "$out") bytes, binary $(dpkg-deb --fsys-tarfile "$out" \
    | tar -xO ./usr/bin/tutti | wc -c) bytes"
done
