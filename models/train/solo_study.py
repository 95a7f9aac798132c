#!/usr/bin/env python3
"""Why the current recipe's models report extra instruments on solo playing:
fits variants of the recipe (scaler, PCA, forest, thresholds by F1 on
validation, exactly as train.py) on a features file from rebuild.sh and
reads each on the test split: macro-F1 (all, dry, in rooms) and, on the
windows of dry random-passage clips where exactly one instrument sounds, how
often the report is exactly that instrument, its recall and the extra
instruments per window. The last rows add a relative rule to the best
variant: an instrument is reported only if its score is also at least R
times the window's top score.

    python models/train/solo_study.py work/features.npz
"""
import argparse

import numpy as np
from sklearn.metrics import f1_score

import train as T


def solo(y, pred):
    """Exactly right, recall and extras per window over single-label rows."""
    s = y.sum(axis=1) == 1
    yt, pt = y[s].astype(bool), pred[s]
    return (float(np.mean(np.all(yt == pt, axis=1))), float(np.mean(np.any(yt & pt, axis=1))),
            float(np.mean((pt & ~yt).sum(axis=1))), int(s.sum()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="NPZ written by `tutti features DIR --out` (rebuild.sh: work/features.npz)")
    ap.add_argument("--pca", type=int, default=26)
    ap.add_argument("--trees", type=int, default=60)
    args = ap.parse_args()

    x, y, rec, split, meta = T.load(args.features)
    split_args = argparse.Namespace(seed=0, validation=0.2)
    train_all, test = np.where(split == 0)[0], np.where(split == 1)[0]
    fit, val = T.split_fit_validation(train_all, T.groups_of(rec, meta), split_args)
    dry = T.column(rec, meta, "rt60") == ""
    random_passage = T.column(rec, meta, "piece") == ""
    single_fit = y[fit].sum(axis=1) == 1

    variants = [
        ("recipe (min_samples_split 30)", fit, None, {}),
        ("min_samples_split 10", fit, None, {"min_samples_split": 10}),
        ("single-instrument windows weighted 3x", fit, np.where(single_fit, 3.0, 1.0), {}),
        ("fitted on dry clips only", fit[dry[fit]], None, {}),
        ("fitted on random passages only", fit[random_passage[fit]], None, {}),
        ("fitted on windows of <= 2 instruments", fit[y[fit].sum(axis=1) <= 2], None, {}),
    ]
    yt = y[test]
    mask = dry[test] & random_passage[test]
    print(f"PCA {args.pca}, {args.trees} trees; test windows {len(test)}, dry random-passage solo windows "
          f"{int((mask & (yt.sum(axis=1) == 1)).sum())}")
    print("| variant | nodes | macro-F1 | dry | rooms | solo: exactly right | recall | extras per window |")
    print("|---|---|---|---|---|---|---|---|")

    def row(name, nodes, pred):
        f = lambda m: f1_score(yt[m], pred[m], average="macro", zero_division=0)
        exact, recall, extra, _ = solo(yt[mask], pred[mask])
        print(f"| {name} | {nodes} | {f(np.ones(len(test), bool)):.3f} | {f(dry[test]):.3f} | "
              f"{f(~dry[test]):.3f} | {exact:.2f} | {recall:.2f} | {extra:.2f} |", flush=True)

    kept = None
    for name, rows, weight, extra_kw in variants:
        fit_args = argparse.Namespace(**{"seed": 0, "trees": args.trees, "max_depth": None, "min_samples_leaf": 1,
                                         "min_samples_split": 30, "max_features": "sqrt",
                                         "forest_input": "pca", **extra_kw})
        rf, z, *_ = T.fit_recipe(x, y, rows, args.pca, fit_args, weight)
        pv, pt = T.proba(rf, z(val)), T.proba(rf, z(test))
        th = T.choose_thresholds(y[val], pv)
        row(name, sum(e.tree_.node_count for e in rf.estimators_), pt >= th)
        if kept is None:
            kept = (pt, th)
    pt, th = kept
    for r in (0.5, 0.6, 0.7):
        row(f"recipe + relative rule R = {r}", "same", T.predict(pt, th, r))


if __name__ == "__main__":
    main()
