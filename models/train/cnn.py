#!/usr/bin/env python3
"""Train tutti's small CNN on log-mel windows, beside the forest.

Reads the `logmel128` features that `tutti features DIR --set logmel128`
computed (87 frames x 128 mel bands in dB per 2-s window), trains a 3-layer
CNN with JAX/flax on CPU, scores it like the forest (evaluate.py: thresholds
on validation recordings, the test split, and leave-one-family-out), and
exports one ONNX file that tract runs plus its JSON sidecar and a parity
fixture for the Rust test.

The graph takes the window as tutti computes it and carries its own
normalisation: the window's loudest value is subtracted (so the input level
does not matter), then each band's training mean and deviation. Training
adds what a room and a microphone change and what sounds together:
- mixing: a window is summed, in power, with another of any family at a
  random gain, and takes both label sets;
- a random spectral tilt and EQ (a smooth curve over the bands);
- SpecAugment: bands and frames masked to the window's floor;
- mixup: a convex blend of two windows and their labels.

    python models/train/cnn.py work/logmel.npz --out models/tutti-cnn
"""
import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from evaluate import (choose_relative, choose_thresholds, data_summary, fold_stem, groups_of, load, lofo, lofo_summary,
                      metrics, split_fit_validation, test_subsets)
from sidecar import write_model

FRAMES, BANDS = 87, 128
TOP_DB = 80.0


class Constant(nnx.Variable):
    """Numbers the graph carries but training never changes."""


class Cnn(nnx.Module):
    def __init__(self, n_labels, band_mean, band_std, channels, rngs):
        self.band_mean = Constant(jnp.asarray(band_mean, jnp.float32).reshape(1, 1, BANDS, 1))
        self.band_std = Constant(jnp.asarray(band_std, jnp.float32).reshape(1, 1, BANDS, 1))
        widths = [1, *channels]
        self.convs = nnx.List([nnx.Conv(a, b, kernel_size=(3, 3), padding="SAME", rngs=rngs)
                               for a, b in zip(widths, widths[1:])])
        # What the head reads: each band group's channels, averaged over time.
        bands_out = BANDS // 2 ** (len(channels) - 1)
        self.head = nnx.Linear(bands_out * channels[-1], n_labels, rngs=rngs)

    def logits(self, x):
        x = x.reshape((-1, FRAMES, BANDS, 1))
        x = x - jnp.max(x, axis=(1, 2, 3), keepdims=True)
        x = (x - self.band_mean[...]) / self.band_std[...]
        for i, conv in enumerate(self.convs):
            x = nnx.relu(conv(x))
            if i + 1 < len(self.convs):
                x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        # Mean over time only: where in frequency a pattern sits (the
        # register) tells a violin from a cello, so frequency is kept.
        x = jnp.mean(x, axis=1)
        return self.head(x.reshape((x.shape[0], -1)))

    def __call__(self, x):
        return nnx.sigmoid(self.logits(x))


def multiply_adds(channels):
    """Multiply-adds of the convolutions and the head for one window."""
    total, (h, w), cin = 0, (FRAMES, BANDS), 1
    for i, c in enumerate(channels):
        total += h * w * 9 * cin * c
        cin = c
        if i + 1 < len(channels):
            h, w = h // 2, w // 2
    return total + w * cin * 11


def parameters(model):
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param))))


def floor_to_top_db(x):
    """Floors each window 80 dB under its peak, as tutti's features are."""
    return np.maximum(x, x.max(axis=(1, 2), keepdims=True) - TOP_DB)


def augment(rng, x, y, pool_x, pool_y, args):
    """One training batch's augmentations (x: batch x frames x bands dB)."""
    x, y = x.copy(), y.astype(np.float32).copy()
    n = len(x)
    mix = rng.random(n) < args.mix
    if mix.any():
        other = rng.integers(0, len(pool_x), mix.sum())
        gain = rng.uniform(-12.0, 6.0, (mix.sum(), 1, 1))
        a, b = x[mix], pool_x[other].reshape(-1, FRAMES, BANDS) + gain
        top = np.maximum(a, b)
        x[mix] = top + 10.0 * np.log10(1.0 + 10.0 ** ((np.minimum(a, b) - top) / 10.0))
        y[mix] = np.maximum(y[mix], pool_y[other])
    eq = rng.random(n) < args.eq
    if eq.any():
        bands = np.linspace(-1.0, 1.0, BANDS)
        curve = rng.uniform(-6.0, 6.0, (eq.sum(), 1)) * bands
        for _ in range(2):
            centre, width = rng.uniform(-1, 1, (eq.sum(), 1)), rng.uniform(0.05, 0.4, (eq.sum(), 1))
            curve += rng.uniform(-6.0, 6.0, (eq.sum(), 1)) * np.exp(-0.5 * ((bands - centre) / width) ** 2)
        x[eq] += curve[:, None, :]
    x = floor_to_top_db(x)
    floor = x.min(axis=(1, 2))
    for i in np.where(rng.random(n) < args.spec_augment)[0]:
        for _ in range(2):
            f0, fw = rng.integers(0, BANDS), rng.integers(0, 13)
            x[i, :, f0:f0 + fw] = floor[i]
            t0, tw = rng.integers(0, FRAMES), rng.integers(0, 11)
            x[i, t0:t0 + tw, :] = floor[i]
    blend = rng.random(n) < args.mixup
    if blend.any():
        partner = rng.permutation(n)[: blend.sum()]
        lam = rng.beta(0.4, 0.4, (blend.sum(), 1))
        x[blend] = lam[:, :, None] * x[blend] + (1 - lam[:, :, None]) * x[partner]
        y[blend] = lam * y[blend] + (1 - lam) * y[partner]
    return x.reshape(n, -1), y


def train(x, y, fit, args, log=print):
    """A CNN fitted on rows `fit`; returns the model."""
    rng = np.random.default_rng(args.seed)
    sample = x[rng.choice(fit, size=min(len(fit), 4000), replace=False)].reshape(-1, FRAMES, BANDS)
    sample = sample - sample.max(axis=(1, 2), keepdims=True)
    mean, std = sample.mean(axis=(0, 1)), sample.std(axis=(0, 1)) + 1e-3
    model = Cnn(y.shape[1], mean, std, args.channels, nnx.Rngs(args.seed))
    steps = args.epochs * (len(fit) // args.batch)
    schedule = optax.cosine_decay_schedule(args.lr, max(1, steps))
    optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=1e-4), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, xb, yb):
        def loss_fn(m):
            return optax.sigmoid_binary_cross_entropy(m.logits(xb), yb).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    pool_x, pool_y = x[fit], y[fit]
    with tqdm(total=steps, desc="cnn", unit="batch") as bar:
        for epoch in range(args.epochs):
            order = rng.permutation(fit)
            losses = []
            for b in range(len(fit) // args.batch):
                rows = np.sort(order[b * args.batch:(b + 1) * args.batch])
                xb, yb = augment(rng, x[rows].reshape(-1, FRAMES, BANDS), y[rows], pool_x, pool_y, args)
                losses.append(float(step(model, optimizer, jnp.asarray(xb), jnp.asarray(yb))))
                bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses):.4f}")
    return model


def predictor(model):
    forward = nnx.jit(lambda m, xb: m(xb))

    def score(x, rows, batch=512):
        out = [np.asarray(forward(model, jnp.asarray(x[rows[i:i + batch]]))) for i in range(0, len(rows), batch)]
        return np.concatenate(out) if out else np.zeros((0, model.head.out_features), np.float32)
    return score


def export(model, n_features):
    import jax2onnx
    return jax2onnx.to_onnx(model, [("N", n_features)], opset=18, input_names=["features"],
                            output_names=["probabilities"], model_name="tutti-cnn")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="NPZ of logmel128 windows written by `tutti features DIR --out`")
    ap.add_argument("--out", default="models/tutti-cnn", help="output stem: writes STEM.onnx and STEM.json")
    ap.add_argument("--parity", default="tests/fixtures/cnn_parity.json")
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--mix", type=float, default=0.5, help="fraction of windows mixed with another")
    ap.add_argument("--eq", type=float, default=0.8, help="fraction given a random tilt and EQ")
    ap.add_argument("--spec-augment", type=float, default=0.5, help="fraction given SpecAugment masks")
    ap.add_argument("--mixup", type=float, default=0.0, help="fraction blended with mixup")
    ap.add_argument("--lofo", action="store_true", help="also fit leave-one-family-out folds")
    ap.add_argument("--validation", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fold-models", type=Path, default=None,
                    help="with --lofo, also write each fold's model here (lofo-<held-out family>.onnx/.json)")
    args = ap.parse_args()

    x, y, rec, split, meta = load(args.features)
    if meta["feature_set"] != "logmel128":
        sys.exit(f"{args.features}: feature set `{meta['feature_set']}`, cnn.py needs logmel128")
    names = [l["name"] for l in meta["labels"]]
    groups = groups_of(rec, meta)
    train_all, test = np.where(split == 0)[0], np.where(split == 1)[0]
    fit, val = split_fit_validation(train_all, groups, args)
    print(f"windows: fit {len(fit)}, validation {len(val)}, test {len(test)}; "
          f"{multiply_adds(args.channels) / 1e6:.1f} M multiply-adds per window")

    fitted = {}

    def fit_predict(fit_rows, _val_rows):
        fitted["model"] = train(x, y, fit_rows, args)
        score = predictor(fitted["model"])
        return lambda rows: score(x, rows)

    def export_fold(entry):
        write_model(args.fold_models / fold_stem(entry["held_out"]),
                    export(fitted["model"], x.shape[1]).SerializeToString(), meta, entry["thresholds"],
                    entry["relative_threshold"], {"lofo_fold": entry["held_out"], "fit": entry["fit"]},
                    {"thresholds_from": "validation", "lofo": [entry]}, hop_seconds=0.5)

    folds = lofo(fit_predict, y, rec, split, meta, groups, names, args,
                 on_fold=export_fold if args.fold_models else None) if args.lofo else []
    t0 = time.time()
    model = train(x, y, fit, args)
    fit_seconds = time.time() - t0
    score = predictor(model)
    p_val, p_test = score(x, val), score(x, test)
    thresholds = choose_thresholds(y[val], p_val)
    relative = choose_relative(y[val], p_val, thresholds)

    onnx_model = export(model, x.shape[1])
    onnx_bytes = onnx_model.SerializeToString()
    import onnxruntime as ort
    rows = np.sort(np.random.default_rng(args.seed).choice(test, size=min(64, len(test)), replace=False))
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    ort_p = sess.run(["probabilities"], {"features": x[rows]})[0]
    ort_diff = float(np.max(np.abs(ort_p - score(x, rows))))
    print(f"onnxruntime vs JAX on {len(rows)} test windows: max |diff| {ort_diff:.2e}")
    if ort_diff > 1e-4:
        sys.exit(f"the exported ONNX graph disagrees with JAX by {ort_diff:.2e}")

    training = {
        "recipe": f"CNN on log-mel: {len(args.channels)} convolutions 3x3 ({'/'.join(map(str, args.channels))} "
                  "channels, ReLU, 2x2 max-pool between), mean over time (the bands kept), linear, sigmoid",
        "channels": args.channels, "parameters": parameters(model),
        "multiply_adds": multiply_adds(args.channels), "epochs": args.epochs, "batch": args.batch,
        "learning_rate": args.lr, "augment": {"mix": args.mix, "eq": args.eq, "spec_augment": args.spec_augment,
                                              "mixup": args.mixup},
        "seed": args.seed, "fit_seconds": round(fit_seconds, 1), "jax": jax.__version__,
        **data_summary(y, rec, meta, names, fit, val, test),
    }
    validation = {"thresholds_from": "validation",
                  "validation": metrics(y[val], p_val, thresholds, names, relative=relative),
                  "test": metrics(y[test], p_test, thresholds, names, relative=relative),
                  "test_subsets": test_subsets(y[test], p_test, thresholds, names, rec[test], meta, relative),
                  "lofo": folds, "lofo_summary": lofo_summary(folds),
                  "onnxruntime_max_abs_diff": ort_diff}
    # The hop analyze and listen use by default, not the training windows' hop.
    out = Path(args.out)
    sidecar = write_model(out, onnx_bytes, meta, thresholds, relative, training, validation, hop_seconds=0.5)
    # Parity: two test windows in hundredths of a dB, exactly what both sides read.
    xs = np.round(x[rows[:2]] * 100) / 100
    parity = {"model": out.with_suffix(".json").name, "onnx_sha256": sidecar["onnx_sha256"],
              "features_centi_db": np.round(xs * 100).astype(int).tolist(),
              "probabilities": score(xs.astype(np.float32), np.arange(len(xs))).tolist()}
    Path(args.parity).parent.mkdir(parents=True, exist_ok=True)
    Path(args.parity).write_text(json.dumps(parity, separators=(",", ":")) + "\n")
    v = sidecar["validation"]
    print(f"wrote {out.with_suffix('.onnx')} ({len(onnx_bytes) / 1e6:.2f} MB, {parameters(model)} parameters)")
    for name in ("validation", "test"):
        print(f"{name}: macro-F1 {v[name]['macro_f1']}, mAP {v[name]['mAP']}")
    for f in folds:
        print(f"LOFO {f['held_out']}: " + ", ".join(f"{p} macro-F1 {f[p]['macro_f1']} mAP {f[p]['mAP']}"
                                                 for p in ("dry", "rooms") if f.get(p)))


if __name__ == "__main__":
    main()
