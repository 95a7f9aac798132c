#!/usr/bin/env python3
"""The seed study's experiments, run again on tutti's own data and features,
written to models/REPORT.md with PNG plots beside it.

1. PCA: components kept against the variance lost (the seed's table) and
   what the recipe scores with each.
2. Model comparison: random forest, logistic regression, decision tree,
   dummy, k-NN, Gaussian naive Bayes and a small MLP, each behind the same
   scaler and PCA, with per-instrument thresholds chosen on validation:
   macro-F1 on fit / validation / test, the seed's metric (label accuracy)
   beside it, and inference time per window.
3. Window length: the recipe on features of 1-12 s windows of one rendering
   (the seed's Fig 3), one NPZ per length.
4. Hyper-parameter search: random draws of forest settings and PCA sizes,
   scored on the validation recordings, until a stated time budget runs out.

The seed scored with accuracy over all instrument slots, which a model that
hears nothing already gets right 80-90 % of the time; this report gives
macro-F1 (each instrument counts the same) and shows label accuracy only to
set the two side by side.

    python models/train/report.py work/features.npz --windows 1=work/w1.npz 2=work/w2.npz \\
        --model models/tutti --out models/REPORT.md --budget 600
"""
import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.dummy import DummyClassifier  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import (FOREST_INPUTS, choose_thresholds, forest_input, groups_of, load, max_features,  # noqa: E402
                   metrics, split_fit_validation)


class PerLabel:
    """One binary estimator per instrument, for those scikit-learn models
    that are not multi-label themselves. An instrument with a single class
    in the fit rows gets that class's constant probability."""

    def __init__(self, make):
        self.make = make

    def fit(self, x, y):
        self.models = []
        for k in range(y.shape[1]):
            if len(np.unique(y[:, k])) < 2:
                self.models.append(float(y[0, k]) if len(y) else 0.0)
            else:
                self.models.append(self.make().fit(x, y[:, k]))
        return self

    def predict_proba(self, x):
        return np.stack([np.full(len(x), m) if isinstance(m, float) else m.predict_proba(x)[:, 1]
                         for m in self.models], axis=1)


def positive_proba(est, z):
    """P(instrument) per row and instrument, whatever shape the estimator
    returns (a list per output for native multi-output models)."""
    p = est.predict_proba(z)
    if isinstance(p, list):
        cols = []
        for k, pk in enumerate(p):
            classes = list(est.classes_[k]) if hasattr(est, "classes_") else [0, 1]
            cols.append(pk[:, classes.index(1)] if 1 in classes else np.zeros(len(z)))
        return np.stack(cols, axis=1)
    return np.asarray(p, dtype=float)


def label_accuracy(y, pred):
    return float(np.mean(y == pred))


class Data:
    """One feature file with its fit / validation / test rows (whole
    recordings, and whole movements for score excerpts, apart)."""

    def __init__(self, path, args):
        self.x, self.y, rec, split, self.meta = load(path)
        self.names = [l["name"] for l in self.meta["labels"]]
        self.test = np.where(split == 1)[0]
        self.fit, self.val = split_fit_validation(np.where(split == 0)[0], groups_of(rec, self.meta), args)
        if not len(self.fit) or not len(self.val) or not len(self.test):
            sys.exit(f"{path}: needs windows to fit, validate and test "
                     f"(has {len(self.fit)}/{len(self.val)}/{len(self.test)})")

    def transform(self, n_pca, seed, kind):
        """Fit/val/test rows as the forest reads them (train.py's `forest_input`:
        the PCA components, or `both` the scaled features beside them; the
        scaled features alone when n_pca is 0) and the variance lost."""
        scaler = StandardScaler().fit(self.x[self.fit])
        parts = [scaler.transform(self.x[r]) for r in (self.fit, self.val, self.test)]
        lost, pca = 0.0, None
        if n_pca:
            pca = PCA(n_components=n_pca, random_state=seed).fit(parts[0])
            lost = 1.0 - float(np.sum(pca.explained_variance_ratio_))
        parts = [forest_input(p, pca, kind) for p in parts]
        return [p.astype(np.float32) for p in parts], lost

    def evaluate(self, est, parts, timing=False):
        """Fit `est`, choose thresholds on validation, score all three parts."""
        zf, zv, zt = parts
        t0 = time.perf_counter()
        est.fit(zf, self.y[self.fit])
        fit_s = time.perf_counter() - t0
        pv = positive_proba(est, zv)
        thresholds = choose_thresholds(self.y[self.val], pv)
        t0 = time.perf_counter()
        pt = positive_proba(est, zt)
        batch_us = (time.perf_counter() - t0) / len(zt) * 1e6
        out = {"fit_seconds": fit_s, "batch_us": batch_us}
        for name, rows, p in (("fit", self.fit, positive_proba(est, zf)), ("validation", self.val, pv),
                              ("test", self.test, pt)):
            m = metrics(self.y[rows], p, thresholds, self.names)
            out[name] = m["macro_f1"]
            if name == "test":
                out["test_mAP"] = m["mAP"]
                out["test_label_accuracy"] = label_accuracy(self.y[rows], p >= thresholds)
        if timing:
            # The daemon asks for one window at a time, on one thread:
            # time that too (joblib's dispatch to worker threads would cost
            # more than a row's work).
            if hasattr(est, "n_jobs"):
                est.n_jobs = 1
            one = [zt[i:i + 1] for i in range(min(200, len(zt)))]
            t0 = time.perf_counter()
            for row in one:
                positive_proba(est, row)
            out["single_ms"] = (time.perf_counter() - t0) / len(one) * 1e3
        return out


def forest(args, **kw):
    settings = dict(n_estimators=args.trees, max_features=args.max_features, min_samples_split=args.min_samples_split,
                    n_jobs=-1, random_state=args.seed)
    settings.update(kw)
    return RandomForestClassifier(**settings)


def pca_study(data, args, plots):
    """Variance lost and recipe scores against components kept."""
    width = data.x.shape[1]
    ks = sorted({k for k in (1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 23, 26, 32, 48, 64) if k < width} | {width})
    lost_curve = variance_lost(data.x[data.fit])
    both = args.forest_input == "both"
    rows, scores, alone = [], [], []
    for k in tqdm(ks, desc="PCA study", unit="size"):
        parts, lost = data.transform(k, args.seed, args.forest_input)
        r = data.evaluate(forest(args), parts)
        if both:
            # The components are the last k columns of what the forest read.
            r["alone"] = data.evaluate(forest(args), [p[:, -k:] for p in parts])["test"]
            alone.append(r["alone"])
        rows.append((k, lost, r))
        scores.append(r["test"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, width + 1), 100 * lost_curve, color="tab:gray", label="variance lost (%)")
    ax.set_xlabel("PCA components kept")
    ax.set_ylabel("variance lost (%)")
    ax2 = ax.twinx()
    ax2.plot(ks, scores, "o-", color="tab:blue", label="test macro-F1" + (", features beside" if both else ""))
    if both:
        ax2.plot(ks, alone, "s--", color="tab:orange", label="test macro-F1, components alone")
    ax2.set_ylabel("test macro-F1")
    ax.axvline(args.pca, color="tab:red", ls=":", label=f"shipped ({args.pca})")
    fig.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "pca.png", dpi=90)
    plt.close(fig)
    lines = ["| components | variance lost | macro-F1 fit | macro-F1 validation | macro-F1 test | mAP test |"
             + (" macro-F1 test, the forest on the components alone |" if both else ""),
             "|---|---|---|---|---|---|" + ("---|" if both else "")]
    for k, lost, r in rows:
        mark = " (shipped)" if k == args.pca else (" (all: a rotation)" if k == width else "")
        lines.append(f"| {k}{mark} | {100 * lost:.1f} % | {r['fit']:.3f} | {r['validation']:.3f} | "
                     f"{r['test']:.3f} | {r['test_mAP']:.3f} |" + (f" {r['alone']:.3f} |" if both else ""))
    return lines


def variance_lost(x_fit):
    """Share of the variance lost when PCA keeps 1, 2, ... components."""
    full = PCA().fit(StandardScaler().fit_transform(x_fit))
    return 1.0 - np.cumsum(full.explained_variance_ratio_)


def meta_set(data):
    return data.meta["feature_set"]


def seed_table(x_fit):
    """The seed's table of variance lost against components kept, beside
    the same for `seed26` rows of this data (the seed's own 26 values)."""
    lost_curve = variance_lost(x_fit)
    table = ["| components | variance lost here | the seed's |", "|---|---|---|"]
    seed_loss = {23: 1, 21: 2, 19: 3, 18: 4, 17: 5, 16: 7, 15: 8, 14: 10}
    for k in sorted(seed_loss, reverse=True):
        if k <= x_fit.shape[1]:
            table.append(f"| {k} | {100 * lost_curve[k - 1]:.1f} % | {seed_loss[k]} % |")
    return table


def model_study(data, args, plots):
    models = [
        ("random forest (shipped recipe)", lambda: forest(args)),
        ("logistic regression", lambda: PerLabel(lambda: LogisticRegression(max_iter=500))),
        ("decision tree", lambda: DecisionTreeClassifier(min_samples_split=args.min_samples_split,
                                                         random_state=args.seed)),
        ("dummy (label priors)", lambda: DummyClassifier(strategy="prior")),
        ("k-NN (k = 15)", lambda: KNeighborsClassifier(n_neighbors=15, n_jobs=-1)),
        ("Gaussian naive Bayes", lambda: PerLabel(GaussianNB)),
        ("MLP (64-32, ReLU)", lambda: MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=200,
                                                     early_stopping=True, random_state=args.seed)),
    ]
    parts, _ = data.transform(args.pca, args.seed, args.forest_input)
    results = []
    for name, make in tqdm(models, desc="model comparison", unit="model"):
        results.append((name, data.evaluate(make(), parts, timing=True)))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    idx = np.arange(len(results))
    for j, part in enumerate(("fit", "validation", "test")):
        ax.bar(idx + (j - 1) * 0.27, [r[part] for _, r in results], 0.27, label=part)
    ax.set_xticks(idx, [n.split(" (")[0] for n, _ in results], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("macro-F1")
    ax.legend(fontsize=8)
    ax2.barh(idx, [r["single_ms"] for _, r in results], color="tab:gray")
    ax2.set_yticks(idx, [n.split(" (")[0] for n, _ in results], fontsize=8)
    ax2.set_xscale("log")
    ax2.set_xlabel("ms per single-window call (scikit-learn)")
    fig.tight_layout()
    fig.savefig(plots / "models.png", dpi=90)
    plt.close(fig)
    lines = ["| model | macro-F1 fit | validation | test | test mAP | test label accuracy (the seed's metric) "
             "| fit s | µs per window, batched | ms per single-window call |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        lines.append(f"| {name} | {r['fit']:.3f} | {r['validation']:.3f} | {r['test']:.3f} | {r['test_mAP']:.3f} "
                     f"| {100 * r['test_label_accuracy']:.1f} % | {r['fit_seconds']:.1f} | {r['batch_us']:.1f} "
                     f"| {r['single_ms']:.2f} |")
    return lines


def window_study(files, args, plots):
    rows = []
    for seconds, path in tqdm(files, desc="window study", unit="length"):
        data = Data(path, args)
        parts, _ = data.transform(min(args.pca, data.x.shape[1]), args.seed, args.forest_input)
        r = data.evaluate(forest(args), parts)
        rows.append((seconds, len(data.y), r))
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [s for s, _, _ in rows]
    for part in ("fit", "validation", "test"):
        ax.plot(xs, [r[part] for _, _, r in rows], "o-", label=part)
    ax.set_xlabel("window (s)")
    ax.set_ylabel("macro-F1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "windows.png", dpi=90)
    plt.close(fig)
    lines = ["| window | windows | macro-F1 fit | validation | test | test mAP |", "|---|---|---|---|---|---|"]
    for s, n, r in rows:
        lines.append(f"| {s:g} s | {n} | {r['fit']:.3f} | {r['validation']:.3f} | {r['test']:.3f} "
                     f"| {r['test_mAP']:.3f} |")
    return lines


def search(data, args, plots, bytes_per_node):
    """Random search over forest settings and PCA sizes within `args.budget`
    seconds, selected on validation macro-F1; the forest must fit the 16 MB
    ONNX budget (estimated from its node count)."""
    rng = np.random.default_rng(args.seed)
    width = data.x.shape[1]
    space = {
        "n_estimators": [20, 40, 60, 100, 150],
        "max_features": ["sqrt", "log2", 0.2, 0.5],
        "max_depth": [None, 10, 15, 20, 30],
        "criterion": ["gini", "entropy"],
        "min_samples_split": [2, 10, 20, 30, 60, 100],
        "min_samples_leaf": [1, 2, 5],
        "pca": sorted({k for k in (8, 12, 16, 20, width) if k <= width}),
    }
    transformed = {}
    tried = []
    start = time.perf_counter()
    baseline = {"n_estimators": args.trees, "max_features": args.max_features, "max_depth": None, "criterion": "gini",
                "min_samples_split": args.min_samples_split, "min_samples_leaf": 1, "pca": args.pca}
    with tqdm(total=args.budget, desc="search", unit="s", bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s") as bar:
        while not tried or time.perf_counter() - start < args.budget:
            cfg = baseline if not tried else {k: v[rng.integers(len(v))] for k, v in space.items()}
            if cfg["pca"] not in transformed:
                transformed[cfg["pca"]] = data.transform(cfg["pca"], args.seed, args.forest_input)[0]
            settings = {k: v for k, v in cfg.items() if k != "pca"}
            est = RandomForestClassifier(n_jobs=-1, random_state=args.seed, **settings)
            r = data.evaluate(est, transformed[cfg["pca"]])
            nodes = int(sum(e.tree_.node_count for e in est.estimators_))
            r.update(cfg=cfg, nodes=nodes, mb=nodes * bytes_per_node / 1e6,
                     elapsed=time.perf_counter() - start)
            tried.append(r)
            bar.update(min(args.budget, r["elapsed"]) - bar.n)
    spent = time.perf_counter() - start
    ok = [r for r in tried if r["mb"] <= 16]
    ok.sort(key=lambda r: -r["validation"])
    best_so_far, best = [], -1
    for r in tried:
        if r["mb"] <= 16:
            best = max(best, r["validation"])
        best_so_far.append(best)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter([r["elapsed"] for r in tried], [r["validation"] for r in tried],
               c=["tab:blue" if r["mb"] <= 16 else "tab:red" for r in tried], s=14)
    ax.step([r["elapsed"] for r in tried], best_so_far, where="post", color="black", lw=1)
    ax.set_xlabel("seconds into the search")
    ax.set_ylabel("validation macro-F1")
    ax.set_title("each draw (red: over 16 MB of ONNX); black: best within budget so far", fontsize=9)
    fig.tight_layout()
    fig.savefig(plots / "search.png", dpi=90)
    plt.close(fig)
    keys = ["pca", "n_estimators", "max_features", "max_depth", "criterion", "min_samples_split",
            "min_samples_leaf"]
    lines = ["| rank | " + " | ".join(keys) + " | validation macro-F1 | test macro-F1 | test mAP | nodes "
             "| ONNX MB (est.) | fit s |", "|" + "---|" * (len(keys) + 7)]
    shown = ok[:8]
    if tried[0] not in shown:
        shown.append(tried[0])
    for r in shown:
        rank = str(ok.index(r) + 1) if r in ok else "–"
        if r is tried[0]:
            rank += " (shipped recipe)"
        lines.append(f"| {rank} | " + " | ".join(str(r["cfg"][k]) for k in keys)
                     + f" | {r['validation']:.3f} | {r['test']:.3f} | {r['test_mAP']:.3f} | {r['nodes']} "
                       f"| {r['mb']:.1f} | {r['fit_seconds']:.1f} |")
    return lines, len(tried), spent, len(tried) - len(ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="NPZ of the training dataset (`tutti features DIR --out`)")
    ap.add_argument("--windows", nargs="*", default=[],
                    help="SECONDS=NPZ: features of one rendering at several window lengths")
    ap.add_argument("--model", default="models/tutti",
                    help="model stem (rebuild.sh passes the one it just exported): its ONNX size per forest node sizes the search's candidates")
    ap.add_argument("--out", default="models/REPORT.md")
    ap.add_argument("--budget", type=float, default=600, help="seconds for the hyper-parameter search")
    ap.add_argument("--trees", type=int, default=60)
    ap.add_argument("--min-samples-split", type=int, default=30)
    ap.add_argument("--max-features", type=max_features, default="sqrt")
    ap.add_argument("--pca", type=int, default=16)
    ap.add_argument("--forest-input", choices=sorted(FOREST_INPUTS), default="both",
                    help="what the forest (and every model compared) reads, as train.py's --forest-input")
    ap.add_argument("--validation", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seed26", help="seed26 features of the same data, for the seed's PCA table when the "
                                     "features studied are another set")
    ap.add_argument("--command", default="models/train/rebuild.sh", help="the command that made this report")
    args = ap.parse_args()

    files = []
    for spec in args.windows:
        seconds, sep, path = spec.partition("=")
        try:
            files.append((float(seconds), path))
        except ValueError:
            sys.exit(f"--windows {spec}: expected SECONDS=NPZ")
        if not sep or not Path(path).is_file():
            sys.exit(f"--windows {spec}: no such feature file {path!r}")
    sidecar_path, onnx_path = Path(args.model).with_suffix(".json"), Path(args.model).with_suffix(".onnx")
    try:
        nodes = json.loads(sidecar_path.read_text())["training"]["forest_nodes"]
        bytes_per_node = onnx_path.stat().st_size / nodes
    except (OSError, KeyError, ValueError, ZeroDivisionError) as e:
        sys.exit(f"{sidecar_path}: cannot size the ONNX file per forest node ({e})")

    out = Path(args.out)
    plots = out.parent / "report"
    plots.mkdir(parents=True, exist_ok=True)
    data = Data(args.features, args)
    t0 = time.time()
    pca_lines = pca_study(data, args, plots)
    seed = None
    if meta_set(data) == "seed26":
        seed = seed_table(data.x[data.fit])
    elif args.seed26:
        seed26 = Data(args.seed26, args)
        if meta_set(seed26) != "seed26":
            sys.exit(f"--seed26 {args.seed26}: holds {meta_set(seed26)} features, not seed26")
        seed = seed_table(seed26.x[seed26.fit])
    model_lines = model_study(data, args, plots)
    window_lines = window_study(files, args, plots) if files else None
    search_lines, draws, spent, over = search(data, args, plots, bytes_per_node)
    total = time.time() - t0

    meta = data.meta
    rel = lambda p: p.relative_to(out.parent).as_posix()
    md = [
        "# The seed study, again, on tutti's data",
        "",
        f"Made by `{args.command}` ({total / 60:.1f} min for this report on the machine that ran it). "
        f"Data: {len(data.y)} windows of {meta['window_seconds']} s ({meta['feature_set']} features, "
        f"{data.x.shape[1]} values) from `{meta.get('source', '?')}`: {len(data.fit)} to fit, {len(data.val)} to "
        f"choose thresholds on (validation), {len(data.test)} to test, whole recordings (and whole movements of "
        "score excerpts) apart. Every model sits behind the same scaler"
        f" and PCA ({args.pca} components unless a table varies it)"
        + (", reading the scaled features beside the components," if args.forest_input == "both" else "")
        + " and gets per-instrument thresholds chosen for "
        "the best F1 on validation, as the shipped model does. Scores are macro-F1 over the instruments "
        "present (each counts the same); the seed's accuracy over all instrument slots is shown once, beside "
        "it, to show why it misled: a model that reports nothing scores "
        f"{100 * (1 - data.y[data.test].mean()):.1f} % on it here. The forest "
        "settings are the shipped recipe's "
        f"({args.trees} trees, min_samples_split {args.min_samples_split}, max_features {args.max_features}) unless the search varies them.",
        "",
        "## PCA: components kept, information lost",
        "",
        f"![PCA]({rel(plots / 'pca.png')})",
        "",
        *pca_lines,
        "",
        *(["Against the seed's table: the seed's 20 MFCC means and 6 spectral means are the `seed26` values, "
           "here of the same windows (measured on rendered SoundFont audio instead of its recordings):",
           "", *seed] if seed else
          ["The seed's own table (variance lost by its 26 values) needs `seed26` features of this data "
           "(`--seed26`)."]),
        "",
        "## Models",
        "",
        f"![models]({rel(plots / 'models.png')})",
        "",
        *model_lines,
        "",
        "Times are scikit-learn's in Python on this machine; tutti's daemon runs the forest in tract with its "
        "own tree evaluator, which the project's docs/benchmarks.md measures. k-NN keeps every fit window and searches "
        "them per call; the forest is the one of these the design can ship (one ONNX file, no training data "
        "on the device).",
        "",
        "## Window length",
        "",
    ]
    if window_lines:
        md += [f"![window length]({rel(plots / 'windows.png')})", "", *window_lines, "",
               "One rendering, its features computed at each window length with the 0.5 s hop "
               "(`tutti features --window`); an instrument labels a window when it sounds for 0.25 s of it, "
               "so longer windows carry more labels each. tutti reports every second from a 2 s window: a "
               "longer one would report later and smear instruments that enter and leave."]
    else:
        md += ["Not run: no `--windows` feature files were given."]
    md += [
        "",
        "## Hyper-parameter search",
        "",
        f"![search]({rel(plots / 'search.png')})",
        "",
        f"Random draws from the grid below, each fitted on the fit windows and scored on the validation "
        f"recordings, for a budget of {args.budget:.0f} s: {draws} draws in {spent:.0f} s on this 2-core "
        f"machine ({over} of them over the 16 MB ONNX budget, estimated at {bytes_per_node:.0f} bytes per "
        "forest node from the model this rebuild exported, and left out of the ranking). The seed's grid search, "
        "2952 settings × 10 folds, took 19 days. Test scores are shown, never used to choose.",
        "",
        "Grid: trees 20–150, max_features sqrt / log2 / 0.5, max_depth none / 10–30, criterion gini / "
        "entropy, min_samples_split 2–100, min_samples_leaf 1–5, PCA 8–all.",
        "",
        *search_lines,
        "",
    ]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md))
    tmp.replace(out)
    print(f"wrote {out} and {plots}/*.png in {total / 60:.1f} min")


if __name__ == "__main__":
    main()
