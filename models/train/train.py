#!/usr/bin/env python3
"""Train tutti's model from features that `tutti features` computed.

StandardScaler -> PCA -> multi-label RandomForest, as the seed study did,
except that by default (`--forest-input both`) the forest reads the scaled
features beside their PCA components: PCA keeps the directions of largest
variance, not the ones that tell instruments apart, and a rotation spoils the
axis-aligned splits a forest makes (see docs/studies.md's comparison).
Writes one ONNX file holding all of it (standard operators plus a single
multi-label TreeEnsembleClassifier, which tutti runs with its own evaluator
inside tract), the JSON sidecar, and a parity fixture (feature rows with
scikit-learn's probabilities) that a Rust test checks tract against.

    python models/train/train.py work/features.npz --out models/tutti
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
from onnx import TensorProto, helper, numpy_helper
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

# FAMILIES, column, families_of, predict and test_subsets are re-exported:
# compare.py, heard.py and solo_study.py read them from here.
from evaluate import (FAMILIES, choose_relative, choose_thresholds, column, data_summary, fold_stem,  # noqa: F401
                      families_of, groups_of, load, lofo, lofo_summary, metrics, predict,
                      split_fit_validation, test_subsets)
from sidecar import write_model


FOREST_INPUTS = {
    "pca": "StandardScaler -> PCA -> multi-label RandomForestClassifier",
    "both": "StandardScaler -> PCA -> multi-label RandomForestClassifier reading the scaled features "
            "and their PCA components side by side",
}


def forest_input(scaled, pca, kind):
    """What the forest reads: the PCA components of the scaled features, or
    (`both`) the scaled features followed by their components; with no PCA,
    the scaled features."""
    if pca is None:
        return scaled
    components = pca.transform(scaled)
    return np.hstack([scaled, components]) if kind == "both" else components


def fit_recipe(x, y, fit, n_pca, args, sample_weight=None):
    """Scaler, PCA (none when n_pca is 0) and forest fitted on rows `fit`
    (weighted per row of `fit` when `sample_weight` is given), the forest
    reading what `args.forest_input` says (see `forest_input`);
    returns the forest, a function mapping rows to the forest's input, the
    scaler, the PCA and the variance PCA lost."""
    scaler = StandardScaler().fit(x[fit])
    pca, lost = None, 0.0
    if n_pca:
        pca = PCA(n_components=n_pca, random_state=args.seed).fit(scaler.transform(x[fit]))
        lost = 1.0 - float(np.sum(pca.explained_variance_ratio_))
    def z(rows, xs=x):
        return forest_input(scaler.transform(xs[rows]), pca, args.forest_input).astype(np.float32)

    return fit_forest(z(fit), y[fit], args, sample_weight), z, scaler, pca, lost


def max_features(text):
    """scikit-learn's max_features from the command line: sqrt, log2 or a
    fraction in (0, 1]."""
    if text in ("sqrt", "log2"):
        return text
    try:
        f = float(text)
    except ValueError:
        f = -1.0
    if not 0.0 < f <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected sqrt, log2 or a fraction in (0, 1]")
    return f


def fit_forest(x, y, args, sample_weight=None):
    rf = RandomForestClassifier(n_estimators=0, warm_start=True, max_features=args.max_features,
                                min_samples_split=args.min_samples_split, max_depth=args.max_depth,
                                min_samples_leaf=args.min_samples_leaf, n_jobs=-1, random_state=args.seed)
    step = 10
    with tqdm(total=args.trees, desc="forest", unit="tree") as bar:
        while rf.n_estimators < args.trees:
            rf.n_estimators = min(args.trees, rf.n_estimators + step)
            rf.fit(x, y, sample_weight=sample_weight)
            bar.update(rf.n_estimators - bar.n)
    return rf


def proba(rf, z):
    """Multi-label probabilities, rows x labels."""
    return np.stack([p[:, 1] if p.shape[1] == 2 else np.zeros(len(z)) for p in rf.predict_proba(z)], axis=1)


def threshold_margin(rf, z):
    """Per row, the smallest |z[feature] - threshold| / (1 + |threshold|) over
    every split on its paths through the forest. Below ~1e-6 a float32 versus
    float64 difference in scaling and PCA can send the row the other way."""
    margin = np.full(len(z), np.inf)
    for est in rf.estimators_:
        tree = est.tree_
        path = est.decision_path(z).tocoo()
        inner = tree.children_left[path.col] != -1
        rows, nodes = path.row[inner], path.col[inner]
        thr = tree.threshold[nodes]
        m = np.abs(z[rows, tree.feature[nodes]] - thr) / (1.0 + np.abs(thr))
        np.minimum.at(margin, rows, m)
    return margin


def forest_node(rf, n_labels, source="pca"):
    """The whole multi-label forest as ONE TreeEnsembleClassifier: class ids
    are label indices, each leaf carries P(label) / n_trees for every label
    with a non-zero probability, post_transform NONE: the summed scores are
    scikit-learn's predict_proba[k][:, 1]."""
    cols = {k: [] for k in ["nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                            "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids", "class_treeids",
                            "class_nodeids", "class_ids", "class_weights"]}
    n_trees = len(rf.estimators_)
    for t, est in enumerate(rf.estimators_):
        tree = est.tree_
        n = tree.node_count
        ids = np.arange(n)
        leaf = tree.children_left == -1
        cols["nodes_treeids"].append(np.full(n, t))
        cols["nodes_nodeids"].append(ids)
        cols["nodes_featureids"].append(np.where(leaf, 0, tree.feature))
        cols["nodes_values"].append(np.where(leaf, 0.0, tree.threshold))
        cols["nodes_modes"].extend(np.where(leaf, "LEAF", "BRANCH_LEQ").tolist())
        cols["nodes_truenodeids"].append(np.where(leaf, 0, tree.children_left))
        cols["nodes_falsenodeids"].append(np.where(leaf, 0, tree.children_right))
        # P(label k) at each leaf; a label constant in this tree's bootstrap
        # has one class only (all 0 or all 1).
        prob = np.zeros((n, n_labels))
        for k in range(n_labels):
            classes = list(est.classes_[k])
            v = tree.value[:, k, : len(classes)]
            total = v.sum(axis=1)
            if 1 in classes:
                prob[:, k] = np.divide(v[:, classes.index(1)], total, out=np.zeros(n), where=total > 0)
        node, label = np.nonzero(prob * leaf[:, None] > 0)
        cols["class_treeids"].append(np.full(len(node), t))
        cols["class_nodeids"].append(node)
        cols["class_ids"].append(label)
        cols["class_weights"].append(prob[node, label] / n_trees)
    attrs = {}
    for k, v in cols.items():
        if k == "nodes_modes":
            attrs[k] = v
        elif k in ("nodes_values", "class_weights"):
            attrs[k] = np.concatenate(v).astype(np.float32).tolist()
        else:
            attrs[k] = np.concatenate(v).astype(np.int64).tolist()
    return helper.make_node("TreeEnsembleClassifier", [source], ["label", "probabilities"],
                            name="forest", domain="ai.onnx.ml", post_transform="NONE",
                            classlabels_int64s=list(range(n_labels)), **attrs)


def export_onnx(scaler, pca, rf, n_features, n_labels, kind="pca"):
    inits = [
        numpy_helper.from_array(scaler.mean_.astype(np.float32), "scaler_mean"),
        numpy_helper.from_array(scaler.scale_.astype(np.float32), "scaler_scale"),
        numpy_helper.from_array(pca.mean_.astype(np.float32), "pca_mean"),
        numpy_helper.from_array(pca.components_.T.astype(np.float32), "pca_components"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "scaler_mean"], ["centred"], name="scale_sub_mean"),
        helper.make_node("Div", ["centred", "scaler_scale"], ["scaled"], name="scale_div_std"),
        helper.make_node("Sub", ["scaled", "pca_mean"], ["pca_centred"], name="pca_sub_mean"),
        helper.make_node("MatMul", ["pca_centred", "pca_components"], ["pca"], name="pca_matmul"),
    ]
    if kind == "both":
        nodes.append(helper.make_node("Concat", ["scaled", "pca"], ["forest_input"], name="forest_input", axis=1))
    nodes.append(forest_node(rf, n_labels, "forest_input" if kind == "both" else "pca"))
    graph = helper.make_graph(
        nodes, "tutti",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_labels])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("ai.onnx.ml", 3)],
                              producer_name="tutti-train")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="NPZ written by `tutti features DIR --out`")
    ap.add_argument("--out", default="models/tutti", help="output stem: writes STEM.onnx and STEM.json")
    ap.add_argument("--parity", default="tests/fixtures/model_parity.json")
    ap.add_argument("--trees", type=int, default=60)
    ap.add_argument("--max-depth", type=int, default=None)
    ap.add_argument("--min-samples-split", type=int, default=30)
    ap.add_argument("--min-samples-leaf", type=int, default=1)
    ap.add_argument("--max-features", type=max_features, default="sqrt",
                    help="features each split draws from: sqrt, log2 or a fraction of them")
    ap.add_argument("--pca", type=int, default=16)
    ap.add_argument("--forest-input", choices=sorted(FOREST_INPUTS), default="both",
                    help="what the forest reads: the PCA components alone, or the scaled features beside them")
    ap.add_argument("--validation", type=float, default=0.2, help="fraction of training recordings for thresholds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fold-models", type=Path, default=None,
                    help="also write each LOFO fold's model here (lofo-<held-out family>.onnx/.json), "
                         "for measuring streams on timbres a model never heard (stream.py)")
    args = ap.parse_args()

    x, y, rec, split, meta = load(args.features)
    names = [l["name"] for l in meta["labels"]]
    train_all, test = np.where(split == 0)[0], np.where(split == 1)[0]
    if len(train_all) == 0 or len(test) == 0:
        sys.exit(f"{args.features}: needs windows in both the train and the test split")
    if args.pca < 1:
        sys.exit(f"--pca {args.pca}: the shipped recipe needs at least one PCA component")
    groups = groups_of(rec, meta)
    fit, val = split_fit_validation(train_all, groups, args)
    print(f"windows: fit {len(fit)}, validation {len(val)}, test {len(test)} "
          f"(recordings {len(set(rec[fit]))}/{len(set(rec[val]))}/{len(set(rec[test]))})")

    t0 = time.time()
    rf, z, scaler, pca, lost = fit_recipe(x, y, fit, args.pca, args)
    fit_seconds = time.time() - t0

    p_val, p_test = proba(rf, z(val)), proba(rf, z(test))
    thresholds = choose_thresholds(y[val], p_val)
    relative = choose_relative(y[val], p_val, thresholds)
    print(f"forest fitted in {fit_seconds:.1f} s; thresholds chosen (relative {relative}); exporting")

    t0 = time.time()
    onnx_model = export_onnx(scaler, pca, rf, x.shape[1], len(names), args.forest_input)
    print(f"exported in {time.time() - t0:.1f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_bytes = onnx_model.SerializeToString()

    # The exported graph must reproduce scikit-learn before it is written.
    # It computes scaling and PCA in float32 where scikit-learn uses float64,
    # so a row lying within rounding of a split threshold may take the other
    # branch in one tree; such rows are counted, and the check (and the Rust
    # parity fixture) uses rows whose paths clear every threshold by 1e-4.
    # onnxruntime 1.32 fails with `narrowing_error` on this operator for any
    # batch holding a row that no tree gives any label (silent windows: it
    # cannot pick that row's `label` output), from 256 rows per call up
    # otherwise, and is slow on large forests; so it gets 64 rows that some
    # tree labels.
    margin = threshold_margin(rf, z(test))
    near = int(np.sum(margin < 1e-6))
    print(f"test windows within 1e-6 of a split threshold: {near} of {len(test)}")
    rng = np.random.default_rng(args.seed)
    safe = test[(margin > 1e-4) & (p_test.sum(axis=1) > 0)]
    rows = np.sort(rng.choice(safe, size=min(64, len(safe)), replace=False))
    t0 = time.time()
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    ort_p = sess.run(["probabilities"], {"features": x[rows]})[0]
    ort_diff = float(np.max(np.abs(ort_p - proba(rf, z(rows)))))
    print(f"onnxruntime vs scikit-learn on {len(rows)} test windows: max |diff| {ort_diff:.2e} "
          f"({time.time() - t0:.1f} s)")
    if ort_diff > 1e-5:
        sys.exit(f"the exported ONNX graph disagrees with scikit-learn by {ort_diff:.2e}")

    fit_metrics = metrics(y[fit], proba(rf, z(fit)), thresholds, names, relative=relative)
    val_metrics = metrics(y[val], p_val, thresholds, names, relative=relative)
    test_metrics = metrics(y[test], p_test, thresholds, names, relative=relative)
    subsets = test_subsets(y[test], p_test, thresholds, names, rec[test], meta, relative)

    fitted = {}

    def fit_predict(fit_rows, _val_rows):
        rf_, z_, scaler_, pca_, _ = fit_recipe(x, y, fit_rows, args.pca, args)
        fitted.update(rf=rf_, scaler=scaler_, pca=pca_)
        return lambda rows: proba(rf_, z_(rows))

    def export_fold(entry):
        onnx_fold = export_onnx(fitted["scaler"], fitted["pca"], fitted["rf"], x.shape[1], len(names),
                                args.forest_input).SerializeToString()
        write_model(args.fold_models / fold_stem(entry["held_out"]), onnx_fold, meta, entry["thresholds"],
                    entry["relative_threshold"], {"lofo_fold": entry["held_out"], "fit": entry["fit"]},
                    {"thresholds_from": "validation", "lofo": [entry]})

    folds = lofo(fit_predict, y, rec, split, meta, groups, names, args,
                 on_fold=export_fold if args.fold_models else None)
    training = {
        "recipe": FOREST_INPUTS[args.forest_input], "forest_input": args.forest_input,
        "pca_components": args.pca, "pca_information_lost": round(lost, 4),
        "trees": args.trees, "max_depth": args.max_depth, "max_features": args.max_features,
        "min_samples_split": args.min_samples_split, "min_samples_leaf": args.min_samples_leaf,
        "seed": args.seed, "fit_seconds": round(fit_seconds, 1),
        "scikit_learn": sklearn.__version__, "forest_nodes": int(sum(e.tree_.node_count for e in rf.estimators_)),
        **data_summary(y, rec, meta, names, fit, val, test),
    }
    validation = {"thresholds_from": "validation", "fit": fit_metrics, "validation": val_metrics, "test": test_metrics,
                  "test_subsets": subsets, "lofo": folds, "lofo_summary": lofo_summary(folds),
                  "onnxruntime_max_abs_diff": ort_diff,
                  "test_windows_within_1e-6_of_a_threshold": near}
    sidecar = write_model(out, onnx_bytes, meta, thresholds, relative, training, validation)

    parity = {"model": out.with_suffix(".json").name, "onnx_sha256": sidecar["onnx_sha256"],
              "features": x[rows].tolist(), "probabilities": proba(rf, z(rows)).tolist()}
    Path(args.parity).parent.mkdir(parents=True, exist_ok=True)
    Path(args.parity).write_text(json.dumps(parity) + "\n")

    size = len(onnx_bytes) / 1e6
    print(f"wrote {out.with_suffix('.onnx')} ({size:.1f} MB) and {out.with_suffix('.json')}")
    for name, m in [("validation", val_metrics), ("test", test_metrics)]:
        print(f"{name}: macro-F1 {m['macro_f1']}, micro-F1 {m['micro_f1']}, mAP {m['mAP']}, "
              f"single {m['macro_f1_single_instrument']}, mixtures {m['macro_f1_mixtures']}")


if __name__ == "__main__":
    main()
