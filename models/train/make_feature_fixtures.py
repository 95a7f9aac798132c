#!/usr/bin/env python3
"""Render feature-parity fixtures: short WAV files and librosa's values for them.

The Rust test `tests/feature_parity.rs` recomputes every feature of every
fixture and compares it with the values written here, so `cargo test` needs no
Python. Re-run this script only when a feature set is added or changed:

    python models/train/make_feature_fixtures.py tests/fixtures/features
"""
import json
import sys
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

SR = 22050
N = 2 * SR  # one 2-second window


def seed26(y):
    """The seed study's 26 features, librosa defaults, tuning pinned to 0."""
    feats = {
        "chroma_stft": np.mean(librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0)),
        "rms": np.mean(librosa.feature.rms(y=y)),
        "spectral_centroid": np.mean(librosa.feature.spectral_centroid(y=y, sr=SR)),
        "spectral_bandwidth": np.mean(librosa.feature.spectral_bandwidth(y=y, sr=SR)),
        "spectral_rolloff": np.mean(librosa.feature.spectral_rolloff(y=y, sr=SR)),
        "zero_crossing_rate": np.mean(librosa.feature.zero_crossing_rate(y)),
    }
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)
    for i, row in enumerate(mfcc, start=1):
        feats[f"mfcc{i}"] = np.mean(row)
    return {k: float(v) for k, v in feats.items()}


def timbre98(y):
    """Means and deviations over frames of MFCC, their deltas, 12 chroma
    bins, spectral contrast and six spectral scalars; librosa defaults."""
    feats = {}
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)
    delta = librosa.feature.delta(mfcc)
    for stat, rows in (("mfcc_mean", np.mean(mfcc, axis=1)), ("mfcc_std", np.std(mfcc, axis=1)),
                       ("mfcc_delta_std", np.std(delta, axis=1))):
        for i, v in enumerate(rows, start=1):
            feats[f"{stat}{i}"] = v
    chroma = librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0)
    for name, v in zip(["c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b"],
                       np.mean(chroma, axis=1)):
        feats[f"chroma_{name}"] = v
    contrast = librosa.feature.spectral_contrast(y=y, sr=SR)
    for stat, rows in (("contrast_mean", np.mean(contrast, axis=1)),
                       ("contrast_std", np.std(contrast, axis=1))):
        for i, v in enumerate(rows, start=1):
            feats[f"{stat}{i}"] = v
    scalars = {
        "rms": librosa.feature.rms(y=y),
        "zcr": librosa.feature.zero_crossing_rate(y),
        "centroid": librosa.feature.spectral_centroid(y=y, sr=SR),
        "bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=SR),
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=SR),
        "flatness": librosa.feature.spectral_flatness(y=y),
    }
    for name, frames in scalars.items():
        feats[f"{name}_mean"] = np.mean(frames)
        feats[f"{name}_std"] = np.std(frames)
    return {k: float(v) for k, v in feats.items()}


SETS = {"seed26": seed26, "timbre98": timbre98}


def logmel128(y):
    """The CNN's input: mel power in dB of every frame, floored 80 dB under
    the window's peak; frames x bands."""
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=128)
    return librosa.power_to_db(mel, ref=1.0, top_db=80.0).T


# logmel128 has 11 136 values a window: its fixture holds them as one array
# per clip (in hundredths of a dB), for the clips that test something apart.
LOGMEL_FIXTURES = ["tone_440", "chord_c_major", "white_noise", "sweep_with_gap", "short_0_7s", "silence"]


def signals():
    rng = np.random.default_rng(7)
    t = np.arange(N) / SR

    def harmonic(f0, n=8, decay=0.6):
        return sum(decay**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(n))

    yield "tone_440", 0.5 * np.sin(2 * np.pi * 440 * t)
    yield "tone_55_harmonic", 0.3 * harmonic(55.0)
    yield "white_noise", 0.2 * rng.standard_normal(N)
    chord = harmonic(261.63) + harmonic(329.63) + harmonic(392.0)
    yield "chord_c_major", 0.25 * chord / np.max(np.abs(chord))
    yield "silence", np.zeros(N)
    yield "clipped_sine", np.clip(3.0 * np.sin(2 * np.pi * 220 * t), -1.0, 1.0)
    sweep = np.sin(2 * np.pi * (100 * t + 2000 * t**2))
    yield "sweep_with_gap", 0.4 * sweep * (np.abs(t - 1.0) > 0.3)
    yield "short_0_7s", 0.5 * np.sin(2 * np.pi * 660 * t[: int(0.7 * SR)])


def perturbation(y, name):
    """Gaussian noise at 1e-6 of the clip's RMS (a few float32 roundings of
    an FFT's every bin), on the samples that are not digital silence
    (rounding leaves silence silent)."""
    rng = np.random.default_rng(sum(map(ord, name)))
    rms = np.sqrt(np.mean(np.square(y, dtype=np.float64)))
    return (1e-6 * rms * rng.standard_normal(len(y)) * (y != 0)).astype(np.float32)


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    expected = {name: {"librosa": librosa.__version__, "sample_rate": SR, "feature_set": name,
                       "pinned": {"tuning": 0.0}, "fixtures": {}} for name in SETS}
    logmel = {}
    for name, y in signals():
        path = out / f"{name}.wav"
        sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
        # Read it back exactly as tutti does (16-bit / 32768), pad short clips
        # to one window with zeros as tutti does.
        y16, _ = sf.read(path, dtype="float32")
        window = np.zeros(N, dtype=np.float32)
        window[: min(N, len(y16))] = y16[:N]
        for set_name, features in SETS.items():
            clean = features(window)
            expected[set_name]["fixtures"][name] = clean
            if set_name != "seed26":
                # How far librosa itself moves when the audio moves by
                # rounding noise: features such as the spectral contrast of a
                # pure tone measure near-empty bins, where two correct FFTs
                # differ by more than 1e-3. The test allows the largest
                # change of three such perturbations.
                noisy = [features(window + perturbation(window, f"{name}{i}")) for i in range(3)]
                expected[set_name].setdefault("sensitivity", {})[name] = {
                    k: max(abs(n[k] - v) for n in noisy) for k, v in clean.items()}
        if name in LOGMEL_FIXTURES:
            logmel.setdefault(name, np.round(100 * logmel128(window)).astype(int).tolist())
    for set_name, table in expected.items():
        (out / f"librosa_{set_name}.json").write_text(json.dumps(table, indent=1) + "\n")
    (out / "librosa_logmel128.json").write_text(json.dumps(
        {"librosa": librosa.__version__, "sample_rate": SR, "feature_set": "logmel128", "unit": "0.01 dB",
         "layout": "frames x mel bands", "fixtures": logmel}, separators=(",", ":")) + "\n")
    print(f"wrote {len(expected['seed26']['fixtures'])} fixtures for {', '.join(SETS)} to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/features")
