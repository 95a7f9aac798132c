//! Polyphony from real scores: MIDI files (one movement each, one part per
//! track, as `models/train/scores.py` exports them) cut into excerpts whose
//! parts are reassigned by playing range to the 11 instruments.
//!
//! Tempo marks in the files are ignored: every excerpt draws its own tempo,
//! so the same movement is heard at several speeds. Parts keep their notes
//! and rhythm; register may move by whole octaves to fit an instrument.

use anyhow::{bail, Context, Result};
use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use rand::rngs::StdRng;
use rand::Rng;
use std::path::{Path, PathBuf};
use tutti::INSTRUMENTS;

/// A note of a part, in beats from the start of the movement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreNote {
    pub start: f64,
    pub beats: f64,
    pub key: u8,
}

/// One movement: its name (the file stem) and its parts, each sorted by
/// start.
#[derive(Debug)]
pub struct Piece {
    pub name: String,
    pub parts: Vec<Vec<ScoreNote>>,
    pub beats: f64,
}

/// Reads one MIDI file: every track with notes is a part. A note that is
/// still held at the end of its track ends there.
pub fn load(path: &Path) -> Result<Piece> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let smf = Smf::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a MIDI file: {e}", path.display()))?;
    let Timing::Metrical(tpq) = smf.header.timing else {
        bail!(
            "{}: SMPTE time codes are not supported; export with ticks per beat",
            path.display()
        );
    };
    let tpq = f64::from(tpq.as_int().max(1));
    let mut parts = vec![];
    for track in &smf.tracks {
        let mut tick = 0u64;
        // Sounding notes by (channel, key): their start ticks, oldest first.
        let mut held: Vec<((u8, u8), u64)> = vec![];
        let mut notes = vec![];
        let close = |start: u64, end: u64, key: u8, notes: &mut Vec<ScoreNote>| {
            if end > start {
                notes.push(ScoreNote {
                    start: start as f64 / tpq,
                    beats: (end - start) as f64 / tpq,
                    key,
                });
            }
        };
        for event in track {
            tick += u64::from(event.delta.as_int());
            match event.kind {
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int();
                    match message {
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            held.push(((ch, key.as_int()), tick));
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            if let Some(i) = held.iter().position(|(k, _)| *k == (ch, key.as_int()))
                            {
                                let (_, start) = held.remove(i);
                                close(start, tick, key.as_int(), &mut notes);
                            }
                        }
                        _ => {}
                    }
                }
                TrackEventKind::Meta(MetaMessage::EndOfTrack) => break,
                _ => {}
            }
        }
        for ((_, key), start) in held {
            close(start, tick, key, &mut notes);
        }
        if !notes.is_empty() {
            notes.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.key.cmp(&b.key)));
            parts.push(notes);
        }
    }
    if parts.is_empty() {
        bail!("{}: no notes in any track", path.display());
    }
    let beats = parts
        .iter()
        .flatten()
        .map(|n| n.start + n.beats)
        .fold(0.0, f64::max);
    Ok(Piece {
        name: path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        parts,
        beats,
    })
}

/// Every `.mid` file in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Piece>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the scores directory", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("mid")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!(
            "{}: no .mid files (models/train/scores.py --out {} writes them)",
            dir.display(),
            dir.display()
        );
    }
    paths.iter().map(|p| load(p)).collect()
}

/// FNV-1a of a name: a split that does not depend on the platform, the
/// order of files or the seed.
fn stable_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Which pieces are held out: a `test_fraction` share of them (at least
/// one when there are two or more), chosen by the hash of their names, so
/// every excerpt of a movement lands in the same split.
pub fn test_pieces(pieces: &[Piece], test_fraction: f64) -> Vec<bool> {
    let n = pieces.len();
    let mut want = (n as f64 * test_fraction).round() as usize;
    if n >= 2 && test_fraction > 0.0 {
        want = want.clamp(1, n - 1);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| stable_hash(&pieces[i].name));
    let mut test = vec![false; n];
    for &i in &order[..want.min(n)] {
        test[i] = true;
    }
    test
}

/// A part of an excerpt, given to an instrument.
pub struct Voice {
    pub instrument: usize,
    /// Seconds from the start of the clip.
    pub notes: Vec<(f64, f64, u8, f64, f64)>, // start, end, key, beats, start_beat
    pub velocity: i32,
}

/// The octave shifts tried to fit a part into an instrument's range, in
/// order of preference.
const SHIFTS: [i32; 5] = [0, 12, -12, 24, -24];

/// The shift that puts `lo..=hi` inside instrument `k`'s range, if any.
pub fn fit(k: usize, lo: u8, hi: u8) -> Option<i32> {
    let (a, b) = crate::range::range(k);
    SHIFTS
        .into_iter()
        .find(|s| i32::from(lo) + s >= i32::from(a) && i32::from(hi) + s <= i32::from(b))
}

/// Cuts a random excerpt of `seconds` from `piece` and gives 1–4 of its
/// parts (mostly 2 or 3) to instruments whose range fits them, preferring
/// the instruments used least so far (`used`), never one in `avoid`.
/// Returns no voices when no part fits any allowed instrument.
pub fn excerpt(
    rng: &mut StdRng,
    piece: &Piece,
    seconds: f64,
    avoid: &[usize],
    used: &mut [usize; INSTRUMENTS.len()],
) -> Vec<Voice> {
    let bpm = rng.random_range(50.0..140.0);
    let beat = 60.0 / bpm;
    let span = seconds / beat;
    let first = rng.random_range(0.0..(piece.beats - span).max(0.0) + 1e-9);
    let last = first + span;
    // The parts that play in the excerpt, with their notes there.
    let mut playing: Vec<Vec<ScoreNote>> = piece
        .parts
        .iter()
        .map(|p| {
            p.iter()
                .filter(|n| n.start < last && n.start + n.beats > first)
                .copied()
                .collect::<Vec<_>>()
        })
        .filter(|p| !p.is_empty())
        .collect();
    let want = [1, 2, 2, 3, 3, 4][rng.random_range(0..6)].min(playing.len());
    // A random subset of `want` parts.
    for i in 0..want {
        let j = rng.random_range(i..playing.len());
        playing.swap(i, j);
    }
    playing.truncate(want);
    let mut voices = vec![];
    for notes in playing {
        let lo = notes.iter().map(|n| n.key).min().unwrap_or(60);
        let hi = notes.iter().map(|n| n.key).max().unwrap_or(60);
        let taken: Vec<usize> = voices.iter().map(|v: &Voice| v.instrument).collect();
        let fits: Vec<(usize, i32)> = (0..INSTRUMENTS.len())
            .filter(|k| !avoid.contains(k))
            .filter_map(|k| fit(k, lo, hi).map(|s| (k, s)))
            .collect();
        // Two parts on one instrument (a quartet's two violins) is real
        // music, but mostly each part gets an instrument of its own.
        let fresh: Vec<(usize, i32)> = fits
            .iter()
            .copied()
            .filter(|(k, _)| !taken.contains(k))
            .collect();
        let pool = if fresh.is_empty() || rng.random_bool(0.15) {
            fits
        } else {
            fresh
        };
        if pool.is_empty() {
            continue;
        }
        // Mostly the least used so far, so rare instruments get their share.
        let (k, shift) = if rng.random_bool(0.75) {
            let least = pool.iter().map(|(k, _)| used[*k]).min().unwrap_or(0);
            let ties: Vec<_> = pool.iter().filter(|(k, _)| used[*k] == least).collect();
            *ties[rng.random_range(0..ties.len())]
        } else {
            pool[rng.random_range(0..pool.len())]
        };
        used[k] += 1;
        // Articulation: from staccato to legato, per part.
        let legato = rng.random_range(0.5..1.0);
        let notes = notes
            .iter()
            .map(|n| {
                let start = ((n.start - first) * beat).max(0.0);
                let end = ((n.start + n.beats * legato - first) * beat)
                    .min(seconds)
                    .max(start + 0.03);
                let key = (i32::from(n.key) + shift) as u8;
                (start, end.min(seconds), key, n.beats, n.start - first)
            })
            .filter(|(s, e, ..)| e > s)
            .collect();
        voices.push(Voice {
            instrument: k,
            notes,
            velocity: rng.random_range(40..110),
        });
    }
    voices
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tutti::index_of_name;

    fn piece(name: &str, parts: &[&[(f64, f64, u8)]]) -> Piece {
        let parts: Vec<Vec<ScoreNote>> = parts
            .iter()
            .map(|p| {
                p.iter()
                    .map(|&(start, beats, key)| ScoreNote { start, beats, key })
                    .collect()
            })
            .collect();
        let beats = parts
            .iter()
            .flatten()
            .map(|n| n.start + n.beats)
            .fold(0.0, f64::max);
        Piece {
            name: name.into(),
            parts,
            beats,
        }
    }

    #[test]
    fn reads_parts_from_tracks_and_notes_from_on_off_pairs() {
        use midly::num::{u15, u28, u4, u7};
        use midly::{Format, Header, TrackEvent};
        let on = |delta: u32, key: u8, vel: u8| TrackEvent {
            delta: u28::new(delta),
            kind: TrackEventKind::Midi {
                channel: u4::new(0),
                message: MidiMessage::NoteOn {
                    key: u7::new(key),
                    vel: u7::new(vel),
                },
            },
        };
        let end = TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        };
        let mut smf = Smf::new(Header::new(
            Format::Parallel,
            Timing::Metrical(u15::new(480)),
        ));
        smf.tracks.push(vec![end]); // a conductor track: no notes, no part
                                    // A quarter C4 then a half E4 (ended by velocity 0).
        smf.tracks.push(vec![
            on(0, 60, 80),
            on(480, 60, 0),
            on(0, 64, 70),
            on(960, 64, 0),
            end,
        ]);
        // A held G2 that the track's end closes after three beats.
        smf.tracks.push(vec![on(0, 43, 90), on(1440, 50, 0), end]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bach_test.mid");
        smf.save(&path).unwrap();
        let p = load(&path).unwrap();
        assert_eq!(p.name, "bach_test");
        assert_eq!(p.parts.len(), 2);
        assert_eq!(
            p.parts[0],
            vec![
                ScoreNote {
                    start: 0.0,
                    beats: 1.0,
                    key: 60
                },
                ScoreNote {
                    start: 1.0,
                    beats: 2.0,
                    key: 64
                },
            ]
        );
        assert_eq!(
            p.parts[1],
            vec![ScoreNote {
                start: 0.0,
                beats: 3.0,
                key: 43
            }]
        );
        assert_eq!(p.beats, 3.0);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.mid");
        std::fs::write(&path, b"not midi").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("broken.mid") && e.contains("not a MIDI file"),
            "{e}"
        );
        let e = load_dir(&dir.path().join("nowhere"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nowhere"), "{e}");
    }

    #[test]
    fn parts_fit_by_octaves_or_not_at_all() {
        let violin = index_of_name("violin").unwrap();
        let contrabass = index_of_name("contrabass").unwrap();
        // A tenor line (C3–G4) fits the contrabass an octave down and the
        // violin an octave up; a C3–C4 line fits the contrabass as written.
        assert_eq!(fit(contrabass, 48, 67), Some(-12));
        assert_eq!(fit(violin, 48, 67), Some(12));
        assert_eq!(fit(contrabass, 48, 60), Some(0));
        // Wider than the contrabass's range: no octave helps.
        assert_eq!(fit(contrabass, 30, 70), None);
    }

    #[test]
    fn a_movement_goes_wholly_to_one_split() {
        let pieces: Vec<Piece> = (0..10)
            .map(|i| piece(&format!("haydn_{i}"), &[&[(0.0, 1.0, 60)]]))
            .collect();
        let test = test_pieces(&pieces, 0.2);
        assert_eq!(test.iter().filter(|&&t| t).count(), 2);
        // The same names give the same split whatever their order.
        let mut reversed: Vec<Piece> = pieces.into_iter().rev().collect();
        let again = test_pieces(&reversed, 0.2);
        for (i, p) in reversed.iter_mut().enumerate() {
            let n: usize = p.name[6..].parse().unwrap();
            assert_eq!(again[i], test[n]);
        }
        // Two pieces: one each.
        let two: Vec<Piece> = (0..2)
            .map(|i| piece(&format!("bach_{i}"), &[&[(0.0, 1.0, 60)]]))
            .collect();
        assert_eq!(test_pieces(&two, 0.2).iter().filter(|&&t| t).count(), 1);
    }

    #[test]
    fn excerpts_keep_rhythm_fit_ranges_and_share_out_instruments() {
        // Four parts: soprano, alto, tenor, bass of a 64-beat movement.
        let line = |base: u8| -> Vec<(f64, f64, u8)> {
            (0..64)
                .map(|b| (f64::from(b), 1.0, base + (b % 5) as u8))
                .collect()
        };
        let (s, a, t, b) = (line(67), line(60), line(53), line(43));
        let p = piece("bach_x", &[&s, &a, &t, &b]);
        let mut rng = StdRng::seed_from_u64(3);
        let mut used = [0usize; INSTRUMENTS.len()];
        let avoid = [index_of_name("viola").unwrap()];
        let mut voices_seen = 0;
        for _ in 0..300 {
            for v in excerpt(&mut rng, &p, 10.0, &avoid, &mut used) {
                voices_seen += 1;
                assert!(!avoid.contains(&v.instrument));
                let (lo, hi) = crate::range::range(v.instrument);
                for &(start, end, key, ..) in &v.notes {
                    assert!((lo..=hi).contains(&key), "{key} outside {lo}–{hi}");
                    assert!(0.0 <= start && start < end && end <= 10.0);
                }
            }
        }
        assert!(voices_seen > 300);
        // Every allowed instrument got parts, and the rarest at least a
        // third of the most used one's count.
        let counts: Vec<usize> = (0..INSTRUMENTS.len())
            .filter(|k| !avoid.contains(k))
            .map(|k| used[k])
            .collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 0 && min * 3 >= *max, "{used:?}");
        assert_eq!(used[avoid[0]], 0);
    }
}
