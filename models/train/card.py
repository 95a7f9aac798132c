#!/usr/bin/env python3
"""Chooses the model tutti ships and writes its card.

Reads the sidecars train.py (the forest) and cnn.py (the CNN) wrote, ships
the one that wins leave-one-family-out (LOFO) validation, the mean of its
worst fold's macro-F1 dry and in rooms, by copying its sidecar to SHIP
(`models/tutti.json`, which tutti loads by default; the other stays
selectable with `--model`), and writes the model card: both side by side,
the goals, then each model's own figures.

    python models/train/card.py models/forest.json models/cnn.json \\
        --ship models/tutti.json --card models/README.md --command "..."
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

from evaluate import lofo_lines, lofo_summary

# The targets the model is held to (issue 17), and where each number comes from.
GOALS = [("in-distribution macro-F1 (test split)", 0.85),
         ("LOFO worst fold macro-F1, dry", 0.65),
         ("LOFO worst fold macro-F1, rooms and noise", 0.55),
         ("LOFO worst fold mAP, dry and rooms", 0.75)]


def worst(summary, part, key):
    return summary[part][key]["worst"] if part in summary else None


def lofo_score(sidecar):
    """What the choice compares: the mean of the worst fold's macro-F1 dry
    and in rooms (None without LOFO folds)."""
    s = lofo_summary(sidecar["validation"].get("lofo", []))
    got = [worst(s, "dry", "macro_f1"), worst(s, "rooms", "macro_f1")]
    got = [g for g in got if g is not None]
    return sum(got) / len(got) if got else None


def kind(sidecar):
    t = sidecar["training"]
    return "ensemble" if "members" in t else "CNN" if "channels" in t else "forest"


def cost(training):
    """What a model is made of, in a few words."""
    if "members" in training:
        return " + ".join(cost(m["training"]) for m in training["members"])
    if "channels" in training:
        return f"{training['parameters']} parameters, {training['multiply_adds'] / 1e6:.1f} M multiply-adds"
    return f"{training['forest_nodes']} tree nodes"


def describe(sidecar):
    """One line: what the model is."""
    t = sidecar["training"]
    if kind(sidecar) == "ensemble":
        return ("the mean of its members' scores, " + " and ".join(
            f"`{m['model_file']}` (the {kind(m)} on `{m['feature_set']}`, sha256 `{m['onnx_sha256'][:16]}…`)"
            for m in t["members"]) + ", in one ONNX graph that hands each member its slice of the input; "
            "its own thresholds, chosen on the validation recordings from the ensemble's scores as tract "
            "gives them. Each member is described in its own section below.")
    if kind(sidecar) == "CNN":
        a = t["augment"]
        return (f"{t['recipe']}; {t['parameters']} parameters, {t['multiply_adds'] / 1e6:.1f} M multiply-adds per "
                f"window; {t['epochs']} epochs of AdamW (learning rate {t['learning_rate']}, cosine decay, batch "
                f"{t['batch']}); training windows mixed with another at a random gain ({a['mix']:.0%}), given a "
                f"random spectral tilt and EQ ({a['eq']:.0%}), SpecAugment masks ({a['spec_augment']:.0%}) and "
                f"mixup ({a['mixup']:.0%}); JAX {t['jax']}.")
    return (f"{t['recipe']}; PCA keeps {t['pca_components']} components "
            f"({100 * t['pca_information_lost']:.1f} % of the variance lost); {t['trees']} trees, max_features "
            f"{t['max_features']}, min_samples_split {t['min_samples_split']}, max_depth {t['max_depth']}, "
            f"{t['forest_nodes']} nodes in all; scikit-learn {t['scikit_learn']}.")


def side_by_side(models, shipped):
    cols = [f"{kind(s)} (`{p.name}`){' — shipped' if p == shipped else ''}" for p, s, _ in models]
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(models)]

    def row(name, cell):
        lines.append(f"| {name} | " + " | ".join(cell(s, size) for _, s, size in models) + " |")

    row("input", lambda s, _: f"`{s['feature_set']}`, {len(s['feature_names'])} numbers per window")
    row("ONNX size", lambda _, size: f"{size / 1e6:.2f} MB")
    row("size of the model", lambda s, _: cost(s["training"]))
    row("test macro-F1 / mAP", lambda s, _: f"{s['validation']['test']['macro_f1']} / {s['validation']['test']['mAP']}")
    for agg in ("mean", "worst"):
        for part, key, label in [("dry", "macro_f1", "macro-F1 dry"), ("rooms", "macro_f1", "macro-F1 rooms"),
                                 ("all", "mAP", "mAP")]:
            def cell(s, _, agg=agg, part=part, key=key):
                summ = lofo_summary(s["validation"].get("lofo", []))
                return str(summ[part][key][agg]) if part in summ else "–"
            row(f"LOFO {agg} fold, {label}", cell)
    row("choice score (worst-fold macro-F1, dry and rooms, averaged)",
        lambda s, _: "–" if lofo_score(s) is None else f"{lofo_score(s):.4f}")
    return lines


def cost_rows(sidecar, costs):
    """Goal-table rows of bench/costs.py's figures (none when they were
    measured on another model), and a line saying where they come from."""
    if costs is None:
        return [], []
    if costs["model_sha256"] != sidecar["onnx_sha256"]:
        return [], ["", f"The cost goals were last measured on another model (`{costs['model_file']}`, sha256 "
                    f"`{costs['model_sha256'][:16]}…`); `{costs['command']}` measures this one."]
    a = costs["analyze"]
    rt = a["real_time_per_core"]
    shipped, *others = rt
    listen = max(costs["listen_cpu_percent"].values())
    rows = [(f"model, one window on one core (`{costs['criterion']}`)", "≤ 1.5 ms",
             f"{costs['model_ms_per_window']} ms (features {costs['features_ms_per_window']} ms more)",
             costs["model_ms_per_window"] <= 1.5),
            (f"`tutti analyze`, {a['seconds_of_audio'] / 60:g} min of 44.1 kHz stereo, real time per core", "≥ 250×",
             f"{rt[shipped]}× ({a['cpu_seconds'][shipped]} s of CPU"
             + "".join(f"; `{o}` {rt[o]}× in the same run" for o in others) + ")", rt[shipped] >= 250),
            ("`tutti listen` at hop 0.5 s, share of a core (`bench/listen.py`)", "< 2 %",
             f"{listen} % at most ({', '.join(f'{k} {v} %' for k, v in costs['listen_cpu_percent'].items())})",
             listen < 2)]
    lines = [f"| {name} | {target} | {value} | {'yes' if met else 'no'} |" for name, target, value, met in rows]
    return lines, ["", f"Cost figures: `{costs['command']}` on {costs['measured']} ({costs['machine']}); this "
                   "machine's timings drift by about a fifth from run to run."]


def goals(sidecar, costs=None):
    v = sidecar["validation"]
    test, fit = v["test"], v.get("fit")
    s = lofo_summary(v.get("lofo", []))
    got = [test["macro_f1"], worst(s, "dry", "macro_f1"), worst(s, "rooms", "macro_f1"), worst(s, "all", "mAP")]
    lines = ["", "## Goals (the shipped model)", "", "| goal | target | reached | met |", "|---|---|---|---|"]
    for (name, target), value in zip(GOALS, got):
        met = "–" if value is None else ("yes" if value >= target else f"no ({value - target:+.2f})")
        lines.append(f"| {name} | ≥ {target:.2f} | {'–' if value is None else value} | {met} |")
    rows, note = cost_rows(sidecar, costs)
    lines += rows + note
    if fit is not None and any(v is not None and v < target for (_, target), v in zip(GOALS, got)):
        lofo_dry = (f"; fitted on two sample families it scores {got[1]} on the third's dry recordings "
                    "(worst fold)" if got[1] is not None else "")
        gap = fit["macro_f1"] - test["macro_f1"]
        why = (f"the model scores macro-F1 {fit['macro_f1']} on the windows it was fitted on (thresholds as "
               f"shipped), {test['macro_f1']} on held-out recordings of the same SoundFonts{lofo_dry}. ")
        why += ("The gap is generalisation, not capacity: recordings, and above all timbres, it has not heard; "
                "and the SoundFonts hold only three independent sample families to learn timbres from "
                "(see Limits). " if gap >= 0.2 else
                "It does not fit even its own windows well: more data or capacity come first. ")
        lines += ["", "Why it stops here: " + why]
    cnn = [m["training"] for m in sidecar["training"].get("members", [sidecar])
           if "channels" in m["training"]]
    if cnn:
        c = cnn[0]
        lines += ["", f"Budget of the CNN{' inside the ensemble' if kind(sidecar) == 'ensemble' else ''}: "
                  f"{c['multiply_adds'] / 1e6:.1f} M multiply-adds per window (≤ 30 M), {c['parameters']} parameters "
                  "(≤ 1 M). Time per window, real time per core for `tutti analyze` and the share of a core "
                  "`tutti listen` takes are measured by `bench/costs.py` (the cost rows above, when it measured this "
                  "model) and in the project's docs/benchmarks.md."]
    lines += ["", "What was measured on the way (feature sets, PCA, rooms, score excerpts, augmentations): the "
              "project's docs/training.md and docs/studies.md; the seed study's experiments (PCA, seven model "
              "families, window lengths, a hyper-parameter search) redone on this data: [REPORT.md](REPORT.md)."]
    return lines


def data_lines(t):
    """The bullets that say what a trained model was fitted and tested on."""
    se = t.get("score_excerpts") or {"recordings": 0}
    return [
        f"- Training data: rendered from SoundFonts ({', '.join(t['sources'])}) by `tutti-synth`: clips of 1–3 "
        "instruments playing random passages in their ranges"
        + (f", and {se['recordings']} of the {se['of_recordings']} clips excerpts of real scores (music21 corpus; "
           f"{se['movements_train']} movements for training, {se['movements_test']} held out for test)"
           if se["recordings"] else "")
        + (f"; {t['rooms']} clips played into synthetic rooms (reverberation, microphone band limits and EQ, "
           "noise at 5–40 dB SNR)" if t.get("rooms") else "")
        + (f"; {t['augmented']} clips given 1–3 of the seed study's nine augmentations" if t.get("augmented") else "")
        + (f"; {t['second_engine']} clips rendered by a second engine, oxisynth (FluidSynth's synthesis; each part "
           "with its own brightness, attack, release and chorus and reverb sends), the rest by rustysynth"
           if t.get("second_engine") else "")
        + f". An instrument labels a window when it sounds for at least {t['min_sounding_seconds']} s of it; "
        f"windows every {t.get('hop_seconds', '?')} s.",
        f"- Windows: {t['windows']['fit']} to fit, {t['windows']['validation']} for thresholds, "
        f"{t['windows']['test']} to test; recordings {t['recordings']['fit']}/{t['recordings']['validation']}/"
        f"{t['recordings']['test']}. {t['split']}.",
    ]


def model_section(path, sidecar, size, shipped):
    t, v = sidecar["training"], sidecar["validation"]
    test, val = v["test"], v["validation"]
    lines = [
        "", f"## The {kind(sidecar)}: `{path.name}`{' (shipped as `tutti.json`)' if shipped else ''}", "",
        f"`{sidecar['model_file']}` (sha256 `{sidecar['onnx_sha256'][:16]}…`, {size / 1e6:.2f} MB).",
        f"- Input: the `{sidecar['feature_set']}` features ({len(sidecar['feature_names'])} numbers) of a "
        f"{sidecar['window_seconds']} s window of mono audio at {sidecar['sample_rate']} Hz, computed by tutti itself.",
        f"- Recipe: {describe(sidecar)}",
        "- Output: one score per instrument; an instrument is reported when its score reaches its own threshold, "
        "chosen for the best F1 on the validation recordings"
        + (f", and {sidecar['relative_threshold']} times the window's top score (the relative threshold, chosen "
           "for the best per-window F1 on the same recordings; every figure below applies it)."
           if sidecar.get("relative_threshold") else "."),
    ]
    if kind(sidecar) != "ensemble":
        lines += data_lines(t)
    lines += [
        "",
        "| split | windows | macro-F1 | micro-F1 | mAP | per-window F1 | macro-F1 single instrument "
        "| macro-F1 mixtures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = ([("fitted windows", v["fit"])] if v.get("fit") else []) + [("validation", val),
                                                                       ("test (held-out recordings)", test)]
    rows += [(f"test: {name}", m) for name, m in v.get("test_subsets", {}).items()]
    for name, m in rows:
        lines.append(f"| {name} | {m['windows']} | {m['macro_f1']} | {m['micro_f1']} | {m['mAP']} | "
                     f"{m.get('samples_f1', '–')} | {m['macro_f1_single_instrument']} | {m['macro_f1_mixtures']} |")
    folds = v.get("lofo", [])
    lines += lofo_lines(folds, title=f"{kind(sidecar)}: leave one sample family out (LOFO)")
    lines += ["", "Per instrument, test split:", "",
              "| instrument | GM program | threshold | precision | recall | F1 | AP | windows |",
              "|---|---|---|---|---|---|---|---|"]
    for l in sidecar["labels"]:
        m = test["per_instrument"][l["name"]]
        lines.append(f"| {l['name']} | {l['program']} | {l['threshold']:.2f} | {m['precision']} | {m['recall']} | "
                     f"{m['f1']} | {m['ap']} | {m['support']} |")
    confused = [("test split", test["confused"])]
    confused += [(f"LOFO: {f['held_out']}", f["all"]["confused"]) for f in folds if f.get("all")]
    lines += ["", "Most confused pairs: windows where the first instrument sounds but is missed while the second "
              "is reported but silent (share = of the first instrument's windows).", "",
              "| tested on | sounds | reported instead | windows | share |", "|---|---|---|---|---|"]
    for where, pairs in confused:
        for c in pairs[:4]:
            lines.append(f"| {where} | {c['present']} | {c['reported']} | {c['windows']} | {c['share']} |")
    return lines


def blend_section(blend):
    """Markdown of blend.py's LOFO folds: each model alone and their mean."""
    rows = [*((Path(d).name, folds) for d, folds in blend["models"].items()), ("mean of the two", blend["blend"])]
    lines = ["", "## Averaging the two models, leave one family out", "",
             "`models/train/blend.py` runs both models' LOFO fold models through `tutti analyze` (windows every "
             "0.5 s) on the held-out family's test recordings and on the validation recordings of the families "
             "each fold was fitted on, where the mean's thresholds are chosen. These are the ensemble's LOFO "
             "folds (`ensemble.json` is this mean in one graph), beside each member's own.", "",
             "| models | " + " | ".join(f"{f['held_out']} dry / rooms" for f in rows[0][1])
             + " | worst dry / rooms | mean dry / rooms |",
             "|---|" + "---|" * (len(rows[0][1]) + 2)]
    cell = lambda m: m["macro_f1"] if m else "–"
    for name, folds in rows:
        s = lofo_summary(folds)
        agg = {a: " / ".join(str(s[p]["macro_f1"][a]) if p in s else "–" for p in ("dry", "rooms"))
               for a in ("worst", "mean")}
        lines.append(f"| {name} | " + " | ".join(f"{cell(f.get('dry'))} / {cell(f.get('rooms'))}" for f in folds)
                     + f" | {agg['worst']} | {agg['mean']} |")
    return lines


def unheard_section(heard):
    """Markdown of heard.py's figures on ToneJS: every model."""
    models = heard["models"]
    first = next(iter(models.values()))
    whole = first.get("dry") or first["all"]
    names = [n for n, m in whole["per_instrument"].items() if m["support"]]
    lines = ["", "## Real instruments no model trained on (ToneJS)", "",
             f"{heard['recordings']} clips rendered from ToneJS (`models/train/tonejs.py`: the npm registry's "
             "recordings of real bassoon, cello, clarinet, contrabass, flute, horn and violin), half of them in "
             "rooms, heard through `tutti analyze` by every model (`models/train/heard.py --all`). No model trains "
             "on this family, so it is one more held-out test, of real instruments: the kind of audio users have.",
             "",
             "| model | macro-F1 dry | macro-F1 rooms | mAP dry | mAP rooms | " + " | ".join(names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    cell = lambda m, k: m[k] if m else "–"
    for name, parts in models.items():
        d, r = parts.get("dry"), parts.get("rooms")
        lines.append(f"| `{name}` | {cell(d, 'macro_f1')} | {cell(r, 'macro_f1')} | {cell(d, 'mAP')} | {cell(r, 'mAP')} | "
                     + " | ".join(str((d or parts["all"])["per_instrument"][n]["f1"]) for n in names) + " |")
    lines += ["", "Per-instrument columns are F1 on the dry clips."]
    return lines


def stream_section(summary):
    """Markdown of stream.py's summary: the hold and margin it chose, the
    grid it chose them on, and the held-out test streams."""
    c, d = summary["chosen"], summary["default"]
    lines = ["", "## Streams: per-window quality as the daemon reports", "",
             "`models/train/stream.py` strings each family's clips end to end into streams (a new "
             "instrumentation every 10 s clip, dry or in rooms) and runs `tutti analyze --json --hold --margin` on "
             f"them with the LOFO fold models in `{summary.get('folds', 'work/forest-folds')}`, each on the family it "
             "never heard. The `on` states are what "
             "the daemon publishes. A false flip is an ON/OFF change of an instrument whose truth does not change "
             "within a window's length of it. The hold and margin are chosen on streams of the held-out families' "
             "train-split clips (best mean per-window macro-F1 of the states, ties to fewer flips) and reported "
             "on their test-split clips.", "",
             f"Chosen: hold {c['hold']} s, margin {c['margin']} (the daemon's default: hold {d['hold']} s, "
             f"margin {d['margin']}).", "",
             "| held out | condition | minutes | truth changes/min | macro-F1 windows | macro-F1 ON, default "
             "| flips/min (false), default | macro-F1 ON, chosen | flips/min (false), chosen | raw window flips/min (false) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    chosen = {(r["family"], r["condition"]): r for r in summary["test"]["chosen"]}
    for r in summary["test"]["default"]:
        ch = chosen[(r["family"], r["condition"])]
        lines.append(
            f"| {r['family'].split(',')[0]} | {r['condition']} | {r['seconds'] / 60:.1f} | {r['truth_flips_per_min']} "
            f"| {r['windows']['macro_f1']} | {r['states']['macro_f1']} "
            f"| {r['states']['flips_per_min']} ({r['states']['false_flips_per_min']}) | {ch['states']['macro_f1']} "
            f"| {ch['states']['flips_per_min']} ({ch['states']['false_flips_per_min']}) "
            f"| {r['windows']['flips_per_min']} ({r['windows']['false_flips_per_min']}) |")
    lines += ["", "The grid on the tuning streams (mean over the folds' train-split streams):", "",
              "| hold s | margin | macro-F1 ON | flips/min | false flips/min |", "|---|---|---|---|---|"]
    for g in summary["tuning"]:
        lines.append(f"| {g['hold']} | {g['margin']} | {g['macro_f1']} | {g['flips_per_min']:.1f} "
                     f"| {g['false_flips_per_min']:.1f} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sidecars", nargs="+", type=Path, help="model sidecars to choose from")
    ap.add_argument("--ship", type=Path, required=True, help="where the winner's sidecar is copied")
    ap.add_argument("--card", type=Path, required=True)
    ap.add_argument("--command", default="models/train/rebuild.sh")
    ap.add_argument("--streams", type=Path, default=None, help="models/train/stream.py's results")
    ap.add_argument("--blend", type=Path, default=None, help="models/train/blend.py --json: LOFO of the mean")
    ap.add_argument("--costs", type=Path, default=None,
                    help="bench/costs.py's measurements of the shipped model (cost goals)")
    ap.add_argument("--unheard", type=Path, default=None,
                    help="models/train/heard.py --json on ToneJS, the family no model trains on")
    args = ap.parse_args()
    models = []
    for path in args.sidecars:
        try:
            sidecar = json.loads(path.read_text())
            size = (path.parent / sidecar["model_file"]).stat().st_size
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"card: {path}: {e}")
        if path.parent != args.ship.parent:
            sys.exit(f"card: {path} must sit beside {args.ship}: a sidecar names its ONNX file relative to itself")
        models.append((path, sidecar, size))
    # Without LOFO folds (a single sample family) the first model ships.
    scored = [(lofo_score(s), i) for i, (_, s, _) in enumerate(models) if lofo_score(s) is not None]
    win = max(scored)[1] if scored else 0
    shipped, sidecar, _ = models[win]
    tmp = args.ship.with_suffix(".json.partial")
    shutil.copyfile(shipped, tmp)
    tmp.replace(args.ship)
    print(f"shipping {shipped} as {args.ship}" + (f" (LOFO choice score {lofo_score(sidecar):.4f})" if scored else ""))

    t = sidecar["training"]
    lines = ["# tutti model card", "",
             f"tutti ships `{args.ship.name}`, a copy of `{shipped.name}`: the {kind(sidecar)}. "
             + ("It wins leave-one-family-out validation (below), which is how the shipped model is chosen: "
                "fitted on two sample families, tested on the third's held-out recordings, dry and in rooms. "
                if len(models) > 1 and scored else "")
             + (("The others stay" if len(models) > 2 else "The other stays") + " selectable: "
                + ", ".join(f"`tutti analyze --model models/{p.name}`" for p, _, _ in models if p != shipped) + ". "
                if len(models) > 1 else "")
             + "This file is written by `models/train/card.py`; do not edit it by hand.", ""]
    if len(models) > 1:
        lines += ["## Side by side", ""] + side_by_side(models, shipped)
    costs = None
    if args.costs:
        try:
            costs = json.loads(args.costs.read_text())
        except (OSError, ValueError) as e:
            sys.exit(f"card: {args.costs}: {e}")
    try:
        lines += goals(sidecar, costs)
    except KeyError as e:
        sys.exit(f"card: {args.costs}: no {e} in it")
    for path, s, size in models:
        lines += model_section(path, s, size, path == shipped)
    if args.blend:
        try:
            lines += blend_section(json.loads(args.blend.read_text()))
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"card: {args.blend}: {e}")
    if args.unheard:
        try:
            lines += unheard_section(json.loads(args.unheard.read_text()))
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"card: {args.unheard}: {e}")
    if args.streams:
        try:
            lines += stream_section(json.loads(args.streams.read_text())["summary"])
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"card: {args.streams}: {e}")
    lines += ["", "## Limits"]
    if not {"?", "unknown"} & set(t["sources"]):
        lines += [
            f"- All of it is rendered audio ({', '.join(t['sources'])}); no real recording is in the training data "
            "(ToneJS's recordings of real instruments, when the card shows them, are only tested on).",
            "- The SoundFonts hold three independent sample families (FluidR3_GM and MuseScore General share "
            "samples; TimGM6mb and Merlin have their own; `models/train/sf2_samples.py` compares their sample "
            "data), so the LOFO rows are the only test on unheard timbres, and each fold learns timbres from two "
            "families only."]
    if t.get("rooms"):
        lines.append("- Rooms are synthetic impulse responses (decaying noise, RT60 0.2–2.0 s), not measured ones.")
    lines += ["", "## Rebuild", "```", args.command, "```", ""]
    tmp = args.card.with_suffix(".md.partial")
    tmp.write_text("\n".join(lines))
    tmp.replace(args.card)


if __name__ == "__main__":
    main()
