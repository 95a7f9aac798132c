#!/usr/bin/env bash
# The seed study's API v2 stress test, against `tutti serve`: 1000
# `POST /v1/predict` of a 2-second 44.1 kHz clip (the first 2 s of
# samples/violin_cello.wav) from 100 concurrent clients, with the load
# tester on the same machine. Then, with --soak SECONDS, the same clip at
# half the rate the stress test reached, for that long, sampling the
# server's RSS every 10 s.
#
#   bench/http.sh [--bin target/release/tutti] [--model models/tutti.json]
#                 [--requests 1000] [--clients 100] [--soak 600] [--json FILE]
#
# The load tester is oha, pinned and built once into target/tools. Without
# --bin the release binary (what ships) is built and used.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="" model=models/tutti.json requests=1000 clients=100 soak=0 json_out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    *) echo "bench/http.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

OHA_VERSION=1.5.0
oha=target/tools/bin/oha
if ! [ -x "$oha" ] || ! "$oha" --version | grep -q "$OHA_VERSION"; then
  echo "bench/http.sh: building oha $OHA_VERSION into target/tools" >&2
  cargo install oha --version "$OHA_VERSION" --locked --root target/tools --quiet
fi
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=target/release/tutti
fi

work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/clip.wav" <<'EOF'
import sys, wave
with wave.open("samples/violin_cello.wav") as r:
    assert (r.getframerate(), r.getnchannels(), r.getsampwidth()) == (44100, 1, 2)
    frames = r.readframes(2 * 44100)
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(44100)
    w.writeframes(frames)
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -u TUTTI_MODEL -u TUTTI_HTTP_TOKEN TUTTI_LOG=warn \
  "$bin" serve --config /dev/null --model "$model" --http "127.0.0.1:$port" &
server=$!
url="http://127.0.0.1:$port/v1/predict"
for _ in $(seq 100); do
  python3 -c 'import urllib.request,sys
try: urllib.request.urlopen(sys.argv[1], timeout=1)
except Exception: sys.exit(1)' "http://127.0.0.1:$port/v1/status" && break
  sleep 0.1
done

load() { "$oha" --no-tui -j -m POST -T audio/wav -D "$work/clip.wav" "$@" "$url"; }

# Warm-up: page in the model, fill the pools.
load -n 50 -c 4 >/dev/null
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }

load -n "$requests" -c "$clients" >"$work/stress.json"

soak_json=null
if [ "$soak" -gt 0 ]; then
  rate=$(python3 -c 'import json,sys; print(max(1, round(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"] / 2)))' "$work/stress.json")
  echo "bench/http.sh: soak for $soak s at $rate requests/s" >&2
  load -z "${soak}s" -q "$rate" -c 50 >"$work/soak.json" &
  loader=$!
  : >"$work/rss"
  start=$(date +%s)
  while kill -0 "$loader" 2>/dev/null; do
    echo "$(( $(date +%s) - start )) $(rss_kb)" >>"$work/rss"
    sleep 10
  done
  wait "$loader"
  echo "$(( $(date +%s) - start )) $(rss_kb)" >>"$work/rss"
  soak_json=$(python3 - "$work/soak.json" "$work/rss" "$rate" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
rss = [tuple(map(int, l.split())) for l in open(sys.argv[2]) if len(l.split()) == 2]
# The first sample after 30 s is the start: pools and allocator settle.
start = next((kb for t, kb in rss if t >= 30), rss[0][1])
print(json.dumps({
    "rate": int(sys.argv[3]),
    "requests": sum(d["statusCodeDistribution"].values()),
    "status": d["statusCodeDistribution"],
    "p99_ms": round(d["latencyPercentiles"]["p99"] * 1e3, 1),
    "rss_start_mb": round(start / 1024, 1),
    "rss_end_mb": round(rss[-1][1] / 1024, 1),
    "rss_max_mb": round(max(kb for _, kb in rss) / 1024, 1),
    "rss_samples": rss,
}))
EOF
)
fi

python3 - "$work/stress.json" "$soak_json" "$requests" "$clients" "$json_out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
soak = json.loads(sys.argv[2])
requests, clients, out = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s, p = d["summary"], d["latencyPercentiles"]
ok = d["statusCodeDistribution"].get("200", 0)
result = {
    "requests": requests, "clients": clients, "answered_200": ok,
    "status": d["statusCodeDistribution"], "errors": d["errorDistribution"],
    "total_s": round(s["total"], 3), "requests_per_s": round(s["requestsPerSec"], 1),
    "p50_ms": round(p["p50"] * 1e3, 1), "p99_ms": round(p["p99"] * 1e3, 1),
    "vs_seed": round(51.35 / s["total"], 1), "soak": soak,
}
print(f"| {requests} POST /v1/predict, {clients} clients | {ok} answered 200 | "
      f"{s['total']:.2f} s ({51.35 / s['total']:.1f}x the seed's 51.35 s) | "
      f"p50 {p['p50'] * 1e3:.0f} ms, p99 {p['p99'] * 1e3:.0f} ms | {s['requestsPerSec']:.0f} requests/s |")
if soak:
    print(f"| soak {soak['requests']} requests at {soak['rate']}/s | status {soak['status']} | "
          f"RSS {soak['rss_start_mb']} MB at 30 s, {soak['rss_end_mb']} MB at the end, "
          f"{soak['rss_max_mb']} MB at most | p99 {soak['p99_ms']} ms |")
if out:
    json.dump(result, open(out, "w"), indent=1)
EOF
