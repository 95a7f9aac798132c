#!/usr/bin/env bash
# Peak memory of `tutti analyze` on a long recording: an hour by default,
# 44.1 kHz 16-bit stereo (so decoding, downmix and resampling all run).
#   bench/peak_rss.sh [MINUTES] [TUTTI_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
bin=${2:-target/recipe/tutti}
[ -x "$bin" ] || cargo build --profile recipe --bin tutti
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
.venv/bin/python - "$dir/long.wav" "$minutes" <<'PY'
import sys, numpy as np, soundfile as sf
path, minutes = sys.argv[1], float(sys.argv[2])
parts = [sf.read(f"samples/{n}.wav", dtype="int16")[0] for n in ("piano", "violin_cello", "flute_bassoon")]
clip = np.concatenate(parts)
with sf.SoundFile(path, "w", 44100, 2, "PCM_16") as f:
    left = int(minutes * 60 * 44100)
    while left > 0:
        n = min(left, len(clip))
        f.write(np.stack([clip[:n], clip[:n]], axis=1))
        left -= n
PY
ls -l "$dir/long.wav" | awk '{printf "input: %.0f MB on disk\n", $5 / 1e6}'
/usr/bin/time -f "peak RSS %M KiB, wall %e s, user %U s, system %S s" "$bin" analyze --json "$dir/long.wav" > "$dir/out.jsonl"
echo "windows: $(wc -l < "$dir/out.jsonl")"
