#!/usr/bin/env python3
"""What `tutti listen` costs while it runs: CPU, latency and peak memory.

A recording loops through `tutti listen --input FILE --loop` at real-time
pace, hop 0.5 s, publishing to a local mosquitto that `mosquitto_sub`
listens to. For each input format it reports:

- CPU: tutti's user + system time over the measured span, as a share of one
  core, and mosquitto's over the same span for scale;
- latency from the end of the window (the detection's `timestamp`: when the
  window's last sample reached tutti's ring) to the subscriber, p50 / p99;
- the same from the last sample the window's features read: seed26's last
  frame is centred on the window's end, so the features need half a frame
  (1024 samples, 46 ms) more audio; this is what the pipeline itself adds;
- peak RSS: VmHWM of the tutti process.

    bench/listen.py [--seconds 120] [--bin target/recipe/tutti] [--json FILE]

Standard library only; needs mosquitto and mosquitto-clients.
"""

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def thread_seconds(pid):
    """CPU seconds per thread name (tutti names its threads)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def status_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def make_inputs(dir):
    """The duet recording in three device formats: the model's own rate
    (22050 Hz mono, nothing to resample), CD (44.1 kHz stereo) and 48 kHz
    stereo. The frames are the same; only the declared rate changes."""
    with wave.open(str(ROOT / "samples/violin_cello.wav")) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        mono = w.readframes(w.getnframes())
    stereo = bytearray()
    for i in range(0, len(mono), 2):
        stereo += mono[i : i + 2] * 2
    out = []
    for name, rate, channels, frames in [
        ("22050 Hz mono", 22050, 1, mono),
        ("44100 Hz stereo", 44100, 2, bytes(stereo)),
        ("48000 Hz stereo", 48000, 2, bytes(stereo)),
    ]:
        path = dir / f"{rate}-{channels}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(frames)
        out.append((name, path))
    return out


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def parse_time(iso):
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.timezone.utc
    ).timestamp()


RATE, HOP, LENGTH = 22050, 11025, 44100  # the model's rate; hop 0.5 s, 2 s
FRAME, FRAME_HOP = 2048, 512  # seed26's analysis frames


def read_lookahead(seq):
    """Seconds of audio past window `seq`'s end that its features read (the
    windower's rule: frames centred from the one nearest the window's start,
    one per frame hop across the window, each reaching half a frame out)."""
    start = seq * HOP
    first = (start + FRAME_HOP // 2) // FRAME_HOP
    last = first + LENGTH // FRAME_HOP
    read_end = max(last * FRAME_HOP + FRAME // 2, start + LENGTH)
    return (read_end - start - LENGTH) / RATE


def run_one(args, name, wav, port, broker_pid, dir):
    prefix = f"bench/{wav.stem}"
    sub_out = dir / f"{wav.stem}.sub"
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-q", "1", "-t", f"{prefix}/detections",
         "-F", "%U %p"],
        stdout=open(sub_out, "w"),
    )
    time.sleep(0.5)
    env = dict(os.environ, TUTTI_LOG="warn")
    env.pop("TUTTI_MODEL", None)
    tutti = subprocess.Popen(
        [args.bin, "listen", "--input", str(wav), "--loop", "--hop", "0.5",
         "--model", str(ROOT / "models/tutti.json"),
         "--broker", f"mqtt://127.0.0.1:{port}", "--topic-prefix", prefix,
         "--state-dir", str(dir / f"state-{wav.stem}")],
        env=env,
    )
    # Start-up (model load, first window) is not steady state.
    time.sleep(args.warmup)
    t0, c0, b0 = time.monotonic(), cpu_seconds(tutti.pid), cpu_seconds(broker_pid)
    th0 = thread_seconds(tutti.pid)
    time.sleep(args.seconds)
    t1, c1, b1 = time.monotonic(), cpu_seconds(tutti.pid), cpu_seconds(broker_pid)
    th1 = thread_seconds(tutti.pid)
    hwm = status_kib(tutti.pid, "VmHWM")
    tutti.send_signal(signal.SIGTERM)
    tutti.wait(timeout=20)
    time.sleep(0.3)
    sub.terminate()
    sub.wait()
    latencies, from_read = [], []
    for line in sub_out.read_text().splitlines():
        received, payload = line.split(" ", 1)
        d = json.loads(payload)
        if d["seq"] < 2 or d["replayed"]:
            continue
        ms = (float(received) - parse_time(d["timestamp"])) * 1000
        latencies.append(ms)
        from_read.append(ms - 1000 * read_lookahead(d["seq"]))
    wall = t1 - t0
    return {
        "input": name,
        "windows": len(latencies),
        "cpu_pct": 100 * (c1 - c0) / wall,
        "threads": {n: 100 * (th1[n] - th0.get(n, 0)) / wall for n in th1
                    if th1[n] - th0.get(n, 0) > 0},
        "broker_cpu_pct": 100 * (b1 - b0) / wall,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "read_p50_ms": percentile(from_read, 50),
        "read_p99_ms": percentile(from_read, 99),
        "peak_rss_mb": hwm / 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=120, help="measured span per input")
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--bin", default=str(ROOT / "target/recipe/tutti"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        subprocess.run(["cargo", "build", "--profile", "recipe", "--bin", "tutti"],
                       cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        dir = Path(tmp)
        port = free_port()
        conf = dir / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            rows = [run_one(args, name, wav, port, broker.pid, dir)
                    for name, wav in make_inputs(dir)]
        finally:
            broker.terminate()
            broker.wait()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"tutti listen, hop 0.5 s, {args.seconds:.0f} s per input after "
          f"{args.warmup:.0f} s warm-up ({os.cpu_count()} cores)")
    print("latency in ms at the subscriber: from the window's end | from the "
          "last sample its features read")
    print(f"{'input':<17}{'windows':>8}{'CPU %':>8}{'broker %':>10}"
          f"{'end p50':>9}{'end p99':>9}{'read p50':>10}{'read p99':>10}{'peak RSS':>11}")
    for r in rows:
        print(f"{r['input']:<17}{r['windows']:>8}{r['cpu_pct']:>8.2f}"
              f"{r['broker_cpu_pct']:>10.2f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{r['read_p50_ms']:>10.1f}{r['read_p99_ms']:>10.1f}{r['peak_rss_mb']:>8.1f} MB")
    print("CPU % per thread (tutti = main thread: MQTT and outbox; tutti-file = the file "
          "source, a microphone's stand-in; tutti-worker = windows, features, model):")
    for r in rows:
        parts = ", ".join(f"{n} {v:.2f}" for n, v in sorted(r["threads"].items()))
        print(f"  {r['input']:<17}{parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
