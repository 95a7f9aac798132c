#!/usr/bin/env python3
"""LOFO across renderings: the recipe's forest fitted on one rendering of a
dataset and tested on others of the same music, fold by fold.

Every NPZ is `tutti features` of the same `tutti-synth` dataset (the same
--seed, clips, ids and splits) rendered another way: say `--fluid 0`,
`--fluid 0.5` and `--fluid 1` (the second engine for none, half or all of
the clips). For each `--fit` file and each sample family, the forest is
fitted on the other families' train split of that file (thresholds and the
relative threshold on their validation recordings, as `train.py` does) and
tested on the held-out family's test split of every `--test` file: does
rendering the training audio another way help on a family the model never
heard, rendered the usual way and another way?

    python models/train/lofo_across.py --fit work/plain.npz work/half.npz \
        --test work/plain.npz work/fluid.npz --forest-input both --max-features 0.2
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from evaluate import (choose_relative, choose_thresholds, families_of, groups_of, load,  # noqa: E402
                      metrics, room_mask, split_fit_validation)
from train import FOREST_INPUTS, fit_recipe, max_features, proba  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", nargs="+", required=True, help="NPZ files to fit on, one model each")
    ap.add_argument("--test", nargs="+", required=True, help="NPZ files to test on (the same windows)")
    ap.add_argument("--pca", type=int, default=16)
    ap.add_argument("--trees", type=int, default=60)
    ap.add_argument("--max-depth", type=int, default=None)
    ap.add_argument("--min-samples-split", type=int, default=30)
    ap.add_argument("--min-samples-leaf", type=int, default=1)
    ap.add_argument("--max-features", type=max_features, default=0.2)
    ap.add_argument("--forest-input", choices=sorted(FOREST_INPUTS), default="both")
    ap.add_argument("--validation", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = ap.parse_args()

    data = {path: load(path) for path in dict.fromkeys(args.fit + args.test)}
    _, y, rec, split, meta = data[args.fit[0]]
    for path, (x, y_o, rec_o, split_o, meta_o) in data.items():
        if (meta_o["feature_set"] != meta["feature_set"] or not np.array_equal(y_o, y)
                or not np.array_equal(rec_o, rec) or not np.array_equal(split_o, split)):
            sys.exit(f"{path}: not the same windows, labels and splits as {args.fit[0]}")
    names = [str(k) for k in range(y.shape[1])]
    groups = groups_of(rec, meta)
    room = room_mask(rec, meta)
    rows = ["| fitted on | tested on | held out | macro-F1 dry | mAP dry | macro-F1 rooms | mAP rooms |",
            "|---|---|---|---|---|---|---|"]
    worst = {}
    for fit_path in args.fit:
        x = data[fit_path][0]
        for held, in_held in families_of(rec, meta):
            fit, val = split_fit_validation(np.where((split == 0) & ~in_held)[0], groups, args)
            test = np.where((split == 1) & in_held)[0]
            rf, z, _, _, _ = fit_recipe(x, y, fit, args.pca, args)
            p_val = proba(rf, z(val))
            thresholds = choose_thresholds(y[val], p_val)
            relative = choose_relative(y[val], p_val, thresholds)
            known = y[fit].sum(axis=0) > 0
            for test_path in args.test:
                p = proba(rf, z(test, data[test_path][0]))
                cells = []
                for mask in (~room[test], room[test]):
                    m = metrics(y[test][mask], p[mask], thresholds, names, known=known, relative=relative)
                    cells += [m["macro_f1"], m["mAP"]]
                key = (fit_path, test_path)
                worst[key] = [min(a, b) for a, b in zip(worst.get(key, cells), cells)]
                rows.append(f"| {fit_path} | {test_path} | {held} | " + " | ".join(map(str, cells)) + " |")
                print(rows[-1], flush=True)
    for (fit_path, test_path), cells in worst.items():
        rows.append(f"| {fit_path} | {test_path} | **worst fold** | " + " | ".join(map(str, cells)) + " |")
    table = "\n".join(rows) + "\n"
    print("\n" + table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
