//! A clip's music: parts composed at random for an instrument's range, or
//! voices cut from a real score, played through an engine, normalised, and
//! the notes that sound in it (after an augmentation, where they still do),
//! for its label file.

use crate::augment;
use crate::engine::{render, Engine, Event, Style};
use crate::range;
use crate::score;
use anyhow::Result;
use rand::rngs::StdRng;
use rand::Rng;
use tutti::INSTRUMENTS;

/// A note as the label file has it.
#[derive(Clone)]
pub struct Note {
    pub start: f64,
    pub end: f64,
    pub program: u8,
    pub key: u8,
    pub beats: f64,
    pub start_beat: f64,
}

/// Schedules `note` on `channel` (its on and off events) and labels it.
fn play(note: Note, channel: i32, velocity: i32, events: &mut Vec<Event>, notes: &mut Vec<Note>) {
    let key = i32::from(note.key);
    events.push(Event {
        time: note.start,
        channel,
        key,
        velocity,
    });
    events.push(Event {
        time: note.end,
        channel,
        key,
        velocity: 0,
    });
    notes.push(note);
}

pub fn note_value(beats: f64) -> &'static str {
    match (beats * 4.0).round() as u32 {
        0 | 1 => "Sixteenth",
        2 => "Eighth",
        3 => "Dotted Eighth",
        4 => "Quarter",
        6 => "Dotted Quarter",
        8 => "Half",
        12 => "Dotted Half",
        _ => "Whole",
    }
}

/// Composes one part: a random walk through the instrument's range, with
/// rests, optional late entry or early exit, and chords on keyboards.
fn compose(
    rng: &mut StdRng,
    inst: usize,
    channel: i32,
    seconds: f64,
    whole: bool,
    notes: &mut Vec<Note>,
    events: &mut Vec<Event>,
) {
    let spec = INSTRUMENTS[inst];
    let (lo, hi) = range::range(inst);
    let (lo, hi) = (i32::from(lo), i32::from(hi));
    let keyboard = spec.name == "piano" || spec.name == "harpsichord";
    let bpm = rng.random_range(60.0..150.0);
    let beat = 60.0 / bpm;
    let (mut t, stop) = match if whole { 9 } else { rng.random_range(0..10) } {
        0..=1 => (rng.random_range(0.0..seconds * 0.6), seconds),
        2..=3 => (0.0, rng.random_range(seconds * 0.4..seconds)),
        _ => (0.0, seconds),
    };
    // A register within the range, so parts do not always span all of it.
    let centre = rng.random_range(lo + 4..=hi - 4);
    let mut key = centre;
    let base_velocity = rng.random_range(45..115);
    let legato = rng.random_range(0.7..1.0);
    while t < stop {
        let beats = [0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0, 3.0][rng.random_range(0..8)];
        let dur = beats * beat;
        if rng.random_bool(0.12) {
            t += dur;
            continue;
        }
        key = (key + rng.random_range(-5..=5)).clamp(lo, hi);
        if (key - centre).abs() > 12 {
            key += (centre - key).signum() * 3;
        }
        let chord = if keyboard && rng.random_bool(0.4) {
            rng.random_range(2..=4)
        } else {
            1
        };
        let velocity = (base_velocity + rng.random_range(-15..=15)).clamp(20, 127);
        let end = (t + dur * legato).min(seconds);
        for c in 0..chord {
            let k = (key - [0, 4, 7, 12][c]).clamp(lo, hi);
            let note = Note {
                start: t,
                end,
                program: spec.program,
                key: k as u8,
                beats,
                start_beat: t / beat,
            };
            play(note, channel, velocity, events, notes);
        }
        t += dur;
    }
}

/// Scales `audio` so its peak is at a random level between -11 and -1 dBFS.
fn normalise(rng: &mut StdRng, audio: &mut [f32]) {
    let peak = audio.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 0.0 {
        let gain = rng.random_range(0.3..0.9) / peak;
        audio.iter_mut().for_each(|x| *x *= gain);
    }
}

/// Renders the voices of a score excerpt: each on its own channel, with
/// its own dynamic level, a slow swell over phrases and a little jitter
/// per note.
pub fn render_score_clip(
    rng: &mut StdRng,
    synth: &mut dyn Engine,
    voices: &[score::Voice],
    seconds: f64,
    styles: Option<&[Style]>,
) -> Result<(Vec<f32>, Vec<Note>)> {
    let (mut notes, mut events, mut parts) = (vec![], vec![], vec![]);
    for (ch, v) in voices.iter().enumerate() {
        let channel = ch as i32;
        let program = INSTRUMENTS[v.instrument].program;
        parts.push((channel, program));
        let period = rng.random_range(3.0..9.0);
        let phase = rng.random_range(0.0..std::f64::consts::TAU);
        for &(start, end, key, beats, start_beat) in &v.notes {
            let swell = 12.0 * (std::f64::consts::TAU * start / period + phase).sin();
            let velocity = (v.velocity + swell as i32 + rng.random_range(-8..=8)).clamp(15, 127);
            let note = Note {
                start,
                end,
                program,
                key,
                beats,
                start_beat,
            };
            play(note, channel, velocity, &mut events, &mut notes);
        }
    }
    let mut audio = render(synth, seconds, &parts, styles, &mut events)?;
    normalise(rng, &mut audio);
    notes.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok((audio, notes))
}

/// Composes the parts of `chosen` instruments and renders them, peak
/// normalised to a random level between -11 and -1 dBFS.
pub fn render_clip(
    rng: &mut StdRng,
    synth: &mut dyn Engine,
    chosen: &[usize],
    seconds: f64,
    whole: bool,
    styles: Option<&[Style]>,
) -> Result<(Vec<f32>, Vec<Note>)> {
    let (mut notes, mut events, mut parts) = (vec![], vec![], vec![]);
    for (ch, &k) in chosen.iter().enumerate() {
        compose(rng, k, ch as i32, seconds, whole, &mut notes, &mut events);
        parts.push((ch as i32, INSTRUMENTS[k].program));
    }
    let mut audio = render(synth, seconds, &parts, styles, &mut events)?;
    normalise(rng, &mut audio);
    notes.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok((audio, notes))
}

/// The notes of a clip after `augment::apply`: times scaled by its speed
/// change, and cut where it silenced the audio (a note wholly inside a
/// silenced span no longer sounds).
pub fn follow(notes: Vec<Note>, applied: &augment::Applied) -> Vec<Note> {
    let mut out = vec![];
    for mut n in notes {
        n.start /= applied.speed;
        n.end /= applied.speed;
        let mut pieces = vec![n];
        for &(a, b) in &applied.masked {
            pieces = pieces
                .into_iter()
                .flat_map(|p| {
                    let mut kept = vec![];
                    if p.start < a {
                        kept.push(Note {
                            end: p.end.min(a),
                            ..p.clone()
                        });
                    }
                    if p.end > b {
                        kept.push(Note {
                            start: p.start.max(b),
                            ..p
                        });
                    }
                    kept
                })
                .collect();
        }
        out.extend(pieces);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(start: f64, end: f64) -> Note {
        Note {
            start,
            end,
            program: 41,
            key: 69,
            beats: 1.0,
            start_beat: 0.0,
        }
    }

    #[test]
    fn notes_follow_a_speed_change_and_stop_sounding_where_masked() {
        let applied = augment::Applied {
            tokens: vec![],
            speed: 2.0,
            masked: vec![(1.0, 1.5), (3.0, 3.2)],
        };
        // At double speed: 0–1.6 s becomes 0–0.8 s (before the first mask);
        // 1.6–6 s becomes 0.8–3 s and loses 1.0–1.5 s; 6.2–6.3 s becomes
        // 3.1–3.15 s, inside the second mask, and no longer sounds.
        let out = follow(
            vec![note(0.0, 1.6), note(1.6, 6.0), note(6.2, 6.3)],
            &applied,
        );
        let spans: Vec<(f64, f64)> = out.iter().map(|n| (n.start, n.end)).collect();
        assert_eq!(spans, [(0.0, 0.8), (0.8, 1.0), (1.5, 3.0)]);
        assert!(out.iter().all(|n| n.program == 41 && n.key == 69));
    }
}
