#!/usr/bin/env python3
"""Where the shipped model stands on issue 17's cost goals, measured, into
a JSON file the model card reads (`card.py --costs`):

- the model alone, one window on one core (criterion, `bench/per_window.rs`;
  goal <= 1.5 ms), and the features it reads, per window in a stream;
- `tutti analyze` on a 10-minute 44.1 kHz stereo file: CPU seconds (user +
  system, the best of `--runs`) and real time per core (goal >= 250x), with
  the forest, the model shipped before the ensemble, as the baseline run
  in the same command;
- `tutti listen` at hop 0.5 s (`bench/listen.py`): the share of a core
  (goal < 2 %).

    .venv/bin/python bench/costs.py [--out bench/costs.json] [--listen-seconds 60]

The file records the shipped model's sha256, so a card built for another
model says the figures are not its own. Timings on a shared machine drift
(by a fifth here): compare only figures from one run.
"""
import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
TUTTI = ROOT / "target/recipe/tutti"


def criterion_ms(name, since):
    """Mean of criterion's run of benchmark `name`, in ms; that run must
    have been after `since` (a time.time())."""
    path = ROOT / "target/criterion" / name / "new/estimates.json"
    if not path.is_file() or path.stat().st_mtime < since:
        sys.exit(f"{path}: criterion did not run `{name}`")
    return round(json.loads(path.read_text())["mean"]["point_estimate"] / 1e6, 4)


def analyze_cpu(model, wav, runs):
    """The least CPU seconds (user + system) of `runs` runs of analyze."""
    best = None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([str(TUTTI), "analyze", "--json", "--model", str(model), str(wav)],
                       stdout=subprocess.DEVNULL, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = cpu if best is None else min(best, cpu)
    return round(best, 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench/costs.json")
    ap.add_argument("--model", type=Path, default=ROOT / "models/tutti.json")
    ap.add_argument("--baseline", type=Path, default=ROOT / "models/forest.json")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--listen-seconds", type=float, default=60)
    args = ap.parse_args()
    sidecar = json.loads(args.model.read_text())
    stem = Path(sidecar["model_file"]).stem
    subprocess.run(["cargo", "build", "--profile", "recipe", "--bin", "tutti"], cwd=ROOT, check=True)

    model_bench = f"model {stem} ({sidecar['feature_set']}) in tract, one window"
    features_bench = f"features {sidecar['feature_set']}, per window in a stream (hop 0.5 s)"
    bench_cmd = ["cargo", "bench", "--profile", "recipe", "--bench", "per_window", "--",
                 f"^{re.escape(model_bench)}$|^{re.escape(features_bench)}$"]
    print("criterion:", " ".join(bench_cmd), flush=True)
    started = time.time()
    subprocess.run(bench_cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        parts = [sf.read(ROOT / f"samples/{n}.wav", dtype="int16")[0]
                 for n in ("piano", "violin_cello", "flute_bassoon")]
        x = np.resize(np.concatenate(parts), int(seconds * 44100))
        sf.write(wav, np.stack([x, x], axis=1), 44100, subtype="PCM_16")
        print(f"analyze: {args.minutes:g} min, 44.1 kHz stereo, best of {args.runs}", flush=True)
        cpu = {p.name: analyze_cpu(p, wav, args.runs) for p in (args.model, args.baseline)}
        listen_json = Path(tmp) / "listen.json"
        print(f"listen: bench/listen.py --seconds {args.listen_seconds:g}", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench/listen.py"), "--seconds", str(args.listen_seconds),
                        "--json", str(listen_json)], check=True, stdout=subprocess.DEVNULL)
        listen = json.loads(listen_json.read_text())

    costs = {
        "model_sha256": sidecar["onnx_sha256"],
        "model_file": sidecar["model_file"],
        "measured": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": ".venv/bin/python bench/costs.py",
        "model_ms_per_window": criterion_ms(model_bench, started),
        "features_ms_per_window": criterion_ms(features_bench, started),
        "criterion": " ".join(bench_cmd[:-2]),
        "analyze": {
            "seconds_of_audio": seconds,
            "cpu_seconds": cpu,
            "real_time_per_core": {k: round(seconds / v) for k, v in cpu.items()},
        },
        "listen_cpu_percent": {r["input"]: round(r["cpu_pct"], 2) for r in listen},
        "listen_peak_rss_mb": max(round(r["peak_rss_mb"], 1) for r in listen),
    }
    tmp = args.out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(costs, indent=1) + "\n")
    tmp.replace(args.out)
    print(json.dumps(costs, indent=1))


if __name__ == "__main__":
    main()
