#!/usr/bin/env python3
"""Export real scores from the music21 corpus as MIDI files, one per
movement, for `tutti-synth --scores DIR` to render as polyphonic training
audio.

The pieces are Bach's chorales and the string quartets of Haydn, Mozart and
Beethoven that the corpus holds. Each part goes to its own MIDI track; the
instruments the parts were written for do not matter, because tutti-synth
reassigns every part by its playing range to one of the 11 instruments, so
a chorale's bass can become a contrabass, a bassoon or a harpsichord's left
hand. Ties are merged into single notes. Tempo marks are dropped: the
renderer draws its own tempo per excerpt.

Split by piece happens later, in tutti-synth, from the file name: every
excerpt of one movement lands in the same split.

    python models/train/scores.py --out work/scores            # everything
    python models/train/scores.py --out work/scores --per-composer 3
"""
import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

COMPOSERS = ["bach", "haydn", "mozart", "beethoven"]
# Chorales have four or five parts; keep the corpus's few larger Bach works out.
MAX_PARTS = 6


def pieces(composers, per_composer):
    from music21 import corpus

    out = []
    for composer in composers:
        # One file per movement: where the corpus has a movement twice
        # (Humdrum and MusicXML), the MusicXML.
        by_name = {}
        for p in sorted(map(Path, corpus.getComposer(composer)), key=lambda p: (p.suffix != ".mxl", str(p))):
            by_name.setdefault(name_of(composer, p), p)
        paths = [by_name[n] for n in sorted(by_name)]
        if per_composer:
            paths = paths[:per_composer]
        out += [(composer, p) for p in paths]
    return out


def name_of(composer, path):
    """A file name that says which piece it is: bach_bwv1.6, haydn_opus1no1_movement1."""
    rel = str(path).split("corpus" + os.sep, 1)[-1]
    stem = rel.rsplit(".", 1)[0].replace(os.sep, "_")
    return stem if stem.startswith(composer) else f"{composer}_{stem}"


def export(path, target):
    """Writes `path`'s parts as tracks of a MIDI file; None, or why it was not written."""
    from music21 import converter, instrument, midi, stream, tempo

    score = converter.parse(path)
    parts = list(score.parts)
    if not parts or len(parts) > MAX_PARTS:
        return f"{len(parts)} parts (1 to {MAX_PARTS} are used)"
    out = stream.Score()
    for part in parts:
        flat = part.flatten().stripTies()
        clean = stream.Part()
        # One neutral program per part; tutti-synth chooses the instrument.
        clean.insert(0, instrument.Piano())
        for el in flat.notes:
            clean.insert(el.offset, el)
        if len(clean.notes):
            out.insert(0, clean)
    if not out.parts:
        return "no notes in any part"
    out.insert(0, tempo.MetronomeMark(number=60))
    mf = midi.translate.music21ObjectToMidiFile(out)
    tmp = target.with_suffix(".partial")
    mf.open(str(tmp), "wb")
    try:
        mf.write()
    finally:
        mf.close()
    os.replace(tmp, target)
    return None


def export_one(job):
    """(path, target) -> (exported?, message or None); for a worker process."""
    path, target = job
    if target.exists():
        return True, None
    try:
        why = export(path, target)
    except Exception as e:  # a corpus file music21 cannot read: say which, go on
        why = str(e)
    return why is None, why and f"{path}: skipped: {why}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory for the .mid files")
    ap.add_argument("--composers", nargs="+", default=COMPOSERS, choices=COMPOSERS)
    ap.add_argument("--per-composer", type=int, default=0,
                    help="only the first N movements of each composer (0 = all)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel exports")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(path, args.out / f"{name_of(composer, path)}.mid")
            for composer, path in pieces(args.composers, args.per_composer)]
    written = skipped = 0
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for ok, message in tqdm(pool.map(export_one, jobs), total=len(jobs), desc="scores", unit="movement"):
            if message:
                tqdm.write(message, file=sys.stderr)
            written += ok
            skipped += not ok
    print(f"{written} movements in {args.out} ({skipped} skipped)", file=sys.stderr)
    if written == 0:
        sys.exit(f"{args.out}: no score could be exported")


if __name__ == "__main__":
    main()
