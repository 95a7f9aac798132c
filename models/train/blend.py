#!/usr/bin/env python3
"""Would averaging two models' scores beat each of them on timbres none of
them heard? Leave-one-family-out, through `tutti analyze` (tract, as the
daemon runs them), with the fold models train.py and cnn.py write with
`--fold-models`: for each held-out family, both folds' models analyse the
validation recordings of the families they were fitted on (the thresholds
and relative threshold of the blend are chosen there, as evaluate.lofo
chooses a model's) and the held-out family's test recordings, every 0.5 s.
Each model alone is scored beside the blend, with its own sidecar's
thresholds, on the same windows.

    python models/train/blend.py work/features.npz work/forest-folds work/cnn-folds --json work/blend.json

The feature file gives the labels, the splits and the validation
recordings (the same seeded split as train.py's).
"""
import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

from evaluate import (choose_relative, choose_thresholds, families_of, fold_entry, fold_stem, groups_of, load,
                      lofo_summary, room_mask, split_fit_validation)
from heard import scores_of


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="the forest's NPZ (tutti features DIR --out), windows every 0.5 s")
    ap.add_argument("folds", nargs=2, type=Path, help="two directories of LOFO fold models")
    ap.add_argument("--dataset", help="the rendered dataset (default: the feature file's source)")
    ap.add_argument("--tutti", default="target/recipe/tutti")
    ap.add_argument("--json", type=Path, help="also write the folds here")
    ap.add_argument("--validation", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    _, y, rec, split, meta = load(args.features)
    start = np.load(args.features)["start"]
    names = [l["name"] for l in meta["labels"]]
    ids = meta["recordings"]
    dataset = Path(args.dataset or meta["source"])
    groups = groups_of(rec, meta)
    room = room_mask(rec, meta)
    split_args = types.SimpleNamespace(validation=args.validation, seed=args.seed)
    fams = families_of(rec, meta)
    if len(fams) < 2:
        sys.exit(f"{args.features}: LOFO needs two sample families or more, found {len(fams)}")
    out = {"blend": [], "models": {str(d): [] for d in args.folds}}

    def wavs_of(rows):
        part = {0: "train_data", 1: "test_data"}
        return sorted({str(dataset / part[int(split[i])] / f"{ids[rec[i]]}.wav") for i in rows})

    for held, in_held in fams:
        models = [d / f"{fold_stem(held)}.json" for d in args.folds]
        missing = [m for m in models if not m.is_file()]
        if missing:
            sys.exit(f"{missing[0]}: no such fold model")
        pool = np.where((split == 0) & ~in_held)[0]
        _, val = split_fit_validation(pool, groups, split_args)
        test = np.where((split == 1) & in_held)[0]
        rows = np.concatenate([val, test])
        keys = [(ids[r], round(float(s), 3)) for r, s in zip(rec[rows], start[rows])]
        heard = []
        for m in models:
            got, labels, relative = scores_of(str(m), wavs_of(rows), args.tutti)
            if [l["name"] for l in labels] != names:
                sys.exit(f"{m}: its labels differ from {args.features}'s")
            absent = [k for k in keys if k not in got]
            if absent:
                sys.exit(f"{m}: tutti analyze gave no window for {absent[0]} ({len(absent)} of {len(keys)})")
            p = np.array([got[k] for k in keys], dtype=np.float32)
            heard.append((p, np.array([l["threshold"] for l in labels]), relative))
        nv = len(val)
        yv, yt, rt = y[val], y[test], room[test]
        known = y[pool].sum(axis=0) > 0

        def fold(p, thresholds, relative):
            return fold_entry(held, "+".join(f for f, _ in fams if f != held), yt, p[nv:], rt, thresholds,
                              relative, names, known)

        for d, (p, t, r) in zip(args.folds, heard):
            out["models"][str(d)].append(fold(p, t, r))
        p = np.mean([h[0] for h in heard], axis=0)
        t = choose_thresholds(yv, p[:nv])
        out["blend"].append(fold(p, t, choose_relative(yv, p[:nv], t)))
        line = " | ".join(f"{name} dry {f.get('dry', {}).get('macro_f1')} rooms {f.get('rooms', {}).get('macro_f1')}"
                          for name, f in [*((d.name, out["models"][str(d)][-1]) for d in args.folds),
                                          ("blend", out["blend"][-1])])
        print(f"{held}: {line}", flush=True)
    for name, folds in [*out["models"].items(), ("blend", out["blend"])]:
        s = lofo_summary(folds)
        print(f"{name}: " + ", ".join(f"{part} macro-F1 worst {s[part]['macro_f1']['worst']} mean "
                                      f"{s[part]['macro_f1']['mean']}, mAP worst {s[part]['mAP']['worst']}"
                                      for part in ("dry", "rooms") if part in s))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
