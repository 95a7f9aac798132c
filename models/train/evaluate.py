"""How tutti's models are scored: the dataset's windows and their groups,
per-instrument thresholds, the metrics every card and report quotes, and
leave-one-family-out (LOFO) validation, the model-selection metric: fitted
on every sample family but one and tested on the held-out family's test
split, dry and in rooms, each fold and their mean and worst. Shared by the
forest (train.py) and the CNN (cnn.py), so both are scored alike.
"""
import json

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import GroupShuffleSplit


def load(path):
    d = np.load(path)
    meta = json.loads(bytes(d["meta"]).decode())
    return d["x"].astype(np.float32), d["y"].astype(np.int64), d["recording"], d["split"], meta


def groups_of(rec, meta):
    """Per window, what must not straddle fit and validation: its movement
    for clips cut from a score (metadata `piece`), else its recording."""
    ids = meta["recordings"]
    md = meta.get("metadata", {})
    return np.array([md.get(ids[r], {}).get("piece") or f"recording {ids[r]}" for r in rec])


# The training SoundFonts' sample families (../shared/facts/training-audio.md):
# FluidR3_GM and MuseScore General share samples, TimGM6mb and Merlin have
# their own (Merlin's harpsichord is TimGM6mb's: rebuild.sh renders none;
# models/train/sf2_samples.py measures it); ToneJS is recordings of real
# instruments (models/train/tonejs.py builds it; seven of the eleven).
FAMILIES = ["FluidR3_GM,MuseScore_General_Full", "TimGM6mb,sf_GMbank", "Merlin", "ToneJS"]


def column(rec, meta, field):
    """Per window, its recording's metadata.csv field ("" when absent)."""
    ids = meta["recordings"]
    md = meta.get("metadata", {})
    return np.array([md.get(ids[r], {}).get(field) or "" for r in rec])


def families_of(rec, meta, families=FAMILIES):
    """[(name, per-window mask)] for each family with recordings here."""
    font = column(rec, meta, "soundfont")
    out = []
    for fam in families:
        members = [f for f in fam.split(",") if f in set(font)]
        if members:
            out.append(("+".join(members), np.isin(font, members)))
    return out


def split_fit_validation(pool, groups, args):
    """Rows of `pool` to fit and to choose thresholds on, whole groups apart."""
    gss = GroupShuffleSplit(n_splits=1, test_size=args.validation, random_state=args.seed)
    fit_i, val_i = next(gss.split(pool, groups=groups[pool]))
    return pool[fit_i], pool[val_i]


def choose_thresholds(y, p):
    """Per label, the threshold in 0.05..0.95 with the best F1 on validation."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    out = []
    for k in range(y.shape[1]):
        if y[:, k].sum() == 0:
            out.append(0.5)
            continue
        f1s = [f1_score(y[:, k], p[:, k] >= t, zero_division=0) for t in grid]
        out.append(float(grid[int(np.argmax(f1s))]))
    return np.array(out)


def predict(p, thresholds, relative=0.0):
    """What tutti reports (detect.rs `effective_threshold`): an instrument
    whose probability reaches its own threshold and `relative` times the
    window's top probability."""
    return p >= np.maximum(thresholds, relative * p.max(axis=1, keepdims=True))


RELATIVE_GRID = np.round(np.arange(0.0, 0.801, 0.05), 2)


def choose_relative(y, p, thresholds):
    """The relative threshold (0 = none) with the best per-window F1 on
    validation, averaged over windows (scikit-learn's average="samples"):
    unlike macro-F1, which counts each instrument's windows, it asks how
    right each window's report is, so it weighs an extra instrument beside
    a solo player as a listener does. Ties go to the smaller value."""
    f1s = [f1_score(y, predict(p, thresholds, r), average="samples", zero_division=0)
           for r in RELATIVE_GRID]
    return float(RELATIVE_GRID[int(np.argmax(f1s))])


def confused_pairs(y, pred, names, top=6, known=None):
    """The instruments most often heard as another: per window, every
    instrument present but missed paired with every one reported but absent.
    Each pair's count, and that count as a share of the first one's windows.
    Instruments outside `known` (never in the training data) are left out."""
    missed, extra = (y == 1) & ~pred, (y == 0) & pred
    if known is not None:
        missed &= known
    counts = missed.T.astype(np.int64) @ extra.astype(np.int64)
    support = y.sum(axis=0)
    order = np.dstack(np.unravel_index(np.argsort(-counts, axis=None), counts.shape))[0]
    return [{"present": names[a], "reported": names[b], "windows": int(counts[a, b]),
             "share": round(float(counts[a, b] / support[a]), 4)}
            for a, b in order[:top] if counts[a, b] > 0]


def metrics(y, p, thresholds, names, known=None, relative=0.0):
    """Scores of probabilities `p` against labels `y`, reported as tutti
    would with these thresholds (see `predict`). Macro averages take the
    instruments present in `y` (and in `known`, a mask of those the model
    was trained on, when given)."""
    pred = predict(p, thresholds, relative)
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, zero_division=0)
    present = y.sum(axis=0) > 0
    if known is not None:
        present &= known
    ap = [average_precision_score(y[:, k], p[:, k]) if present[k] else None for k in range(y.shape[1])]
    single = y.sum(axis=1) == 1
    poly = y.sum(axis=1) >= 2
    r = lambda v: round(float(v), 4)
    return {
        "windows": int(len(y)),
        "macro_f1": r(f1_score(y[:, present], pred[:, present], average="macro", zero_division=0)),
        "micro_f1": r(f1_score(y, pred, average="micro", zero_division=0)),
        "mAP": r(np.mean([a for a in ap if a is not None])),
        "samples_f1": r(f1_score(y, pred, average="samples", zero_division=0)),
        "macro_f1_single_instrument": r(f1_score(y[single][:, present], pred[single][:, present], average="macro", zero_division=0)) if single.any() else None,
        "macro_f1_mixtures": r(f1_score(y[poly][:, present], pred[poly][:, present], average="macro", zero_division=0)) if poly.any() else None,
        "confused": confused_pairs(y, pred, names, known=known),
        "per_instrument": {n: {"precision": r(prec[k]), "recall": r(rec[k]), "f1": r(f1[k]),
                               "ap": None if ap[k] is None else r(ap[k]), "support": int(support[k])}
                           for k, n in enumerate(names)},
    }


def room_mask(rec, meta):
    """Per window: was its recording played into a synthetic room?"""
    return column(rec, meta, "rt60") != ""


def test_subsets(y, p, thresholds, names, rec, meta, relative=0.0):
    """Metrics on parts of the test split: dry and in rooms; excerpts of
    the held-out movements and random passages."""
    room, piece = room_mask(rec, meta), column(rec, meta, "piece") != ""
    out = {}
    for name, mask in [("dry", ~room), ("rooms", room), ("held-out movements", piece),
                       ("random passages", ~piece)]:
        if mask.any():
            out[name] = metrics(y[mask], p[mask], thresholds, names, relative=relative)
    return out


def data_summary(y, rec, meta, names, fit, val, test):
    """What a model was trained and tested on, for its sidecar's `training`."""
    md = meta.get("metadata", {})
    pieces = {part: sorted({m["piece"] for m in md.values() if m.get("piece") and m.get("split") == part})
              for part in ("train", "test")}
    return {
        "data": meta.get("source"),
        "sources": sorted({m.get("soundfont", "?") for m in md.values()}) or ["unknown"],
        "rooms": sum(1 for m in md.values() if m.get("rt60")),
        "augmented": sum(1 for m in md.values() if m.get("augment")),
        "second_engine": sum(1 for m in md.values() if m.get("engine") == "oxisynth"),
        "score_excerpts": {"recordings": sum(1 for m in md.values() if m.get("piece")), "of_recordings": len(md),
                           "movements_train": len(pieces["train"]), "movements_test": len(pieces["test"])},
        "min_sounding_seconds": meta.get("min_sounding_seconds"),
        "hop_seconds": meta.get("hop_seconds"),
        "windows": {"fit": int(len(fit)), "validation": int(len(val)), "test": int(len(test))},
        "recordings": {"fit": len(set(rec[fit])), "validation": len(set(rec[val])), "test": len(set(rec[test]))},
        "positives_fit": {n: int(c) for n, c in zip(names, y[fit].sum(axis=0))},
        "split": "test = the dataset's test split (whole recordings); validation = 20% of training recordings, "
                 "grouped by recording (by movement for score excerpts); thresholds chosen on validation",
    }


def lofo(fit_predict, y, rec, split, meta, groups, names, args, log=print, on_fold=None):
    """Leave-one-family-out: for each sample family F, a model fitted on the
    train split of every other family (`fit_predict(fit_rows, val_rows)`
    returns a function from rows to probabilities; thresholds and the
    relative threshold are chosen on `val_rows`, which are those families'
    recordings too) and tested on F's test split: all of it, dry and in
    rooms. Macro averages take the instruments both sides have.
    `on_fold(entry)`, when given, runs after each fold, while the model
    `fit_predict` last made is that fold's (to export it, say)."""
    fams = families_of(rec, meta)
    if len(fams) < 2:
        return []
    room = room_mask(rec, meta)
    folds = []
    for held, in_held in fams:
        others = "+".join(n for n, _ in fams if n != held)
        fit, val = split_fit_validation(np.where((split == 0) & ~in_held)[0], groups, args)
        test = np.where((split == 1) & in_held)[0]
        log(f"LOFO: fitting on {others} ({len(fit)} windows), testing on {held} ({len(test)} windows)")
        score = fit_predict(fit, val)
        p_val, p_test = score(val), score(test)
        thresholds = choose_thresholds(y[val], p_val)
        relative = choose_relative(y[val], p_val, thresholds)
        entry = fold_entry(held, others, y[test], p_test, room[test], thresholds, relative, names,
                           known=y[fit].sum(axis=0) > 0)
        folds.append(entry)
        if on_fold is not None:
            on_fold(entry)
    return folds


LOFO_KEYS = ("macro_f1", "mAP", "samples_f1")


def fold_entry(held, fitted, y, p, room, thresholds, relative, names, known):
    """One LOFO fold's record: what was held out and fitted on, the
    thresholds, and the held-out test windows' metrics, whole, dry and in
    rooms (`room` marks the windows played into a room)."""
    entry = {"held_out": held, "fit": fitted, "relative_threshold": relative,
             "thresholds": [float(t) for t in thresholds]}
    for part, mask in [("all", np.ones(len(y), bool)), ("dry", ~room), ("rooms", room)]:
        if mask.any():
            entry[part] = metrics(y[mask], p[mask], thresholds, names, known=known, relative=relative)
    return entry


def fold_stem(held_out):
    """File stem of the LOFO fold model that never heard `held_out`."""
    return "lofo-" + held_out.split("+")[0].lower()


def lofo_summary(folds):
    """The mean and the worst fold of each LOFO figure, per part."""
    out = {}
    for part in ("all", "dry", "rooms"):
        for key in LOFO_KEYS:
            vals = [f[part][key] for f in folds if f.get(part)]
            if vals:
                out.setdefault(part, {})[key] = {"mean": round(float(np.mean(vals)), 4), "worst": min(vals)}
    return out


def lofo_lines(folds, title="Leave one sample family out (LOFO)"):
    """Markdown: each fold dry and in rooms, then the mean and the worst;
    per-instrument F1 of each fold on its dry recordings."""
    if not folds:
        return []
    lines = ["", f"### {title}", "",
             "Fitted on every sample family but one (thresholds on those families' validation recordings) and "
             "tested on the held-out family's test split: timbres and pieces the model never heard. This is "
             "how every recipe choice is made. Macro averages take the instruments both sides have.", "",
             "| held out | fitted on | windows dry / rooms | macro-F1 dry | mAP dry | per-window F1 dry "
             "| macro-F1 rooms | mAP rooms | per-window F1 rooms |",
             "|---|---|---|---|---|---|---|---|---|"]
    cell = lambda m, k: m[k] if m else "–"
    for f in folds:
        d, r = f.get("dry"), f.get("rooms")
        lines.append(f"| {f['held_out']} | {f['fit']} | {cell(d, 'windows')} / {cell(r, 'windows')} "
                     + "".join(f"| {cell(m, k)} " for m in (d, r) for k in LOFO_KEYS) + "|")
    s = lofo_summary(folds)
    for agg in ("mean", "worst"):
        vals = "".join(f"| {s[p][k][agg] if p in s else '–'} " for p in ("dry", "rooms") for k in LOFO_KEYS)
        lines.append(f"| **{agg}** | | {vals}|")
    names = list(folds[0].get("dry", folds[0]["all"])["per_instrument"])
    lines += ["", "F1 per instrument on each held-out family's dry recordings (– where it has none):", "",
              "| instrument | " + " | ".join(f["held_out"] for f in folds) + " |",
              "|---|" + "---|" * len(folds)]
    for n in names:
        row = []
        for f in folds:
            m = (f.get("dry") or f["all"])["per_instrument"][n]
            row.append(str(m["f1"]) if m["support"] else "–")
        lines.append(f"| {n} | " + " | ".join(row) + " |")
    return lines
