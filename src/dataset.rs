//! Datasets in the MusicNet layout: `{train,test}_data/<id>.wav` with
//! `{train,test}_labels/<id>.csv`, whose columns are
//! `start_time,end_time,instrument,note,start_beat,end_beat,note_value`
//! (times in samples at 44.1 kHz, instrument as a 1-based GM program).
//! The same reader serves the real MusicNet download and rendered audio.

use crate::instruments::{index_of_program, INSTRUMENTS};
use std::path::{Path, PathBuf};

/// The rate at which MusicNet label times are counted.
pub const LABEL_RATE: f64 = 44100.0;

pub const LABEL_HEADER: &str = "start_time,end_time,instrument,note,start_beat,end_beat,note_value";

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no MusicNet layout here (expected train_data/ or test_data/ with WAV files)")]
    NoLayout(PathBuf),
    #[error("{path}: no label file {labels} for this recording")]
    MissingLabels { path: PathBuf, labels: PathBuf },
    #[error("{path}:{line}: {reason}")]
    BadLabel {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// A note that sounds, in seconds, for one of our instruments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoteSpan {
    pub start: f64,
    pub end: f64,
    pub instrument: usize,
}

#[derive(Debug, Clone)]
pub struct Recording {
    pub id: String,
    pub split: Split,
    pub wav: PathBuf,
    pub labels: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every recording under `root`, train split first, sorted by id.
pub fn scan(root: &Path) -> Result<Vec<Recording>, DatasetError> {
    let mut out = vec![];
    for split in [Split::Train, Split::Test] {
        let data = root.join(format!("{}_data", split.name()));
        if !data.is_dir() {
            continue;
        }
        let mut ids = vec![];
        for entry in std::fs::read_dir(&data).map_err(io_err(&data))? {
            let path = entry.map_err(io_err(&data))?.path();
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
            {
                if let Some(stem) = path.file_stem() {
                    ids.push((stem.to_string_lossy().into_owned(), path));
                }
            }
        }
        ids.sort_by(|a, b| natural_key(&a.0).cmp(&natural_key(&b.0)));
        for (id, wav) in ids {
            let labels = root
                .join(format!("{}_labels", split.name()))
                .join(format!("{id}.csv"));
            if !labels.is_file() {
                return Err(DatasetError::MissingLabels { path: wav, labels });
            }
            out.push(Recording {
                id,
                split,
                wav,
                labels,
            });
        }
    }
    if out.is_empty() {
        return Err(DatasetError::NoLayout(root.to_path_buf()));
    }
    Ok(out)
}

fn natural_key(id: &str) -> (u64, &str) {
    (id.parse().unwrap_or(u64::MAX), id)
}

/// Reads a label file, keeping the notes of our 11 instruments (MusicNet
/// has no others, but a user's own files might).
pub fn read_labels(path: &Path) -> Result<Vec<NoteSpan>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut lines = text.lines().enumerate();
    let bad = |line: usize, reason: String| DatasetError::BadLabel {
        path: path.to_path_buf(),
        line: line + 1,
        reason,
    };
    match lines.next() {
        Some((_, header)) if header.trim().starts_with("start_time,end_time,instrument") => {}
        _ => return Err(bad(0, format!("expected the header `{LABEL_HEADER}`"))),
    }
    let mut notes = vec![];
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() < 3 {
            return Err(bad(
                i,
                format!("expected at least 3 columns, got {}", cols.len()),
            ));
        }
        let num = |k: usize, what: &str| -> Result<f64, DatasetError> {
            cols[k]
                .trim()
                .parse::<f64>()
                .map_err(|_| bad(i, format!("{what} `{}` is not a number", cols[k])))
        };
        let (start, end, program) = (
            num(0, "start_time")?,
            num(1, "end_time")?,
            num(2, "instrument")?,
        );
        if end < start {
            return Err(bad(
                i,
                format!("end_time {end} is before start_time {start}"),
            ));
        }
        if let Some(instrument) = index_of_program(program as u32) {
            notes.push(NoteSpan {
                start: start / LABEL_RATE,
                end: end / LABEL_RATE,
                instrument,
            });
        }
    }
    Ok(notes)
}

/// Multi-hot labels of the window `[start, end)` seconds: an instrument counts
/// when its notes sound for at least `min_sounding` seconds of the window
/// (overlapping notes of one instrument are merged, not double-counted).
pub fn window_labels(
    notes: &[NoteSpan],
    start: f64,
    end: f64,
    min_sounding: f64,
) -> [bool; INSTRUMENTS.len()] {
    let mut out = [false; INSTRUMENTS.len()];
    for (k, flag) in out.iter_mut().enumerate() {
        let mut spans: Vec<(f64, f64)> = notes
            .iter()
            .filter(|n| n.instrument == k && n.end > start && n.start < end)
            .map(|n| (n.start.max(start), n.end.min(end)))
            .collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut covered, mut reach) = (0.0, start);
        for (s, e) in spans {
            let s = s.max(reach);
            if e > s {
                covered += e - s;
                reach = e;
            }
        }
        *flag = covered >= min_sounding.min(end - start);
    }
    out
}

/// Per-recording metadata from the dataset's optional `metadata.csv` (first
/// column the id, as tutti-synth writes it): a map id → {column: value}.
/// No file, an empty map.
pub fn metadata(root: &Path) -> serde_json::Value {
    let Ok(text) = std::fs::read_to_string(root.join("metadata.csv")) else {
        return serde_json::json!({});
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let mut map = serde_json::Map::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        let row: serde_json::Map<String, serde_json::Value> = header
            .iter()
            .zip(&cols)
            .skip(1)
            .map(|(h, v)| (h.to_string(), serde_json::Value::from(*v)))
            .collect();
        map.insert(cols[0].to_string(), row.into());
    }
    map.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_maps_each_recording_to_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(metadata(dir.path()), serde_json::json!({}));
        std::fs::write(
            dir.path().join("metadata.csv"),
            "id,soundfont,engine\n1,FluidR3_GM,oxisynth\n\n2,TimGM6mb,rustysynth\n",
        )
        .unwrap();
        assert_eq!(
            metadata(dir.path()),
            serde_json::json!({
                "1": {"soundfont": "FluidR3_GM", "engine": "oxisynth"},
                "2": {"soundfont": "TimGM6mb", "engine": "rustysynth"},
            })
        );
    }

    fn note(start: f64, end: f64, instrument: usize) -> NoteSpan {
        NoteSpan {
            start,
            end,
            instrument,
        }
    }

    #[test]
    fn an_instrument_counts_only_when_it_sounds_long_enough() {
        let notes = [
            note(0.0, 0.1, 0),
            note(0.05, 0.2, 0),
            note(1.0, 3.0, 2),
            note(1.9, 2.5, 4),
        ];
        let l = window_labels(&notes, 0.0, 2.0, 0.25);
        assert!(
            !l[0],
            "0.2 s of piano, overlapping notes merged, is under 0.25 s"
        );
        assert!(l[2], "violin sounds 1 s");
        assert!(!l[4], "cello sounds 0.1 s inside the window");
        let l = window_labels(&notes, 1.5, 3.5, 0.25);
        assert!(l[2] && l[4]);
    }

    #[test]
    fn label_files_parse_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("1.csv");
        std::fs::write(
            &p,
            format!("{LABEL_HEADER}\n44100,88200,43,60,0,1,Quarter\n0,4410,99,60,0,1,Quarter\n"),
        )
        .unwrap();
        let notes = read_labels(&p).unwrap();
        assert_eq!(notes, vec![note(1.0, 2.0, 4)]);
        std::fs::write(&p, format!("{LABEL_HEADER}\n44100,x,43,60,0,1,Quarter\n")).unwrap();
        let err = read_labels(&p).unwrap_err().to_string();
        assert!(
            err.contains("1.csv:2") && err.contains("end_time `x`"),
            "{err}"
        );
    }
}
