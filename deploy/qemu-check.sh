#!/usr/bin/env bash
# Runs an ARM build of tutti under qemu-user on the bundled recordings, with
# every shipped model, and compares it with this machine's build: the same
# windows and instruments, every score within 1e-4.
#   deploy/qemu-check.sh target/aarch64-unknown-linux-gnu/release/tutti [X86_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
arm=${1:?usage: deploy/qemu-check.sh ARM_BINARY [X86_BINARY]}
x86=${2:-target/release/tutti}
[ -x "$x86" ] || cargo build --release --locked --bin tutti
case $(file -b "$arm") in
  *aarch64*) qemu=qemu-aarch64-static ;;
  *ARM*) qemu=qemu-arm-static ;;
  *) echo "qemu-check.sh: $arm is not an ARM binary" >&2; exit 2 ;;
esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for model in forest cnn ensemble; do
  for wav in samples/*.wav; do
    name=$model-$(basename "$wav" .wav)
    TUTTI_MODEL= "$x86" analyze --model "models/$model.json" --json "$wav" > "$dir/$name.x86"
    TUTTI_MODEL= "$qemu" "$arm" analyze --model "models/$model.json" --json "$wav" > "$dir/$name.arm"
  done
done
python3 - "$dir" <<'PY'
import json, pathlib, sys
worst, windows, differing, failed = 0.0, 0, 0, False
for x86 in sorted(pathlib.Path(sys.argv[1]).glob("*.x86")):
    a = [json.loads(l) for l in x86.read_text().splitlines()]
    b = [json.loads(l) for l in x86.with_suffix(".arm").read_text().splitlines()]
    if len(a) != len(b):
        print(f"{x86.stem}: {len(a)} windows on x86, {len(b)} on ARM")
        failed = True
    for i, (wa, wb) in enumerate(zip(a, b)):
        if wa["instruments"] != wb["instruments"]:
            print(f"{x86.stem} window {i}: {wa['instruments']} on x86, {wb['instruments']} on ARM")
            failed = True
        d = max(abs(wa["scores"][k] - wb["scores"][k]) for k in wa["scores"])
        differing += d > 1e-4
        worst = max(worst, d)
    windows += len(a)
print(f"qemu-check: {windows} windows, {differing} with a score more than 1e-4 apart, "
      f"largest difference {worst:g}")
sys.exit(1 if failed or worst > 1e-4 else 0)
PY
