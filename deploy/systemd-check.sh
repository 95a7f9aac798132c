#!/usr/bin/env bash
# The package under a real systemd, as root:
#   deploy/systemd-check.sh tutti_X_amd64.deb tutti_X-2_amd64.deb
# Boots a Debian bookworm container (systemd-nspawn, systemd as PID 1, its
# own network with mosquitto on 127.0.0.1) with the first package installed
# and a WAV file as input.device, and checks what a user relies on: start at
# boot, detections on the broker, restart after SIGKILL with the last will,
# a clean stop that leaves `offline` retained, the journal's priorities, the
# outbox in /var/lib/private/tutti across a broker outage and a restart,
# the sandbox's score, the watchdog on a stalled input, the shipped drop-in
# for a piped source (READY and the watchdog from tutti, the main process),
# and an upgrade to the second package that keeps the config and the
# outbox.
# The container's root is made with debootstrap (about 3 min), or copied
# from $TUTTI_NSPAWN_ROOT when that names a pristine one.
#   deploy/systemd-check.sh --make-root DIR   only makes such a pristine root
set -euo pipefail
cd "$(dirname "$0")/.."
# The container's root: Debian bookworm with systemd, mosquitto and ALSA's
# library, from the mirror apt uses here.
make_root() {
  local mirror
  mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,libasound2,mosquitto,mosquitto-clients \
    bookworm "$1" "${mirror:-http://deb.debian.org/debian}"
}
if [ "${1:-}" = --make-root ]; then
  make_root "${2:?usage: deploy/systemd-check.sh --make-root DIR}"
  exit
fi
deb=${1:?usage: deploy/systemd-check.sh PACKAGE.deb UPGRADE.deb}
upgrade=${2:?usage: deploy/systemd-check.sh PACKAGE.deb UPGRADE.deb}
say() { echo "systemd-check: $*"; }
fail() {
  echo "systemd-check: FAILED: $*" >&2
  if [ -n "${init:-}" ]; then
    echo "--- systemctl status tutti" >&2
    inside systemctl status tutti --no-pager -n 0 >&2 || true
    echo "--- journalctl -u tutti (last 40)" >&2
    inside journalctl -u tutti --no-pager -n 40 >&2 || true
  fi
  exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (it boots a container)"
for tool in systemd-nspawn debootstrap nsenter python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install systemd-container debootstrap)"
done
work=$(mktemp -d /var/tmp/tutti-systemd-check.XXXXXX)
root=$work/root
cgroup=$(basename "$work")
# The hierarchies where the container gets its own cgroup: the named
# systemd one and the unified one (cgroup v1 or hybrid), or the root (v2).
cgroup_roots=()
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
  [ -e "$h/cgroup.procs" ] && cgroup_roots+=("$h")
done
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then cgroup_roots=(/sys/fs/cgroup); fi
nspawn=
init=
# The nsenter processes of commands left running inside (a subscriber, the
# FIFO's writers): the container cannot finish powering off while they, its
# children's parents on the host, are alive.
helpers=()
cleanup() {
  local status=$?
  if [ "${#helpers[@]}" -gt 0 ]; then kill -9 "${helpers[@]}" 2>/dev/null || true; fi
  if [ -n "$init" ]; then
    inside systemctl poweroff >/dev/null 2>&1 || true
  fi
  if [ -n "$nspawn" ]; then
    for _ in $(seq 1 30); do kill -0 "$nspawn" 2>/dev/null || break; sleep 1; done
    if kill -0 "$nspawn" 2>/dev/null; then
      say "the container did not power off within 30 s; killing it"
      kill -9 "$nspawn" "$init" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
  fi
  for h in "${cgroup_roots[@]}"; do
    [ -d "$h/$cgroup" ] && find "$h/$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
# Stopped from outside (CI gives up): clean up all the same.
trap 'exit 143' TERM INT
inside() { nsenter -t "$init" -m -u -i -n -p -- "$@"; }
# Waits up to $1 seconds for the shell condition $2 to hold (evaluated
# afresh each time).
within() {
  for _ in $(seq 1 "$(($1 * 4))"); do
    if eval "$2" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}
prop() { inside systemctl show tutti -p "$1" --value; }
active() { [ "$(prop ActiveState)" = active ]; }
# This run of tutti's journal (the unit's current invocation).
this_run() { inside journalctl --no-pager -o cat "_SYSTEMD_INVOCATION_ID=$(prop InvocationID)"; }

# --- the root -------------------------------------------------------------
if [ -n "${TUTTI_NSPAWN_ROOT:-}" ] && [ -x "$TUTTI_NSPAWN_ROOT/usr/bin/mosquitto_sub" ]; then
  say "copying the pristine root $TUTTI_NSPAWN_ROOT"
  cp -a "$TUTTI_NSPAWN_ROOT" "$root"
else
  say "debootstrap bookworm"
  make_root "$root" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
fi
cp "$deb" "$root/root/tutti.deb"
cp "$upgrade" "$root/root/tutti-2.deb"
# Five minutes of the violin and cello sample: the input, a WAV file.
mkdir -p "$root/srv/tutti"
python3 - "$root/srv/tutti/long.wav" <<'EOF'
import sys, wave
with wave.open("samples/violin_cello.wav") as w:
    params, frames = w.getparams(), w.readframes(w.getnframes())
with wave.open(sys.argv[1], "wb") as out:
    out.setparams(params)
    for _ in range(40):
        out.writeframes(frames)
EOF
chmod -R a+rX "$root/srv/tutti"
# Installed as a user would, before the first boot: postinst enables it.
systemd-nspawn -q -D "$root" --register=no --keep-unit sh -c 'dpkg -i /root/tutti.deb' \
  >"$work/install.log" 2>&1 || true
chroot "$root" dpkg -s tutti >/dev/null 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -i"; }
config=$root/etc/tutti/tutti.toml
set_key() { sed -i "s|^$1 = .*|$1 = $2|" "$config"; grep -q "^$1 = $2\$" "$config" || fail "could not set $1"; }
set_key device '"/srv/tutti/long.wav"'
set_key broker '"mqtt://127.0.0.1:1883"'
set_key device_id '"nspawn"'
echo "# Edited by systemd-check: the upgrade must keep this line." >>"$config"

# --- boot -----------------------------------------------------------------
# With --keep-unit and no systemd on the host, nspawn and the container's
# systemd would share this script's cgroup, and the container's poweroff
# would kill this script and whatever runs it (CI) too. So the container
# gets cgroups of its own, and a session of its own.
for h in "${cgroup_roots[@]}"; do mkdir -p "$h/$cgroup"; done
(
  for h in "${cgroup_roots[@]}"; do echo "$BASHPID" >"$h/$cgroup/cgroup.procs"; done
  exec setsid systemd-nspawn -D "$root" --register=no --keep-unit --private-network \
    --console=passive -b </dev/null >"$work/boot.log" 2>&1
) &
nspawn=$!
within 30 'pgrep -P "$nspawn"' || fail "the container did not start: $(tail -5 "$work/boot.log")"
init=$(pgrep -P "$nspawn" | head -n 1)
booted() { case $(inside systemctl is-system-running 2>/dev/null) in running | degraded) return 0 ;; esac; return 1; }
within 90 booted || fail "the container did not finish booting"
say "booted; systemd $(inside systemctl --version | head -n 1 | cut -d' ' -f2)"
[ "$(inside systemctl is-enabled tutti)" = enabled ] || fail "tutti is not enabled"
# Type=notify: active only once tutti said READY (after its first window).
within 60 active || fail "tutti did not become active at boot"
say "started at boot: active (READY after the first window)"

# A subscriber for the rest of the check, from inside the container.
nsenter -t "$init" -m -u -i -n -p -- mosquitto_sub -h 127.0.0.1 -v -q 1 -t 'tutti/#' \
  </dev/null >"$work/sub.log" 2>&1 &
sub=$!
helpers+=("$sub")
seen() { grep -c "$1" "$work/sub.log" 2>/dev/null || true; }
within 20 '[ "$(seen "^tutti/nspawn/detections ")" -ge 3 ]' || fail "no detections on mosquitto"
say "detections arrive on mosquitto ($(seen '^tutti/nspawn/detections ') so far)"

# --- journal: tutti's lines with their priorities ---------------------------
# Lines of the unit's journal at exactly priority $1: systemd-journal-logger
# gives info 5 (notice), warnings 4, errors 3.
at_priority() { inside journalctl -u tutti --no-pager -o cat -p "$1..$1"; }
at_priority 5 | grep 'The first window is analysed: ready' >/dev/null \
  || fail "no info line (priority 5) 'The first window is analysed' in the journal"
say "the journal holds tutti's info lines at priority 5 (notice)"

# --- SIGKILL: restarted, and the broker sent the will -----------------------
pid=$(prop MainPID)
inside systemctl kill -s KILL tutti
within 30 '[ "$(prop NRestarts)" = 1 ]' || fail "no restart after SIGKILL (NRestarts $(prop NRestarts))"
within 60 active || fail "not active again after SIGKILL"
[ "$(prop MainPID)" != "$pid" ] || fail "the same MainPID after SIGKILL"
within 30 'grep -q "^tutti/nspawn/status offline" "$work/sub.log"' || fail "the broker did not publish the will (offline)"
say "SIGKILL: restarted (NRestarts 1), the will 'offline' was published"

# --- a broker outage: the outbox holds detections, and a restart keeps them ---
box=$root/var/lib/private/tutti/outbox.jsonl
inside systemctl stop mosquitto
kill -9 "$sub" 2>/dev/null || true
within 20 '[ -s "$box" ]' || fail "no outbox at /var/lib/private/tutti while the broker is down"
sleep 3
at_priority 4 | grep 'unreachable' >/dev/null \
  || fail "no warning (priority 4) about the unreachable broker in the journal"
say "the broker's outage is a warning at priority 4; $(wc -l <"$box") detections wait in $box"
inside systemctl restart tutti
within 60 active || fail "not active after a restart"
this_run | grep 'from an earlier run wait in the outbox' >/dev/null \
  || fail "the outbox did not survive the restart"
waiting=$(wc -l <"$box")
inside systemctl start mosquitto
# Sent, acknowledged, and the file started afresh.
drained() { [ "$(stat -c %s "$box")" -lt 4096 ]; }
within 60 drained || fail "the outbox did not drain once the broker was back ($(wc -l <"$box") lines)"
say "the outbox survived a restart ($waiting detections waiting) and drained when the broker came back"

# --- stop: in time, successful, offline retained ---------------------------
start=$SECONDS
inside systemctl stop tutti
took=$((SECONDS - start))
[ "$took" -lt 15 ] || fail "systemctl stop took ${took}s (TimeoutStopSec is 15s)"
[ "$(prop Result)" = success ] || fail "stop ended with Result=$(prop Result)"
status=$(inside mosquitto_sub -h 127.0.0.1 -t tutti/nspawn/status -C 1 -W 5 || true)
[ "$status" = offline ] || fail "retained status is '$status', not offline"
say "systemctl stop took ${took}s: Result=success, retained 'offline'"

# --- the sandbox, rated by the real systemd --------------------------------
exposure=$(inside systemd-analyze security tutti --no-pager | sed -n 's/.*Overall exposure level for tutti.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security gave no rating"
python3 -c "import sys; sys.exit(0 if float('$exposure') <= 2.0 else 1)" \
  || fail "systemd-analyze security rates tutti $exposure (> 2.0)"
say "systemd-analyze security tutti: $exposure"

# --- a stalled input: the watchdog restarts tutti --------------------------
# An ALSA capture device that reads raw audio from a FIFO; the writer stops
# while a holder keeps the FIFO open, so a read never returns.
cat >"$root/etc/asound.conf" <<'EOF'
pcm.filecap {
  type file
  slave.pcm { type null }
  file "/dev/null"
  infile "/srv/tutti/capture.fifo"
  format "raw"
}
pcm.!default {
  type plug
  slave { pcm "filecap" format S16_LE rate 22050 channels 1 }
}
EOF
inside sh -c 'mkfifo -m 0666 /srv/tutti/capture.fifo'
set_key device '"default"'
set_key sample_rate 22050
nsenter -t "$init" -m -u -i -n -p -- sh -c 'sleep 900 >/srv/tutti/capture.fifo' </dev/null &
helpers+=("$!")
# Real-time noise, 0.1 s at a time (22050 Hz, 16 bits, mono), until told.
nsenter -t "$init" -m -u -i -n -p -- sh -c 'while [ ! -e /srv/tutti/stop ]; do
  head -c 4410 /dev/urandom; sleep 0.1; done >/srv/tutti/capture.fifo' </dev/null &
helpers+=("$!")
inside systemctl start tutti
within 60 active || fail "not active on the ALSA capture"
restarts=$(prop NRestarts)
touch "$root/srv/tutti/stop"
since=$SECONDS
within 90 '[ "$(prop NRestarts)" -gt "$restarts" ]' || fail "the watchdog did not restart tutti on a stalled input"
inside journalctl -u tutti --no-pager -n 50 | grep "Failed with result 'watchdog'" >/dev/null \
  || fail "the journal does not say the watchdog fired"
say "a stalled input: the watchdog restarted tutti $((SECONDS - since))s after the input stopped"
inside systemctl stop tutti

# --- a piped source: the shipped drop-in, READY and the watchdog ----------
# deploy/examples/piped-source.conf as installed, with a stand-in for
# ffmpeg that says which URL it got and writes real-time noise until told
# to stall (its stdout stays open: no end of stream).
cat >"$root/srv/tutti/camera" <<'EOF'
#!/bin/sh
echo "stand-in camera: $1" >&2
while [ ! -e /srv/tutti/stop-camera ]; do head -c 4410 /dev/urandom; sleep 0.1; done
exec sleep 900
EOF
chmod 755 "$root/srv/tutti/camera"
dropin=$root/etc/systemd/system/tutti.service.d/piped-source.conf
mkdir -p "$(dirname "$dropin")"
python3 - "$root/usr/share/doc/tutti/examples/piped-source.conf" "$dropin" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text, n = re.subn(r'exec ffmpeg [^)]*', 'exec /srv/tutti/camera "$$CAMERA"', text)
assert n == 1, "the drop-in has no ffmpeg line"
open(sys.argv[2], "w").write(text)
EOF
printf 'CAMERA=rtsp://check.invalid/stream1\nSOURCE_NAME=door\n' >"$root/etc/tutti/camera.env"
chmod 600 "$root/etc/tutti/camera.env"
inside systemctl daemon-reload
inside systemctl start tutti
within 60 active || fail "not active on the piped source"
pid=$(prop MainPID)
[ "$(inside cat "/proc/$pid/comm")" = tutti ] || fail "the piped unit's main process is $(inside cat "/proc/$pid/comm"), not tutti"
within 20 '[ "$(seen "\"source\":\"door\"")" -ge 3 ]' || fail "no detections from the piped source named door"
this_run | grep -q 'stand-in camera: rtsp://check.invalid/stream1' || fail "the producer did not get the camera URL"
restarts=$(prop NRestarts)
fired=$(inside journalctl -u tutti --no-pager -o cat | grep -c "Failed with result 'watchdog'" || true)
touch "$root/srv/tutti/stop-camera"
since=$SECONDS
within 90 '[ "$(prop NRestarts)" -gt "$restarts" ]' || fail "the watchdog did not restart tutti on a stalled pipe"
[ "$(inside journalctl -u tutti --no-pager -o cat | grep -c "Failed with result 'watchdog'")" -gt "$fired" ] \
  || fail "the journal does not say the watchdog fired on the stalled pipe"
say "a piped source (the shipped drop-in): tutti is the main process, detections name it, the watchdog restarted it $((SECONDS - since))s after the pipe stalled"
inside systemctl stop tutti
rm -f "$dropin" "$root/srv/tutti/stop-camera"
inside systemctl daemon-reload

# --- upgrade to -2: restarted, config and outbox kept ----------------------
set_key device '"/srv/tutti/long.wav"'
set_key sample_rate 0
inside systemctl start tutti
within 60 active || fail "not active before the upgrade"
# Detections wait in the outbox while the broker is away.
inside systemctl stop mosquitto
within 20 '[ -s "$box" ]' || fail "no outbox before the upgrade"
pid=$(prop MainPID)
inside dpkg -i /root/tutti-2.deb >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log" >&2; fail "dpkg -i of the -2 package"; }
version=$(inside dpkg-query -W -f '${Version}' tutti)
case $version in *-2) ;; *) fail "version after the upgrade is $version" ;; esac
within 60 active || fail "not active after the upgrade"
[ "$(prop MainPID)" != "$pid" ] || fail "the upgrade did not restart tutti"
grep -q '^# Edited by systemd-check' "$config" || fail "the upgrade lost the edited config"
if ls "$root/etc/tutti/" | grep 'dpkg-' >/dev/null; then fail "the upgrade left $(ls "$root/etc/tutti/")"; fi
this_run | grep 'from an earlier run wait in the outbox' >/dev/null \
  || fail "the upgraded tutti did not find the outbox"
say "upgrade to $version: restarted, config kept, outbox kept"
say "all checks passed"
