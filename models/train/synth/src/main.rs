//! Renders labelled training clips from General MIDI SoundFonts into the
//! MusicNet layout, so `tutti features` reads them exactly as it reads the
//! real MusicNet download. Built only with `--features synth`.
//!
//! A clip is either a random passage (1–3 of the 11 instruments, each a
//! walk through its range with varied tempo, velocity, register and
//! entries) or, with `--scores`, an excerpt of a real score whose parts are
//! given to instruments by playing range (see score.rs). Every note is
//! written to the label file with MusicNet's columns.

use anyhow::{bail, Context, Result};
use clap::Parser;
use clip::{follow, note_value, render_clip, render_score_clip, Note};
use engine::{Colour, Engine, Fluid, Style, RATE};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use tutti::{index_of_name, INSTRUMENTS};
use tutti::{LABEL_HEADER, LABEL_RATE};

mod augment;
mod clip;
mod engine;
mod range;
mod room;
mod score;

#[derive(Parser)]
#[command(about = "Render labelled instrument clips from SoundFonts in the MusicNet layout")]
struct Args {
    /// SoundFont (.sf2) to render with; repeat for several. Clips are spread
    /// evenly over them.
    #[arg(long = "soundfont", required = true)]
    soundfonts: Vec<PathBuf>,
    /// Output directory (gets train_data/, train_labels/, test_data/, test_labels/).
    #[arg(long)]
    out: PathBuf,
    /// Number of clips per SoundFont.
    #[arg(long, default_value_t = 200)]
    clips: usize,
    /// Length of each clip in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Fraction of clips written to the test split (whole clips, never windows).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Render one clip of exactly these instruments (comma-separated names,
    /// each playing the whole clip) to this WAV file, with its labels in the
    /// same place with `.csv`, instead of a dataset.
    #[arg(long, requires = "instruments")]
    example: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    instruments: Vec<String>,
    /// Never render INSTRUMENT with the SoundFont whose file stem is STEM,
    /// as STEM=INSTRUMENT; repeatable. For fonts that reuse another
    /// instrument's samples (TimGM6mb's viola is its violin), which would
    /// teach the model wrong labels.
    #[arg(long = "avoid", value_name = "STEM=INSTRUMENT")]
    avoid: Vec<String>,
    /// Fraction of clips played into a room: a synthetic reverberation
    /// (RT60 0.2–2.0 s), a microphone's band limits and resonance or dip
    /// (a peaking EQ of ±9 dB at 150 Hz–6 kHz) and background noise at
    /// 5–40 dB SNR, drawn per clip and written to metadata.csv. The notes,
    /// labels and splits do not depend on it: the same --seed renders the
    /// same music with and without rooms.
    #[arg(long, default_value_t = 0.0)]
    room: f64,
    /// Fraction of clips given one to three of the seed study's nine
    /// augmentations (noise, background under a mask, pitch shift, harmonic
    /// noise, section volume, tone change, volume, speed change, mask
    /// normalisation), drawn per clip and written to metadata.csv; labels
    /// follow speed changes and masks. Like --room, it never changes the
    /// music drawn for a clip.
    #[arg(long, default_value_t = 0.0)]
    augment: f64,
    /// Fraction of clips whose parts are each played in a style of their
    /// own: detuned by up to ±12 cents (pitch bend), with vibrato from the
    /// modulation wheel (CC 1) and a balance between parts (expression, CC
    /// 11), drawn per part and marked `vary` in metadata.csv's augment
    /// column. Like --room, it never changes the notes drawn for a clip.
    #[arg(long, default_value_t = 0.0)]
    vary: f64,
    /// Fraction of clips rendered by a second engine, oxisynth (FluidSynth's
    /// synthesis: its interpolation, drawn per clip, envelopes, filter,
    /// chorus and reverb) instead of rustysynth, each part with a colour
    /// of its own: brightness (filter cutoff), attack, release and effect
    /// sends (see engine.rs). Drawn per clip from a generator of its own
    /// and written to metadata.csv's engine column; like --room, it never
    /// changes the notes drawn for a clip.
    #[arg(long, default_value_t = 0.0)]
    fluid: f64,
    /// Directory of MIDI files, one movement each with a part per track
    /// (models/train/scores.py writes them from the music21 corpus). Clips
    /// drawn from them are split by movement, never within one.
    #[arg(long)]
    scores: Option<PathBuf>,
    /// Fraction of clips cut from --scores; the rest are random passages.
    #[arg(long, default_value_t = 0.5, requires = "scores")]
    score_fraction: f64,
}

/// Writes a clip as 16-bit mono WAV and its notes as a MusicNet label file.
fn write_clip(wav: &Path, labels: &Path, audio: &[f32], notes: Vec<Note>) -> Result<()> {
    write_atomic(wav, |tmp| {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE as u32,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(tmp, spec)?;
        for &x in audio {
            w.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
        }
        Ok(w.finalize()?)
    })?;
    let mut csv = format!("{LABEL_HEADER}\n");
    for n in &notes {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.3},{:.3},{}",
            (n.start * LABEL_RATE).round() as u64,
            (n.end * LABEL_RATE).round() as u64,
            n.program,
            n.key,
            n.start_beat,
            n.beats,
            note_value(n.beats)
        );
    }
    write_atomic(labels, |tmp| Ok(std::fs::write(tmp, &csv)?))
}

/// Writes `bytes` to `path` through a temporary file, so a crash never leaves
/// a partial file behind.
fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension("partial");
    write(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(example) = &args.example {
        let chosen = args
            .instruments
            .iter()
            .map(|n| index_of_name(n).with_context(|| format!("unknown instrument `{n}`")))
            .collect::<Result<Vec<_>>>()?;
        let mut synth = engine::rustysynth(&args.soundfonts[0])?;
        let mut rng = StdRng::seed_from_u64(args.seed);
        let (audio, notes) = render_clip(&mut rng, &mut synth, &chosen, args.seconds, true, None)?;
        write_clip(example, &example.with_extension("csv"), &audio, notes)?;
        eprintln!("wrote {}", example.display());
        return Ok(());
    }
    if args.seconds.is_nan() || args.seconds < 1.0 || !(0.0..1.0).contains(&args.test_fraction) {
        bail!("--seconds must be at least 1 and --test-fraction in [0, 1)");
    }
    if !(0.0..=1.0).contains(&args.room) {
        bail!("--room {}: expected a fraction in [0, 1]", args.room);
    }
    if !(0.0..=1.0).contains(&args.fluid) {
        bail!("--fluid {}: expected a fraction in [0, 1]", args.fluid);
    }
    if !(0.0..=1.0).contains(&args.vary) {
        bail!("--vary {}: expected a fraction in [0, 1]", args.vary);
    }
    if !(0.0..=1.0).contains(&args.augment) {
        bail!("--augment {}: expected a fraction in [0, 1]", args.augment);
    }
    if !(0.0..=1.0).contains(&args.score_fraction) {
        bail!(
            "--score-fraction {}: expected a fraction in [0, 1]",
            args.score_fraction
        );
    }
    let pieces = match &args.scores {
        Some(dir) => score::load_dir(dir)?,
        None => vec![],
    };
    let held_out = score::test_pieces(&pieces, args.test_fraction);
    let mut used = [0usize; INSTRUMENTS.len()];
    for dir in ["train_data", "train_labels", "test_data", "test_labels"] {
        std::fs::create_dir_all(args.out.join(dir))
            .with_context(|| format!("creating {}", args.out.join(dir).display()))?;
    }
    let mut meta =
        String::from("id,split,soundfont,instruments,rt60,snr_db,piece,augment,engine\n");
    let bar = ProgressBar::new((args.clips * args.soundfonts.len()) as u64).with_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} clips [{elapsed} < {eta}]")
            .unwrap(),
    );
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut id = 100_000u64;
    let mut avoid: Vec<(String, usize)> = vec![];
    for a in &args.avoid {
        let (stem, name) = a
            .split_once('=')
            .with_context(|| format!("--avoid `{a}`: expected STEM=INSTRUMENT"))?;
        let k = index_of_name(name)
            .with_context(|| format!("--avoid `{a}`: unknown instrument `{name}`"))?;
        avoid.push((stem.to_string(), k));
    }
    for sf_path in &args.soundfonts {
        let mut rusty = engine::rustysynth(sf_path)?;
        let mut fluid = if args.fluid > 0.0 {
            Some(Fluid::load(sf_path)?)
        } else {
            None
        };
        let sf_name = sf_path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        bar.set_message(sf_name.clone());
        let avoided: Vec<usize> = avoid
            .iter()
            .filter(|(stem, _)| *stem == sf_name)
            .map(|(_, k)| *k)
            .collect();
        for _ in 0..args.clips {
            id += 1;
            // Styles draw from a generator of their own, as rooms do below.
            let mut vary_rng = StdRng::seed_from_u64(args.seed ^ (id << 20) ^ 0x5a5a);
            let styles: Option<Vec<Style>> = vary_rng
                .random_bool(args.vary)
                .then(|| (0..16).map(|_| Style::draw(&mut vary_rng)).collect());
            // So does the engine, and the colours of its parts.
            let mut engine_rng = StdRng::seed_from_u64(args.seed ^ (id << 20) ^ 0x3c3c);
            let (synth, engine): (&mut dyn Engine, &str) = match fluid.as_mut() {
                Some(f) if engine_rng.random_bool(args.fluid) => {
                    let interpolation = engine::draw_interpolation(&mut engine_rng);
                    f.set_colours(
                        interpolation,
                        (0..16).map(|_| Colour::draw(&mut engine_rng)).collect(),
                    );
                    (f, "oxisynth")
                }
                _ => (&mut rusty, "rustysynth"),
            };
            let mut from_score = None;
            if !pieces.is_empty() && rng.random_bool(args.score_fraction) {
                // A few tries: an excerpt can fall in a rest of every part.
                for _ in 0..8 {
                    let p = rng.random_range(0..pieces.len());
                    let voices =
                        score::excerpt(&mut rng, &pieces[p], args.seconds, &avoided, &mut used);
                    if voices.iter().any(|v| !v.notes.is_empty()) {
                        from_score = Some((p, voices));
                        break;
                    }
                }
            }
            let (chosen, (mut audio, notes), split, piece) = match from_score {
                Some((p, voices)) => {
                    let mut chosen: Vec<usize> = voices.iter().map(|v| v.instrument).collect();
                    chosen.sort_unstable();
                    chosen.dedup();
                    let clip = render_score_clip(
                        &mut rng,
                        synth,
                        &voices,
                        args.seconds,
                        styles.as_deref(),
                    )?;
                    let split = if held_out[p] { "test" } else { "train" };
                    (chosen, clip, split, pieces[p].name.as_str())
                }
                None => {
                    let count = [1, 1, 2, 2, 3][rng.random_range(0..5)];
                    let mut chosen: Vec<usize> = vec![];
                    while chosen.len() < count {
                        let k = rng.random_range(0..INSTRUMENTS.len());
                        if !chosen.contains(&k) && !avoided.contains(&k) {
                            chosen.push(k);
                        }
                    }
                    let clip = render_clip(
                        &mut rng,
                        synth,
                        &chosen,
                        args.seconds,
                        false,
                        styles.as_deref(),
                    )?;
                    let split = if rng.random_bool(args.test_fraction) {
                        "test"
                    } else {
                        "train"
                    };
                    (chosen, clip, split, "")
                }
            };
            // Augmentations and rooms draw from generators of their own, so
            // the music above is the same whatever --augment and --room say.
            let mut augment_rng = StdRng::seed_from_u64(args.seed ^ (id << 20) ^ 0xa5a5);
            let (notes, mut augmented) = if augment_rng.random_bool(args.augment) {
                let applied = augment::apply(&mut augment_rng, &mut audio, f64::from(RATE));
                (follow(notes, &applied), applied.tokens.join(" "))
            } else {
                (notes, String::new())
            };
            if styles.is_some() {
                augmented = [augmented.as_str(), "vary"].join(" ").trim().to_string();
            }
            let mut room_rng = StdRng::seed_from_u64(args.seed ^ (id << 20));
            let conditions = if room_rng.random_bool(args.room) {
                let c = room::apply(&mut room_rng, &mut audio, f64::from(RATE));
                format!("{:.2},{:.1}", c.rt60, c.snr_db)
            } else {
                ",".to_string()
            };
            let wav = args.out.join(format!("{split}_data/{id}.wav"));
            let labels = args.out.join(format!("{split}_labels/{id}.csv"));
            write_clip(&wav, &labels, &audio, notes)?;
            let names: Vec<&str> = chosen.iter().map(|&k| INSTRUMENTS[k].name).collect();
            let _ = writeln!(
                meta,
                "{id},{split},{sf_name},{},{conditions},{piece},{augmented},{engine}",
                names.join(" ")
            );
            bar.inc(1);
        }
    }
    bar.finish();
    let meta_path = args.out.join("metadata.csv");
    write_atomic(&meta_path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(meta.as_bytes())?;
        Ok(())
    })?;
    eprintln!("wrote {} clips to {}", id - 100_000, args.out.display());
    Ok(())
}
