//! The two synthesisers a clip can be rendered with, behind one small
//! trait, and the loop that plays a clip's events through either.
//!
//! - rustysynth: the default, with its own interpolation and envelopes and
//!   no effects.
//! - oxisynth (`--fluid`): FluidSynth's synthesis in Rust, with other
//!   interpolation (linear, 4th or 7th order, drawn per clip), envelopes,
//!   filter and effects. It takes SoundFont generator offsets per channel,
//!   so each part also gets a brightness (filter cutoff), an attack, a
//!   release and chorus and reverb sends of its own (`Colour`).
//!
//! The same SoundFont through another engine keeps its samples: this
//! varies how they are played, not whose they are, so a clip's family (and
//! so its LOFO fold) does not change with its engine.

use anyhow::{Context, Result};
use oxisynth::{GeneratorType, InterpolationMethod, MidiEvent, SynthDescriptor};
use rand::rngs::StdRng;
use rand::Rng;
use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

pub const RATE: i32 = 44100;

pub struct Event {
    pub time: f64,
    pub channel: i32,
    pub key: i32,
    pub velocity: i32, // 0 = note off
}

/// How a part is played beyond its notes (`--vary`): MIDI pitch bend
/// (8192 is none), modulation (vibrato depth) and expression.
#[derive(Clone, Copy)]
pub struct Style {
    pub bend: i32,
    pub modulation: i32,
    pub expression: i32,
}

impl Style {
    pub fn draw(rng: &mut StdRng) -> Style {
        // The default bend range is ±2 semitones: 8192 steps per 200 cents.
        let cents: f64 = rng.random_range(-12.0..12.0);
        Style {
            bend: 8192 + (cents / 200.0 * 8192.0).round() as i32,
            modulation: rng.random_range(0..=100),
            expression: rng.random_range(70..=127),
        }
    }
}

/// A part's sound on the second engine, as SoundFont generator offsets and
/// effect sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Colour {
    /// Filter cutoff offset in cents: down to two and a half octaves
    /// darker, or a little brighter.
    pub cutoff_cents: f32,
    /// Volume envelope attack and release offsets, in timecents (1200 is
    /// twice as long).
    pub attack_timecents: f32,
    pub release_timecents: f32,
    /// MIDI chorus (CC 93) and reverb (CC 91) sends.
    pub chorus: u8,
    pub reverb: u8,
}

impl Colour {
    pub fn draw(rng: &mut StdRng) -> Colour {
        Colour {
            cutoff_cents: rng.random_range(-3000.0..600.0),
            attack_timecents: rng.random_range(-600.0..1200.0),
            // Short of doubling: a longer tail would sound past the label.
            release_timecents: rng.random_range(-1200.0..600.0),
            chorus: rng.random_range(0..=60),
            reverb: rng.random_range(0..=50),
        }
    }
}

/// A synthesiser that refused what it was sent.
#[derive(Debug, thiserror::Error)]
#[error("{font}: oxisynth refused {what}: {reason}")]
pub struct EngineError {
    font: String,
    what: String,
    reason: String,
}

/// What `render` needs of a synthesiser.
pub trait Engine {
    /// Silences it and sets every controller back, ready for a clip.
    fn reset(&mut self) -> Result<(), EngineError>;
    fn program(&mut self, channel: i32, program: u8) -> Result<(), EngineError>;
    fn style(&mut self, channel: i32, style: &Style) -> Result<(), EngineError>;
    fn note_on(&mut self, channel: i32, key: i32, velocity: i32) -> Result<(), EngineError>;
    fn note_off(&mut self, channel: i32, key: i32) -> Result<(), EngineError>;
    fn render(&mut self, left: &mut [f32], right: &mut [f32]);
}

/// Loads `path` for rustysynth, effects off.
pub fn rustysynth(path: &Path) -> Result<Synthesizer> {
    let file =
        File::open(path).with_context(|| format!("{}: cannot open SoundFont", path.display()))?;
    let font = Arc::new(
        SoundFont::new(&mut BufReader::new(file))
            .map_err(|e| anyhow::anyhow!("{}: not a usable SoundFont: {e:?}", path.display()))?,
    );
    let mut settings = SynthesizerSettings::new(RATE);
    settings.enable_reverb_and_chorus = false;
    Synthesizer::new(&font, &settings)
        .map_err(|e| anyhow::anyhow!("{}: cannot start synthesizer: {e:?}", path.display()))
}

/// rustysynth takes every message; those out of range it ignores.
impl Engine for Synthesizer {
    fn reset(&mut self) -> Result<(), EngineError> {
        Synthesizer::reset(self);
        Ok(())
    }

    fn program(&mut self, channel: i32, program: u8) -> Result<(), EngineError> {
        self.process_midi_message(channel, 0xC0, i32::from(program) - 1, 0);
        Ok(())
    }

    fn style(&mut self, channel: i32, style: &Style) -> Result<(), EngineError> {
        self.process_midi_message(channel, 0xE0, style.bend & 0x7f, style.bend >> 7);
        self.process_midi_message(channel, 0xB0, 1, style.modulation);
        self.process_midi_message(channel, 0xB0, 11, style.expression);
        Ok(())
    }

    fn note_on(&mut self, channel: i32, key: i32, velocity: i32) -> Result<(), EngineError> {
        Synthesizer::note_on(self, channel, key, velocity);
        Ok(())
    }

    fn note_off(&mut self, channel: i32, key: i32) -> Result<(), EngineError> {
        Synthesizer::note_off(self, channel, key);
        Ok(())
    }

    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        Synthesizer::render(self, left, right);
    }
}

/// oxisynth with one SoundFont, and how it plays the clip it renders next
/// (`set_colours`; `reset` applies them).
pub struct Fluid {
    synth: oxisynth::Synth,
    path: String,
    interpolation: InterpolationMethod,
    colours: Vec<Colour>,
    /// Samples read since the start of oxisynth's current 64-sample block
    /// (it computes audio a block at a time, and applies events at the next
    /// block).
    phase: usize,
}

/// oxisynth's block length.
const BLOCK: usize = 64;

impl Fluid {
    pub fn load(path: &Path) -> Result<Fluid> {
        let mut file = File::open(path)
            .with_context(|| format!("{}: cannot open SoundFont", path.display()))?;
        let font = oxisynth::SoundFont::load(&mut file)
            .map_err(|e| anyhow::anyhow!("{}: oxisynth cannot read it: {e:?}", path.display()))?;
        let mut synth = oxisynth::Synth::new(SynthDescriptor {
            reverb_active: true,
            chorus_active: true,
            // Channel 10 is an instrument like the others here.
            drums_channel_active: false,
            sample_rate: RATE as f32,
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("{}: cannot start oxisynth: {e:?}", path.display()))?;
        synth.add_font(font, true);
        Ok(Fluid {
            synth,
            path: path.display().to_string(),
            interpolation: InterpolationMethod::default(),
            colours: vec![],
            phase: 0,
        })
    }

    /// The next clip's interpolation, and each part's colour (by channel;
    /// channels past the list play as the SoundFont says).
    pub fn set_colours(&mut self, interpolation: InterpolationMethod, colours: Vec<Colour>) {
        self.interpolation = interpolation;
        self.colours = colours;
    }

    fn send(&mut self, event: MidiEvent) -> Result<(), EngineError> {
        let what = describe(&event);
        let sent = self.synth.send_event(event);
        self.refused(sent, what)
    }

    /// Every value sent is in range by construction (channels below 16,
    /// keys and velocities below 128), so a refusal names the font and
    /// the event for the bug report.
    fn refused(
        &self,
        result: std::result::Result<(), oxisynth::OxiError>,
        what: String,
    ) -> Result<(), EngineError> {
        result.map_err(|e| EngineError {
            font: self.path.clone(),
            what,
            reason: format!("{e:?}"),
        })
    }
}

/// An event as an error message names it.
fn describe(event: &MidiEvent) -> String {
    match *event {
        MidiEvent::NoteOn { channel, key, vel } => {
            format!("note on {key} at velocity {vel} on channel {channel}")
        }
        MidiEvent::NoteOff { channel, key } => format!("note off {key} on channel {channel}"),
        MidiEvent::ProgramChange {
            channel,
            program_id,
        } => format!("program {program_id} on channel {channel}"),
        MidiEvent::ControlChange {
            channel,
            ctrl,
            value,
        } => format!("controller {ctrl} = {value} on channel {channel}"),
        MidiEvent::PitchBend { channel, value } => {
            format!("pitch bend {value} on channel {channel}")
        }
        MidiEvent::SystemReset => "a system reset".into(),
        _ => "an event".into(),
    }
}

/// A clip's interpolation on the second engine.
pub fn draw_interpolation(rng: &mut StdRng) -> InterpolationMethod {
    [
        InterpolationMethod::Linear,
        InterpolationMethod::FourthOrder,
        InterpolationMethod::SeventhOrder,
    ][rng.random_range(0..3)]
}

impl Engine for Fluid {
    /// The rest of the block the last clip ended in, computed before the
    /// reset, is dropped, so that every clip starts on a block of its own
    /// and renders the same whatever came before it. Then a MIDI system
    /// reset (voices, controllers, generator offsets, the chorus and reverb
    /// lines), and the next clip's colours.
    fn reset(&mut self) -> Result<(), EngineError> {
        let rest = (BLOCK - self.phase) % BLOCK;
        let mut scratch = [0.0f32; 2 * BLOCK];
        self.synth.write(&mut scratch[..2 * rest]);
        self.phase = 0;
        self.send(MidiEvent::SystemReset)?;
        self.synth
            .set_interpolation_method(None, self.interpolation);
        for channel in 0..self.colours.len() {
            let c = self.colours[channel];
            for (generator, value) in [
                (GeneratorType::FilterFc, c.cutoff_cents),
                (GeneratorType::VolEnvAttack, c.attack_timecents),
                (GeneratorType::VolEnvRelease, c.release_timecents),
            ] {
                let set = self.synth.set_gen(channel, generator, value);
                self.refused(set, format!("{generator:?} = {value} on channel {channel}"))?;
            }
            for (ctrl, value) in [(93, c.chorus), (91, c.reverb)] {
                self.send(MidiEvent::ControlChange {
                    channel: channel as u8,
                    ctrl,
                    value,
                })?;
            }
        }
        Ok(())
    }

    fn program(&mut self, channel: i32, program: u8) -> Result<(), EngineError> {
        self.send(MidiEvent::ProgramChange {
            channel: channel as u8,
            program_id: program - 1,
        })
    }

    fn style(&mut self, channel: i32, style: &Style) -> Result<(), EngineError> {
        let channel = channel as u8;
        self.send(MidiEvent::PitchBend {
            channel,
            value: style.bend as u16,
        })?;
        for (ctrl, value) in [(1, style.modulation), (11, style.expression)] {
            self.send(MidiEvent::ControlChange {
                channel,
                ctrl,
                value: value as u8,
            })?;
        }
        Ok(())
    }

    fn note_on(&mut self, channel: i32, key: i32, velocity: i32) -> Result<(), EngineError> {
        self.send(MidiEvent::NoteOn {
            channel: channel as u8,
            key: key as u8,
            vel: velocity as u8,
        })
    }

    fn note_off(&mut self, channel: i32, key: i32) -> Result<(), EngineError> {
        self.send(MidiEvent::NoteOff {
            channel: channel as u8,
            key: key as u8,
        })
    }

    fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        self.synth.write((&mut *left, &mut *right));
        self.phase = (self.phase + left.len().min(right.len())) % BLOCK;
    }
}

/// Plays `events` through `synth` from silence (`reset` first): each
/// part's program (and style, when given), then every note on time to the
/// sample. Returns the mono mix of `seconds` seconds, or the engine's
/// refusal of an event.
pub fn render(
    synth: &mut dyn Engine,
    seconds: f64,
    parts: &[(i32, u8)],
    styles: Option<&[Style]>,
    events: &mut [Event],
) -> Result<Vec<f32>, EngineError> {
    synth.reset()?;
    for (i, &(channel, program)) in parts.iter().enumerate() {
        synth.program(channel, program)?;
        if let Some(style) = styles.and_then(|s| s.get(i)) {
            synth.style(channel, style)?;
        }
    }
    events.sort_by(|a, b| a.time.total_cmp(&b.time).then(a.velocity.cmp(&b.velocity)));
    let total = (seconds * f64::from(RATE)) as usize;
    let (mut left, mut right) = (vec![0.0f32; total], vec![0.0f32; total]);
    let mut pos = 0;
    let mut next = 0;
    while pos < total {
        while next < events.len() && (events[next].time * f64::from(RATE)) as usize <= pos {
            let e = &events[next];
            if e.velocity > 0 {
                synth.note_on(e.channel, e.key, e.velocity)?;
            } else {
                synth.note_off(e.channel, e.key)?;
            }
            next += 1;
        }
        let until = events.get(next).map_or(total, |e| {
            ((e.time * f64::from(RATE)) as usize).clamp(pos + 1, total)
        });
        synth.render(&mut left[pos..until], &mut right[pos..until]);
        pos = until;
    }
    Ok(left
        .iter()
        .zip(&right)
        .map(|(l, r)| 0.5 * (l + r))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's timgm6mb-soundfont (.ci/run installs it).
    const FONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

    /// Two seconds of a violin A4 held for one.
    fn violin(synth: &mut dyn Engine) -> Vec<f32> {
        let mut events = vec![
            Event {
                time: 0.0,
                channel: 0,
                key: 69,
                velocity: 100,
            },
            Event {
                time: 1.0,
                channel: 0,
                key: 69,
                velocity: 0,
            },
        ];
        render(synth, 2.0, &[(0, 41)], None, &mut events).unwrap()
    }

    /// Spectral centroid in Hz, by a direct DFT of the first second
    /// (coarse bins suffice).
    fn centroid(x: &[f32]) -> f64 {
        let n = RATE as usize / 4;
        let x = &x[..n];
        let (mut num, mut den) = (0.0, 0.0);
        for k in (1..n / 2).step_by(8) {
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for (i, &v) in x.iter().enumerate() {
                let a = -std::f64::consts::TAU * (k * i) as f64 / n as f64;
                re += f64::from(v) * a.cos();
                im += f64::from(v) * a.sin();
            }
            let mag = (re * re + im * im).sqrt();
            num += mag * k as f64 * f64::from(RATE) / n as f64;
            den += mag;
        }
        num / den
    }

    fn energy(x: &[f32]) -> f64 {
        x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
    }

    fn plain() -> Colour {
        Colour {
            cutoff_cents: 0.0,
            attack_timecents: 0.0,
            release_timecents: 0.0,
            chorus: 0,
            reverb: 0,
        }
    }

    #[test]
    fn a_refused_event_is_an_error_naming_the_font_and_the_event() {
        let mut fluid = Fluid::load(Path::new(FONT)).unwrap();
        // MIDI has 16 channels: oxisynth refuses the 21st.
        let e = fluid.note_on(20, 60, 100).unwrap_err().to_string();
        assert!(
            e.contains(FONT) && e.contains("note on 60") && e.contains("channel 20"),
            "{e}"
        );
        // And renders on afterwards.
        assert!(fluid.note_on(0, 60, 100).is_ok());
    }

    #[test]
    fn the_second_engine_renders_a_clip_the_same_every_time_and_colours_change_it() {
        let mut fluid = Fluid::load(Path::new(FONT)).unwrap();
        fluid.set_colours(InterpolationMethod::FourthOrder, vec![plain()]);
        let first = violin(&mut fluid);
        // A dark, long-released part in between must leave nothing behind.
        let dark = Colour {
            cutoff_cents: -3000.0,
            release_timecents: 600.0,
            ..plain()
        };
        fluid.set_colours(InterpolationMethod::FourthOrder, vec![dark]);
        let coloured = violin(&mut fluid);
        fluid.set_colours(InterpolationMethod::FourthOrder, vec![plain()]);
        let again = violin(&mut fluid);
        let drift = again
            .iter()
            .zip(&first)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            drift == 0.0,
            "rendered again, it differs by up to {drift:e}"
        );

        assert!(energy(&first[..RATE as usize]) > 1.0, "the violin sounds");
        let (bright, darker) = (centroid(&first), centroid(&coloured));
        assert!(
            darker < 0.8 * bright,
            "cutoff: {darker:.0} Hz against {bright:.0} Hz"
        );
        // After the note ends, the longer release leaves more sound
        // (relative to each note's own level while held).
        let tail = |x: &[f32]| {
            let rate = RATE as usize;
            energy(&x[rate + rate / 10..rate + rate / 2]) / energy(&x[rate / 2..rate])
        };
        assert!(
            tail(&coloured) > 2.0 * tail(&first),
            "release: {} against {}",
            tail(&coloured),
            tail(&first)
        );
    }

    #[test]
    fn both_engines_play_the_same_notes_of_the_same_samples() {
        let mut rusty = rustysynth(Path::new(FONT)).unwrap();
        let mut fluid = Fluid::load(Path::new(FONT)).unwrap();
        fluid.set_colours(InterpolationMethod::Linear, vec![]);
        let (a, b) = (violin(&mut rusty), violin(&mut fluid));
        // Not the same signal, but the same pitch: the autocorrelation of
        // the held note peaks at the period of 440 Hz.
        let pitch = |x: &[f32]| {
            let held = &x[RATE as usize / 4..RATE as usize / 2];
            let lags = RATE as usize / 1000..RATE as usize / 200;
            let best = lags
                .max_by(|&a, &b| {
                    let r = |lag: usize| -> f64 {
                        held.iter()
                            .zip(&held[lag..])
                            .map(|(&u, &v)| f64::from(u * v))
                            .sum()
                    };
                    r(a).total_cmp(&r(b))
                })
                .unwrap();
            f64::from(RATE) / best as f64
        };
        assert_ne!(a, b);
        for (name, x) in [("rustysynth", &a), ("oxisynth", &b)] {
            let f = pitch(x);
            assert!((f - 440.0).abs() < 440.0 * 0.05, "{name}: {f:.1} Hz");
        }
    }
}
