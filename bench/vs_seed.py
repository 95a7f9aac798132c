#!/usr/bin/env python3
"""End-to-end speed: `tutti analyze` against the seed pipeline, same file, same hop.

The seed pipeline is the study's: librosa computes the 26 features of each
2-second window, then scikit-learn's StandardScaler -> PCA(16) -> random forest
predict_proba, one window at a time. Its forest is fitted here on the same
features and settings as the shipped model (fitting is not timed).

    .venv/bin/python bench/vs_seed.py [--seconds 60] [--tutti target/recipe/tutti]

Needs work/features.npz (from models/train/rebuild.sh).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models/train"))
from make_feature_fixtures import seed26  # noqa: E402  (the librosa definitions)

SR = 22050


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--hop", type=float, default=0.5)
    ap.add_argument("--tutti", default=str(ROOT / "target/recipe/tutti"))
    ap.add_argument("--features", default=str(ROOT / "work/features.npz"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    side = json.loads((ROOT / "models/tutti.json").read_text())
    # The forest's settings: the shipped model's own, or its forest member's.
    t = next((m["training"] for m in side["training"].get("members", []) if "trees" in m["training"]),
             side["training"])
    d = np.load(args.features)
    x, y = d["x"], d["y"]
    sc = StandardScaler().fit(x)
    pca = PCA(t["pca_components"], random_state=0).fit(sc.transform(x))
    rf = RandomForestClassifier(t["trees"], max_features="sqrt", min_samples_split=t["min_samples_split"],
                                max_depth=t["max_depth"], n_jobs=1, random_state=0)
    rf.fit(pca.transform(sc.transform(x)), y)

    # The test recording: the bundled samples, tiled, at 44.1 kHz as recorded.
    parts = [sf.read(p, dtype="float32")[0] for p in sorted((ROOT / "samples").glob("*.wav"))]
    audio = np.concatenate(parts)
    n = int(args.seconds * 44100)
    audio = np.tile(audio, n // len(audio) + 1)[:n]
    tmp = Path(tempfile.mkdtemp()) / "bench.wav"
    sf.write(tmp, audio, 44100, subtype="PCM_16")

    def seed():
        y, _ = librosa.load(tmp, sr=SR)  # resampling is part of the pipeline
        win, hop = 2 * SR, int(args.hop * SR)
        count = 0
        for start in range(0, len(y) - win + 1, hop):
            f = seed26(y[start:start + win])
            row = np.array([list(f.values())], dtype=np.float32)
            rf.predict_proba(pca.transform(sc.transform(row)))
            count += 1
        return count

    def tutti():
        out = subprocess.run([args.tutti, "analyze", "--json", "--hop", str(args.hop), str(tmp)],
                             check=True, capture_output=True, text=True).stdout
        return len(out.splitlines())

    seed()  # warm up librosa's caches and numba
    results = {}
    for name, fn in [("tutti analyze", tutti), ("seed pipeline (librosa + scikit-learn)", seed)]:
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            windows = fn()
            times.append(time.perf_counter() - t0)
        results[name] = (min(times), windows)
    base = results["seed pipeline (librosa + scikit-learn)"][0]
    print(f"{args.seconds:.0f} s recording, hop {args.hop} s, best of {args.runs} runs, one process each:")
    print("| pipeline | windows | wall time (s) | per window (ms) | x real time | speed-up vs seed |")
    print("|---|---|---|---|---|---|")
    for name, (secs, windows) in results.items():
        print(f"| {name} | {windows} | {secs:.2f} | {1000 * secs / windows:.2f} | {args.seconds / secs:.0f} | "
              f"{base / secs:.0f}x |")


if __name__ == "__main__":
    main()
