#!/usr/bin/env python3
"""Any model, heard through `tutti analyze` (tract, the thresholds of its own
sidecar), on a rebuild's test split, scored as train.py scores the model it
fits: the whole test split, its parts (dry, rooms, held-out movements, random
passages) and each SoundFont. It answers where an older model (the shipped
one, say) stands on data it was not built for, beside a new recipe's.

    python models/train/heard.py work/features.npz models/tutti.json /tmp/new/tutti.json

The windows are matched to the feature file's by recording and start time;
the labels are the feature file's. With `--json`, the figures are also
written there, for the model card.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from train import column, load, metrics, test_subsets


def scores_of(model, wavs, tutti):
    """{(recording id, start): scores in the sidecar's label order}, the
    sidecar's labels and its relative threshold."""
    sidecar = json.loads(Path(model).read_text())
    labels = sidecar["labels"]
    done = subprocess.run([tutti, "analyze", "--json", "--model", model, *wavs],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{model}: tutti analyze failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    out = {}
    for line in done.stdout.splitlines():
        w = json.loads(line)
        out[(Path(w["file"]).stem, round(w["start"], 3))] = [w["scores"][l["name"]] for l in labels]
    return out, labels, sidecar.get("relative_threshold", 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="NPZ written by `tutti features DIR --out` (its source holds the WAVs)")
    ap.add_argument("models", nargs="+", help="model sidecars (.json)")
    ap.add_argument("--dataset", help="the rendered dataset (default: the feature file's source)")
    ap.add_argument("--tutti", default="target/recipe/tutti")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--all", action="store_true",
                    help="score every recording, train split too: for data no model was fitted on")
    args = ap.parse_args()

    x, y, rec, split, meta = load(args.features)
    start = np.load(args.features)["start"]
    names = [l["name"] for l in meta["labels"]]
    dataset = Path(args.dataset or meta["source"])
    test = np.arange(len(split)) if args.all else np.where(split == 1)[0]
    ids = meta["recordings"]
    part_dir = {0: "train_data", 1: "test_data"}
    wavs = sorted({str(dataset / part_dir[int(split[i])] / f"{ids[rec[i]]}.wav") for i in test})
    missing = [w for w in wavs if not Path(w).is_file()]
    if missing:
        sys.exit(f"{missing[0]}: no such file ({len(missing)} of {len(wavs)} test recordings missing)")
    font = column(rec[test], meta, "soundfont")
    print(f"{len(test)} {'' if args.all else 'test '}windows of {len(wavs)} recordings in {dataset}")
    print("| model | windows | macro-F1 | micro-F1 | mAP |")
    print("|---|---|---|---|---|")
    results = {}
    whole = "all" if args.all else "test split"
    for model in args.models:
        got, labels, relative = scores_of(model, wavs, args.tutti)
        if [l["name"] for l in labels] != names:
            sys.exit(f"{model}: labels {[l['name'] for l in labels]} differ from the feature file's {names}")
        keys = [(ids[r], round(float(s), 3)) for r, s in zip(rec[test], start[test])]
        absent = [k for k in keys if k not in got]
        if absent:
            sys.exit(f"{model}: tutti analyze gave no window for {absent[0]} ({len(absent)} of {len(keys)})")
        p = np.array([got[k] for k in keys], dtype=np.float32)
        t = np.array([l["threshold"] for l in labels], dtype=np.float32)
        results[Path(model).name] = score(model, y[test], p, t, names, rec[test], meta, relative, font, whole)
    if args.json:
        args.json.write_text(json.dumps({"dataset": str(dataset), "recordings": len(wavs), "models": results},
                                        indent=1) + "\n")


def score(model, yt, p, t, names, rec, meta, relative, font, whole):
    """Metrics of one model's scores, whole and by part; printed as a table."""
    parts = {whole: metrics(yt, p, t, names, relative=relative)}
    parts.update(test_subsets(yt, p, t, names, rec, meta, relative))
    for f in sorted(set(font)):
        parts[f] = metrics(yt[font == f], p[font == f], t, names, relative=relative)
    for part, m in parts.items():
        print(f"| {model}: {part} | {m['windows']} | {m['macro_f1']:.3f} | {m['micro_f1']:.3f} | {m['mAP']:.3f} |")
    return parts


if __name__ == "__main__":
    main()
