#!/usr/bin/env python3
"""Models heard through `tutti analyze` (tract, thresholds from each sidecar)
on a rendered dataset's dry single-instrument test clips of random passages:
per model and SoundFont, the share of windows whose report is exactly the one
instrument playing, its recall, and the extra instruments per window. The
model card's macro-F1 averages over mixtures too; this asks what a solo
player sees.

    python models/train/solo.py work/dataset models/tutti.json /tmp/other/tutti.json
"""
import argparse
import collections
import csv
import json
import subprocess
import sys
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="a tutti-synth output directory (metadata.csv, test_data/)")
    ap.add_argument("models", nargs="+", help="model sidecars (.json)")
    ap.add_argument("--tutti", default="target/recipe/tutti")
    args = ap.parse_args()

    meta = Path(args.dataset) / "metadata.csv"
    try:
        rows = list(csv.DictReader(meta.open()))
    except OSError as e:
        sys.exit(f"{meta}: {e.strerror}")
    clips = {}
    for r in rows:
        playing = r["instruments"].split()
        if r["split"] == "test" and not r.get("rt60") and not r.get("piece") and len(playing) == 1:
            clips[str(Path(args.dataset) / "test_data" / f"{r['id']}.wav")] = (playing[0], r["soundfont"])
    if not clips:
        sys.exit(f"{meta}: no dry single-instrument test clips of random passages")
    print(f"{len(clips)} dry solo test clips")
    print("| model | SoundFont | windows | exactly the instrument | its recall | extra instruments per window |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        done = subprocess.run([args.tutti, "analyze", "--json", "--model", model, *clips],
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{model}: tutti analyze failed: {done.stderr.strip().splitlines()[-1]}")
        tally = collections.defaultdict(lambda: [0, 0, 0, 0])
        for line in done.stdout.splitlines():
            w = json.loads(line)
            true, font = clips[w["file"]]
            got = set(w["instruments"])
            for key in (font, "all"):
                t = tally[key]
                t[0] += 1
                t[1] += got == {true}
                t[2] += true in got
                t[3] += len(got - {true})
        for key, (n, exact, found, extra) in sorted(tally.items(), key=lambda kv: kv[0] == "all"):
            print(f"| {model} | {key} | {n} | {exact / n:.2f} | {found / n:.2f} | {extra / n:.2f} |")


if __name__ == "__main__":
    main()
