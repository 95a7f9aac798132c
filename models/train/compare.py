#!/usr/bin/env python3
"""Compare feature sets (or PCA sizes) on the same rendered data, in and out
of the SoundFont family they were trained on.

Each NPZ is one `tutti features DATASET --set NAME --out FILE` of the same
dataset rendered by `tutti-synth` (its metadata.csv gives each recording's
SoundFont). For every NPZ and every PCA size, three experiments run the
shipped recipe (StandardScaler -> PCA -> multi-label random forest,
per-instrument thresholds chosen on validation recordings of the training
data):

- in-distribution: fit on the train split, test on the test split (held-out
  recordings, same SoundFonts);
- A -> B for each ordered pair of sample families (SoundFonts that share
  samples, `--family`): fit on A's train split, test on every window of B,
  whose timbres the model never heard;
- when the dataset holds score excerpts (`tutti-synth --scores`), three
  tests on the excerpts of held-out movements: fit on the whole train
  split; fit on its random passages only; fit on a random draw of the whole
  train split as large (in recordings) as the random passages, so the two
  last differ only in what the training audio is.

With `--room`, one more NPZ per feature file holds the same dataset
rendered again with `tutti-synth --room 1` (the same music, played into
rooms with noise); every model, still fitted on clean audio, is then also
tested on the room versions of its test windows.

With `--test-on`, one more NPZ per feature file holds another rendering
of the same music (say `tutti-synth --augment 0` beside `--augment 0.5`):
each experiment fits on the first file and tests on the second file's
windows of the same experiment.

    python models/train/compare.py work/seed26.npz work/timbre98.npz --pca 16 32
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train import (FAMILIES, FOREST_INPUTS, choose_thresholds, column, families_of, fit_recipe,  # noqa: E402
                   groups_of, load, max_features, metrics, proba, split_fit_validation)


def experiments(rec, split, meta, families):
    """(name, fit-pool indices, test indices) for the dataset."""
    out = [("in-distribution", np.where(split == 0)[0], np.where(split == 1)[0])]
    groups = families_of(rec, meta, families)
    for a, in_a in groups:
        for b, in_b in groups:
            if a != b:
                out.append((f"{a} -> {b}", np.where((split == 0) & in_a)[0], np.where(in_b)[0]))
    piece = column(rec, meta, "piece") != ""
    held_out = np.where((split == 1) & piece)[0]
    random_only = np.where((split == 0) & ~piece)[0]
    if len(held_out) and len(random_only) and piece[split == 0].any():
        train = np.where(split == 0)[0]
        out.append(("all -> held-out scores", train, held_out))
        out.append(("random passages -> held-out scores", random_only, held_out))
        # As many recordings as the random passages, drawn from all of them.
        recs = np.unique(rec[train])
        keep = np.random.default_rng(0).choice(recs, size=len(np.unique(rec[random_only])), replace=False)
        out.append(("same size, with scores -> held-out scores", train[np.isin(rec[train], keep)], held_out))
    return out


def run(x, y, groups, pool, test, n_pca, args, x_room=None, other=None):
    fit, val = split_fit_validation(pool, groups, args)
    t0 = time.time()
    rf, z, _, _, lost = fit_recipe(x, y, fit, n_pca, args)
    seconds = time.time() - t0
    thresholds = choose_thresholds(y[val], proba(rf, z(val)))
    labels = [str(k) for k in range(y.shape[1])]
    room = None
    if x_room is not None:
        room = metrics(y[test], proba(rf, z(test, x_room)), thresholds, labels)
    if other is not None:
        # Tested on another rendering's windows: its own test rows.
        x_other, y_other = other
        return metrics(y_other[test], proba(rf, z(test, x_other)), thresholds, labels), room, seconds, lost
    return metrics(y[test], proba(rf, z(test)), thresholds, labels), room, seconds, lost


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", nargs="+", help="NPZ files written by `tutti features`")
    ap.add_argument("--pca", type=int, nargs="+", default=[16],
                    help="PCA sizes to try; 0 = no PCA (the forest sees the scaled features)")
    ap.add_argument("--trees", type=int, default=60)
    ap.add_argument("--max-depth", type=int, default=None)
    ap.add_argument("--min-samples-split", type=int, default=30)
    ap.add_argument("--min-samples-leaf", type=int, default=1)
    ap.add_argument("--max-features", type=max_features, default="sqrt")
    ap.add_argument("--forest-input", choices=sorted(FOREST_INPUTS), default="pca",
                    help="what the forest reads (train.py's --forest-input); docs/studies.md's tables before the "
                         "recipe's change to `both` were measured with `pca`")
    ap.add_argument("--validation", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family", action="append", default=None,
                    help=f"comma-separated SoundFont stems that share samples; repeat (default: {FAMILIES})")
    ap.add_argument("--room", nargs="+", default=None,
                    help="the same dataset rendered with rooms, one NPZ per feature file, in the same order")
    ap.add_argument("--test-on", nargs="+", default=None,
                    help="test on another rendering of the dataset (one NPZ per feature file, same order): "
                         "each experiment fits on this file and tests on the other file's windows of the same "
                         "experiment, e.g. models fitted on augmented audio tested on the plain rendering")
    ap.add_argument("--only", nargs="+", default=None,
                    help="run only the experiments whose name contains one of these texts (e.g. 'scores')")
    ap.add_argument("--out", help="also write the table (Markdown) here")
    args = ap.parse_args()

    if args.room and len(args.room) != len(args.features):
        sys.exit("--room needs one NPZ per feature file")
    if args.test_on and len(args.test_on) != len(args.features):
        sys.exit("--test-on needs one NPZ per feature file")
    if args.test_on and args.room:
        sys.exit("--test-on and --room do not combine")
    rows = ["| feature set | PCA | variance lost | experiment | test windows | macro-F1 | micro-F1 | mAP "
            "| macro-F1 mixtures | room: macro-F1 | room: mAP | fit s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, path in enumerate(args.features):
        x, y, rec, split, meta = load(path)
        x_room = None
        if args.room:
            x_room, y_room, rec_room, _, meta_room = load(args.room[n])
            if (meta_room["feature_set"] != meta["feature_set"] or not np.array_equal(y_room, y)
                    or not np.array_equal(rec_room, rec)):
                sys.exit(f"{args.room[n]}: not the same windows and labels as {path}")
        other, tests_there = None, {}
        if args.test_on:
            x_o, y_o, rec_o, split_o, meta_o = load(args.test_on[n])
            if meta_o["feature_set"] != meta["feature_set"]:
                sys.exit(f"{args.test_on[n]}: {meta_o['feature_set']} features, not {meta['feature_set']}")
            other = (x_o, y_o)
            tests_there = {name: test for name, _, test in
                           experiments(rec_o, split_o, meta_o, args.family or FAMILIES)}
        groups = groups_of(rec, meta)
        for n_pca in args.pca:
            if n_pca > x.shape[1]:
                continue
            for name, pool, test in experiments(rec, split, meta, args.family or FAMILIES):
                if args.only and not any(o in name for o in args.only):
                    continue
                if other is not None:
                    if name not in tests_there:
                        continue
                    test = tests_there[name]
                m, room, seconds, lost = run(x, y, groups, pool, test, n_pca, args, x_room, other)
                rm = (f"{room['macro_f1']} | {room['mAP']}") if room else "– | –"
                rows.append(f"| {meta['feature_set']} | {n_pca or 'none'} | {100 * abs(lost):.1f} % | {name} "
                            f"| {m['windows']} "
                            f"| {m['macro_f1']} | {m['micro_f1']} | {m['mAP']} | {m['macro_f1_mixtures']} | {rm} "
                            f"| {seconds:.0f} |")
                print(rows[-1], flush=True)
    table = "\n".join(rows) + "\n"
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
