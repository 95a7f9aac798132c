#!/usr/bin/env python3
"""The mean of several models as one model tutti loads like any other: one
ONNX graph that cuts its input into each member's features, runs every
member's graph and averages their scores, and a sidecar whose feature set is
the members' sets side by side (`timbre98+logmel128` for the forest and the
CNN: tutti computes both from one analysis of each frame).

The ensemble's thresholds and relative threshold are chosen as train.py
chooses a model's, on the validation recordings (the same seeded split),
from the ensemble's own scores as `tutti analyze` (tract) gives them; its
test figures come from the test recordings the same way. Its LOFO folds are
blend.py's (the mean of the members' fold models, thresholds chosen on the
fitted families' validation recordings). The script also checks, on every
one of those windows, that the ensemble scores the mean of its members'
scores (to the four decimals analyze prints; tests/model.rs checks 1e-5).

    python models/train/ensemble.py models/forest.json models/cnn.json --out models/ensemble \\
        --features work/features.npz --dataset work/dataset --blend work/blend.json
"""
import argparse
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from evaluate import (choose_relative, choose_thresholds, fold_stem, groups_of, load, lofo_summary, metrics,
                      split_fit_validation, test_subsets)
from heard import scores_of
from sidecar import write_model

# Opsets the combined graph declares: the newest any member needs (the
# forest's operators are unchanged from opset 13 to 18).
DEFAULT_OPSET, ML_OPSET = 18, 3


def combine(members):
    """One ModelProto from [(name, ModelProto, width, path)]: input
    `features` [N, sum of widths], each member fed its slice (its nodes
    prefixed with `name/`), output `probabilities` [N, labels], the
    members' mean."""
    nodes, inits, infos, outs = [], [], [], []
    start = 0
    n_labels = None
    for name, model, width, path in members:
        graph = model.graph
        if [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}] != ["features"]:
            sys.exit(f"{path}: the graph must take one input named `features`")
        if "probabilities" not in [o.name for o in graph.output]:
            sys.exit(f"{path}: the graph has no `probabilities` output")
        dims = [d.dim_value for d in next(o for o in graph.output if o.name == "probabilities")
                .type.tensor_type.shape.dim]
        if n_labels is None:
            n_labels = dims[1]
        elif dims[1] != n_labels:
            sys.exit(f"{path}: {dims[1]} scores per row, the first member gives {n_labels}")
        prefixed = compose.add_prefix(model, f"{name}/")
        g = prefixed.graph
        lo, hi = f"{name}/slice_start", f"{name}/slice_end"
        inits += [numpy_helper.from_array(np.array([start], dtype=np.int64), lo),
                  numpy_helper.from_array(np.array([start + width], dtype=np.int64), hi),
                  *g.initializer]
        nodes.append(helper.make_node("Slice", ["features", lo, hi, "slice_axis"], [f"{name}/features"],
                                      name=f"{name}/slice"))
        nodes += g.node
        infos += g.value_info
        outs.append(f"{name}/probabilities")
        start += width
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "slice_axis"))
    inits.append(numpy_helper.from_array(np.array(1.0 / len(members), dtype=np.float32), "one_over_members"))
    total = outs[0]
    for i, o in enumerate(outs[1:]):
        nodes.append(helper.make_node("Add", [total, o], [f"sum_{i}"], name=f"sum_{i}"))
        total = f"sum_{i}"
    nodes.append(helper.make_node("Mul", [total, "one_over_members"], ["probabilities"], name="mean"))
    graph = helper.make_graph(
        nodes, "tutti-ensemble",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", start])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_labels])],
        initializer=inits, value_info=infos)
    model = helper.make_model(graph, producer_name="tutti-train",
                              opset_imports=[helper.make_opsetid("", DEFAULT_OPSET),
                                             helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    model.ir_version = max(m.ir_version for _, m, _, _ in members)
    onnx.checker.check_model(model, full_check=True)
    return model


def build(paths):
    """The ensemble of the models whose sidecars are `paths`: its ONNX
    bytes, what its sidecar says of its input and output, and the members'
    sidecars."""
    sidecars = [json.loads(p.read_text()) for p in paths]
    first = sidecars[0]
    for p, s in zip(paths[1:], sidecars[1:]):
        for key in ("labels", "sample_rate", "window_seconds"):
            a = [(l["name"], l["program"]) for l in s[key]] if key == "labels" else s[key]
            b = [(l["name"], l["program"]) for l in first[key]] if key == "labels" else first[key]
            if a != b:
                sys.exit(f"{p}: its {key} differ from {paths[0]}'s")
    members = []
    for i, (p, s) in enumerate(zip(paths, sidecars)):
        onnx_path = p.parent / s["model_file"]
        members.append((f"member{i}", onnx.load(onnx_path), len(s["feature_names"]), onnx_path))
    meta = {"labels": first["labels"], "sample_rate": first["sample_rate"],
            "window_seconds": first["window_seconds"], "hop_seconds": first["hop_seconds"],
            "feature_set": "+".join(s["feature_set"] for s in sidecars),
            "feature_names": [n for s in sidecars for n in s["feature_names"]]}
    return combine(members).SerializeToString(), meta, sidecars


def members_of(paths, sidecars):
    """The sidecar's record of each member."""
    return [{"sidecar": p.name, "model_file": s["model_file"], "onnx_sha256": s["onnx_sha256"],
             "feature_set": s["feature_set"], "features": len(s["feature_names"]), "training": s["training"]}
            for p, s in zip(paths, sidecars)]


def write_folds(folds, dirs, out):
    """One ensemble per LOFO fold of blend.py (`folds`), of the members'
    fold models in `dirs`, with the thresholds blend.py chose for it, into
    OUT/lofo-<held-out family>: for stream.py, like the members' own."""
    for entry in folds:
        paths = [d / f"{fold_stem(entry['held_out'])}.json" for d in dirs]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            sys.exit(f"{missing[0]}: no such fold model")
        onnx_bytes, meta, sidecars = build(paths)
        write_model(out / fold_stem(entry["held_out"]), onnx_bytes, meta, entry["thresholds"],
                    entry["relative_threshold"],
                    {"lofo_fold": entry["held_out"], "fit": entry["fit"], "members": members_of(paths, sidecars)},
                    {"thresholds_from": "validation", "lofo": [entry]})
    print(f"wrote {len(folds)} fold ensembles into {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("members", nargs="+", type=Path, help="the members' sidecars (.json), two or more")
    ap.add_argument("--out", type=Path, required=True, help="output stem: writes STEM.onnx and STEM.json")
    ap.add_argument("--features", required=True,
                    help="the forest's NPZ (tutti features DIR --out, windows every 0.5 s): labels and splits")
    ap.add_argument("--dataset", help="the rendered dataset (default: the feature file's source)")
    ap.add_argument("--blend", type=Path, help="blend.py --json of the same members: the ensemble's LOFO folds")
    ap.add_argument("--folds", type=Path, nargs="+", default=[],
                    help="the members' LOFO fold models, a directory per member in the members' order")
    ap.add_argument("--fold-models", type=Path,
                    help="also write an ensemble per LOFO fold here, of --folds with --blend's thresholds")
    ap.add_argument("--tutti", default="target/recipe/tutti")
    ap.add_argument("--validation", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if len(args.members) < 2:
        sys.exit("an ensemble needs two members or more")
    if args.fold_models and (not args.blend or len(args.folds) != len(args.members)):
        sys.exit("--fold-models needs --blend and a --folds directory per member")

    onnx_bytes, meta, sidecars = build(args.members)
    first = sidecars[0]
    names = [l["name"] for l in first["labels"]]

    _, y, rec, split, fmeta = load(args.features)
    if [l["name"] for l in fmeta["labels"]] != names:
        sys.exit(f"{args.features}: its labels differ from {args.members[0]}'s")
    start = np.load(args.features)["start"]
    ids = fmeta["recordings"]
    dataset = Path(args.dataset or fmeta["source"])
    groups = groups_of(rec, fmeta)
    _, val = split_fit_validation(np.where(split == 0)[0], groups,
                                  types.SimpleNamespace(validation=args.validation, seed=args.seed))
    test = np.where(split == 1)[0]
    rows = np.concatenate([val, test])
    part = {0: "train_data", 1: "test_data"}
    wavs = sorted({str(dataset / part[int(split[i])] / f"{ids[rec[i]]}.wav") for i in rows})
    keys = [(ids[r], round(float(s), 3)) for r, s in zip(rec[rows], start[rows])]

    def heard(model):
        got, _, _ = scores_of(str(model), wavs, args.tutti)
        absent = [k for k in keys if k not in got]
        if absent:
            sys.exit(f"{model}: tutti analyze gave no window for {absent[0]} ({len(absent)} of {len(keys)})")
        return np.array([got[k] for k in keys], dtype=np.float32)

    print(f"scoring {len(val)} validation and {len(test)} test windows of {len(wavs)} recordings "
          f"with the ensemble and each member, through {args.tutti} analyze", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Scores do not depend on thresholds: a provisional sidecar reads them.
        write_model(Path(tmp) / args.out.name, onnx_bytes, meta, [0.5] * len(names), 0.0, {}, {})
        p = heard(Path(tmp) / (args.out.name + ".json"))
    mean_of_members = np.mean([heard(m) for m in args.members], axis=0)
    members_diff = float(np.max(np.abs(p - mean_of_members)))
    print(f"ensemble vs the mean of its members, through tract, {len(keys)} windows: max |diff| {members_diff:.2e}")
    # analyze prints scores to four decimals: each of the three is within
    # 5e-5 of its true value, so an ensemble computing the mean is within 1e-4.
    if members_diff > 1.01e-4:
        sys.exit(f"the ensemble's graph disagrees with the mean of its members by {members_diff:.2e}")

    nv = len(val)
    thresholds = choose_thresholds(y[val], p[:nv])
    relative = choose_relative(y[val], p[:nv], thresholds)
    validation = {
        "thresholds_from": "validation",
        "validation": metrics(y[val], p[:nv], thresholds, names, relative=relative),
        "test": metrics(y[test], p[nv:], thresholds, names, relative=relative),
        "test_subsets": test_subsets(y[test], p[nv:], thresholds, names, rec[test], fmeta, relative),
        "members_max_abs_diff": members_diff,
    }
    if args.blend:
        folds = json.loads(args.blend.read_text())["blend"]
        validation.update(lofo=folds, lofo_summary=lofo_summary(folds))
    training = {
        "recipe": "the mean of its members' scores, one graph: " + " and ".join(
            f"{p.stem} ({s['feature_set']})" for p, s in zip(args.members, sidecars)),
        "members": members_of(args.members, sidecars),
        "sources": first["training"].get("sources"),
    }
    write_model(args.out, onnx_bytes, meta, thresholds, relative, training, validation)
    if args.fold_models:
        write_folds(validation["lofo"], args.folds, args.fold_models)
    t = validation["test"]
    print(f"wrote {args.out}.onnx ({len(onnx_bytes) / 1e6:.1f} MB) and {args.out}.json; thresholds chosen "
          f"(relative {relative}); test macro-F1 {t['macro_f1']}, mAP {t['mAP']}")


if __name__ == "__main__":
    main()
