#!/usr/bin/env bash
# The packaging tools, pinned and kept under target/tools (nothing global):
# cargo-zigbuild and cargo-deb from crates.io, zig from PyPI's ziglang.
# The build scripts put target/tools/venv/bin and target/tools/bin first on
# PATH; cargo-zigbuild finds zig as `python3 -m ziglang`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/tools
for crate in cargo-zigbuild@0.24.1 cargo-deb@3.8.0; do
  name=${crate%@*} version=${crate#*@}
  if ! "$tools/bin/$name" --version 2>/dev/null | grep -q "$version"; then
    echo "tools.sh: installing $name $version"
    cargo install --quiet --locked --root "$tools" "$name" --version "$version"
  fi
done
if ! "$tools/venv/bin/python3" -m ziglang version >/dev/null 2>&1; then
  echo "tools.sh: installing zig (PyPI ziglang 0.17.1)"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check ziglang==0.17.1
fi
