#!/usr/bin/env bash
# Checks a tutti .deb on this machine, as root, the way a user meets it:
#   deploy/deb-check.sh tutti_X_amd64.deb tutti_Y_amd64.deb    (Y newer than X)
# Install X, run the installed binary with the installed model and config,
# edit the config and leave an outbox as the service would, upgrade to Y
# (both kept, no .dpkg-new/.dpkg-old), remove (both still kept, binary
# gone), purge (both gone). Without a running systemd the maintainer scripts
# only enable the unit; they must still succeed. Leaves tutti purged.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: deploy/deb-check.sh OLD.deb NEW.deb}
new=${2:?usage: deploy/deb-check.sh OLD.deb NEW.deb}
fail() {
  echo "deb-check: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (it installs the package)"
if dpkg -s tutti >/dev/null 2>&1; then
  fail "tutti is already installed here; purge it first (dpkg -P tutti)"
fi
# A tutti run as root outside the package (tutti listen without --state-dir)
# leaves a real /var/lib/tutti; the outbox this check plants would then land
# beside it, not in it, and the upgrade would seem to lose it.
for d in /var/lib/tutti /var/lib/private/tutti; do
  if [ -e "$d" ] || [ -L "$d" ]; then
    fail "$d exists though tutti is not installed (left by a tutti run outside the package?); move it away first"
  fi
done
sample=$(mktemp --suffix .wav)
installed=
# Whatever fails, leave tutti purged as found: a half-done check must not
# make the next one refuse to start.
cleanup() {
  rm -f "$sample"
  if [ -n "$installed" ] && dpkg -s tutti >/dev/null 2>&1; then
    echo "deb-check: purging the tutti this check installed" >&2
    dpkg -P tutti >/dev/null || echo "deb-check: could not purge tutti; run dpkg -P tutti" >&2
  fi
}
trap cleanup EXIT
cp samples/piano.wav "$sample"
conf=/etc/tutti/tutti.toml
state=/var/lib/private/tutti

echo "deb-check: installing $old"
installed=yes
dpkg -i "$old" >/dev/null
for f in /usr/bin/tutti /usr/lib/systemd/system/tutti.service "$conf" \
  /usr/share/tutti/models/tutti.json /usr/share/tutti/models/forest.onnx \
  /usr/share/tutti/models/cnn.onnx /usr/share/tutti/models/ensemble.onnx \
  /usr/share/doc/tutti/MODEL.md /usr/share/doc/tutti/copyright; do
  [ -e "$f" ] || fail "$f is missing after installing $old"
done
grep -qx "$conf" /var/lib/dpkg/info/tutti.conffiles || fail "$conf is not a conffile"
[ -L /etc/systemd/system/multi-user.target.wants/tutti.service ] \
  || fail "the unit was not enabled"
# The installed binary runs from anywhere with the installed model, and
# reads the installed configuration.
for model in tutti forest cnn ensemble; do
  (cd / && /usr/bin/tutti analyze --json --model "/usr/share/tutti/models/$model.json" "$sample" \
    >/dev/null) || fail "the installed tutti could not analyse $sample with the installed $model.json"
done
(cd / && /usr/bin/tutti config --config "$conf" >/dev/null) \
  || fail "the installed tutti refuses the installed $conf"

echo "deb-check: editing the configuration, leaving an outbox, upgrading to $new"
sed -i 's/^device = "default"/device = "plughw:1,0"/' "$conf"
grep -q '^device = "plughw:1,0"' "$conf" || fail "could not edit $conf"
mkdir -p "$state"
echo '{"seq":0}' >"$state/outbox.jsonl"
ln -sfn private/tutti /var/lib/tutti
dpkg -i "$new" >/dev/null
[ "$(dpkg-query -W -f '${Version}' tutti)" = "$(dpkg-deb -f "$new" Version)" ] \
  || fail "the upgrade did not install $new"
grep -q '^device = "plughw:1,0"' "$conf" || fail "the upgrade replaced the edited $conf"
[ ! -e "$conf.dpkg-new" ] && [ ! -e "$conf.dpkg-old" ] || fail "the upgrade left $conf.dpkg-*"
[ -s /var/lib/tutti/outbox.jsonl ] || fail "the upgrade lost the outbox"
shown=$(cd / && /usr/bin/tutti config --config "$conf") \
  || fail "the upgraded tutti refuses the edited $conf"
grep -q 'plughw:1,0' <<<"$shown" || fail "the upgraded tutti does not read the edited $conf"

echo "deb-check: removing"
dpkg -r tutti >/dev/null
[ ! -e /usr/bin/tutti ] || fail "remove left /usr/bin/tutti"
grep -q '^device = "plughw:1,0"' "$conf" || fail "remove deleted the configuration"
[ -s /var/lib/tutti/outbox.jsonl ] || fail "remove deleted the outbox"

echo "deb-check: purging"
dpkg -P tutti >/dev/null
for f in /etc/tutti /var/lib/tutti /var/lib/private/tutti \
  /etc/systemd/system/multi-user.target.wants/tutti.service; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "purge left $f"
done
echo "deb-check: install, upgrade, remove and purge behave"
