#!/usr/bin/env python3
"""Per-window quality on streams whose instrumentation changes, as the
daemon hears a room: measured through `tutti analyze` itself, on timbres
the model never heard (leave one sample family out), and the daemon's
hold and margin chosen on them.

1. `build`: for every sample family, split (train, test) and condition
   (dry, rooms), the dataset's recordings of that kind are strung end to end
   into one stream (a new instrumentation every clip, 10 s), written as a
   dataset in the MusicNet layout (`tutti features` reads its labels, so a
   stream window's truth is what training windows are labelled with).
2. `measure`: each LOFO fold model (`train.py`, `cnn.py` or `ensemble.py
   --fold-models`; rebuild.sh gives the shipped kind's) analyses the
   streams of the family it never heard, once per hold and margin in the
   grid (`tutti analyze --json --hold --margin`, whose `on` field is the
   daemon's state). The train-split streams choose the hold and margin
   (the best mean per-window macro-F1 of the ON states over the folds,
   ties to fewer flips); the test-split streams report them beside the
   daemon's defaults and the raw windows.

Per stream: per-window macro-F1 (over the instruments present), per-window F1 over instruments (scikit-learn's "samples"), state
flips per minute, and false flips: a flip of an instrument whose truth does
not change within a window's length of it.

    python models/train/stream.py work/dataset --out work/streams \\
        --folds work/ensemble-folds --json work/streams.json
"""
import argparse
import csv
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import FAMILIES, fold_stem, load  # noqa: E402

# At the 0.5 s hop a hold of 0.5 s acts as none (measured), so it is not tried.
HOLDS = [0.0, 1.0, 1.5, 2.0, 3.0]
MARGINS = [0.0, 0.05, 0.1]
DEFAULT = (1.5, 0.05)  # detect::Hysteresis::default()


def read_metadata(dataset):
    with open(dataset / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def family_of(font):
    for fam in FAMILIES:
        if font in fam.split(","):
            return fam.split(",")[0]
    return None


def build(dataset, out, seconds, seed):
    """Writes the streams as test recordings of a MusicNet-layout dataset at
    `out`; returns its metadata rows."""
    rows = read_metadata(dataset)
    rng = np.random.default_rng(seed)
    (out / "test_data").mkdir(parents=True, exist_ok=True)
    (out / "test_labels").mkdir(parents=True, exist_ok=True)
    streams = []
    for fam in FAMILIES:
        head = fam.split(",")[0]
        for split in ("train", "test"):
            for cond in ("dry", "rooms"):
                pool = [r for r in rows if family_of(r["soundfont"]) == head and r["split"] == split
                        and (r["rt60"] != "") == (cond == "rooms")]
                if not pool:
                    continue
                order = rng.permutation(len(pool))
                sid = str(len(streams) + 1)
                frames, labels, total, rate = [], [], 0, None
                for i in order:
                    rec = pool[i]
                    with wave.open(str(dataset / f"{split}_data" / f"{rec['id']}.wav")) as w:
                        if rate is None:
                            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
                        if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (rate, width, channels):
                            sys.exit(f"{dataset}: recording {rec['id']} differs in format from the rest")
                        data = w.readframes(w.getnframes())
                        n = w.getnframes()
                    with open(dataset / f"{split}_labels" / f"{rec['id']}.csv", newline="") as f:
                        reader = csv.reader(f)
                        header = next(reader)
                        for line in reader:
                            line[0], line[1] = str(int(line[0]) + total), str(int(line[1]) + total)
                            labels.append(line)
                    frames.append(data)
                    total += n
                    if total >= seconds * rate:
                        break
                with wave.open(str(out / "test_data" / f"{sid}.wav"), "wb") as w:
                    w.setnchannels(channels)
                    w.setsampwidth(width)
                    w.setframerate(rate)
                    w.writeframes(b"".join(frames))
                with open(out / "test_labels" / f"{sid}.csv", "w", newline="") as f:
                    writer = csv.writer(f)
                    writer.writerow(header)
                    writer.writerows(labels)
                streams.append({"id": sid, "split": "test", "soundfont": head, "family": fam, "part": split,
                                "condition": cond, "seconds": round(total / rate, 1)})
    with open(out / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(streams[0]))
        writer.writeheader()
        writer.writerows(streams)
    return streams


def analyze(tutti, model, files, hop, hold, margin):
    """Per file, the `tutti analyze --json` windows in time order."""
    cmd = [tutti, "analyze", "--json", "--model", str(model), "--hop", str(hop),
           "--hold", str(hold), "--margin", str(margin), *map(str, files)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])}: {done.stderr.strip()}")
    out = {}
    for line in done.stdout.splitlines():
        d = json.loads(line)
        out.setdefault(d["file"], []).append(d)
    return out


def as_matrix(windows, key, names):
    index = {n: k for k, n in enumerate(names)}
    m = np.zeros((len(windows), len(names)), bool)
    for i, w in enumerate(windows):
        for n in w[key]:
            m[i, index[n]] = True
    return m


def flips(states, truth, tolerance):
    """State changes per instrument, and those with no change of that
    instrument's truth within `tolerance` windows."""
    changed = np.diff(states.astype(np.int8), axis=0) != 0
    truth_changed = np.diff(truth.astype(np.int8), axis=0) != 0
    near = truth_changed.copy()
    for s in range(1, tolerance + 1):
        near[s:] |= truth_changed[:-s]
        near[:-s] |= truth_changed[s:]
    return int(changed.sum()), int((changed & ~near).sum())


def scores(truth, pred, minutes, tolerance):
    present = truth.sum(axis=0) > 0
    out = {
        "macro_f1": round(float(f1_score(truth[:, present], pred[:, present], average="macro",
                                         zero_division=0)), 4),
        "samples_f1": round(float(f1_score(truth, pred, average="samples", zero_division=0)), 4),
    }
    total, false = flips(pred, truth, tolerance)
    out["flips_per_min"] = round(total / minutes, 2)
    out["false_flips_per_min"] = round(false / minutes, 2)
    return out


def measure(args, streams):
    truth_npz = args.out / "truth.npz"
    subprocess.run([args.tutti, "features", str(args.out), "--set", "seed26", "--hop", str(args.hop),
                    "--out", str(truth_npz)], check=True, stderr=subprocess.DEVNULL)
    _, y, rec, _, meta = load(truth_npz)
    names = [l["name"] for l in meta["labels"]]
    ids = meta["recordings"]
    truth = {ids[r]: y[rec == r].astype(bool) for r in np.unique(rec)}
    tolerance = int(round(args.window / args.hop))
    results = []
    for fam in FAMILIES:
        head = fam.split(",")[0]
        model = args.folds / f"{fold_stem(head)}.json"
        if not model.exists():
            continue
        sidecar = json.loads(model.read_text())
        fam_streams = [s for s in streams if s["soundfont"] == head]
        files = [args.out / "test_data" / f"{s['id']}.wav" for s in fam_streams]
        for hold, margin in [(h, m) for h in HOLDS for m in MARGINS]:
            windows = analyze(args.tutti, model, files, args.hop, hold, margin)
            for s, f in zip(fam_streams, files):
                w = windows[str(f)]
                t = truth[s["id"]]
                n = min(len(w), len(t))
                if abs(len(w) - len(t)) > 1:
                    sys.exit(f"{f}: analyze gave {len(w)} windows, features {len(t)}")
                raw, on = as_matrix(w[:n], "instruments", names), as_matrix(w[:n], "on", names)
                minutes = s["seconds"] / 60
                results.append({**s, "model": model.name, "hold": hold, "margin": margin,
                                "relative_threshold": sidecar["relative_threshold"],
                                "windows": scores(t[:n], raw, minutes, tolerance),
                                "states": scores(t[:n], on, minutes, tolerance),
                                "truth_flips_per_min": round(flips(t[:n], t[:n], 0)[0] / minutes, 2)})
        print(f"stream: {model.name} on {head}'s {len(fam_streams)} streams, {len(HOLDS) * len(MARGINS)} settings",
              flush=True)
    return results


def summarise(results):
    """Chooses hold and margin on the train-split streams; the test-split
    figures for the choice, the daemon's default and raw windows."""
    def mean(rows, part, key):
        return round(float(np.mean([r[part][key] for r in rows])), 4)

    grid = sorted({(r["hold"], r["margin"]) for r in results})
    tune = {g: [r for r in results if r["part"] == "train" and (r["hold"], r["margin"]) == g] for g in grid}
    # Without tuning streams (a tiny rendering), the daemon's default stays.
    best = max(grid, key=lambda g: (mean(tune[g], "states", "macro_f1"), -mean(tune[g], "states", "flips_per_min"))) \
        if all(tune.values()) else DEFAULT
    table = []
    for g in grid:
        rows = tune[g]
        if not rows:
            continue
        table.append({"hold": g[0], "margin": g[1], "macro_f1": mean(rows, "states", "macro_f1"),
                      "flips_per_min": mean(rows, "states", "flips_per_min"),
                      "false_flips_per_min": mean(rows, "states", "false_flips_per_min")})
    report = {}
    for name, g in [("chosen", best), ("default", DEFAULT)]:
        rows = [r for r in results if r["part"] == "test" and (r["hold"], r["margin"]) == g]
        report[name] = [{k: r[k] for k in ("family", "condition", "seconds", "model", "hold", "margin",
                                            "states", "windows", "truth_flips_per_min")} for r in rows]
    return {"chosen": {"hold": best[0], "margin": best[1]}, "default": {"hold": DEFAULT[0], "margin": DEFAULT[1]},
            "tuning": table, "test": report}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="the rendered dataset (tutti-synth's MusicNet layout)")
    ap.add_argument("--out", type=Path, required=True, help="directory for the streams (rewritten)")
    ap.add_argument("--folds", type=Path, required=True, help="the LOFO fold models (train.py --fold-models)")
    ap.add_argument("--json", type=Path, required=True, help="where the results go")
    ap.add_argument("--seconds", type=float, default=180, help="length of each stream")
    ap.add_argument("--hop", type=float, default=0.5)
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--tutti", default="target/recipe/tutti")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.out.exists():
        for p in sorted(args.out.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    streams = build(args.dataset, args.out, args.seconds, args.seed)
    print(f"stream: {len(streams)} streams of up to {args.seconds:.0f} s in {args.out}", flush=True)
    results = measure(args, streams)
    summary = {**summarise(results), "folds": str(args.folds)}
    tmp = args.json.with_suffix(".partial")
    tmp.write_text(json.dumps({"summary": summary, "results": results}, indent=1) + "\n")
    tmp.replace(args.json)
    c = summary["chosen"]
    print(f"stream: chose hold {c['hold']} s, margin {c['margin']}; wrote {args.json}")


if __name__ == "__main__":
    main()
