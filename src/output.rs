//! `tutti analyze`'s output of detections: a readable table, or one JSON
//! object per line.

use crate::detect::{round4, Detection};
use crate::model::LabelSpec;
use crate::window::level::round_db;
use serde::Serialize;
use std::io::{self, Write};

/// One window as a JSON line of `tutti analyze --json`, and (without
/// `file`) in the HTTP API's answers.
#[derive(Serialize)]
pub struct WindowJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    start: f64,
    end: f64,
    padded: bool,
    instruments: Vec<&'a str>,
    scores: serde_json::Map<String, serde_json::Value>,
    /// The window's level (RMS and peak), in dBFS.
    rms_dbfs: f64,
    peak_dbfs: f64,
    /// The instruments the daemon would hold ON after this window.
    on: Vec<&'a str>,
}

impl<'a> WindowJson<'a> {
    /// `d`, a window of `file` (if any) read with the model's `labels`.
    pub fn new(file: Option<&'a str>, labels: &'a [LabelSpec], d: &'a Detection) -> Self {
        WindowJson {
            file,
            start: round4(d.start as f32),
            end: round4(d.end as f32),
            padded: d.padded,
            instruments: d.instrument_names(labels).collect(),
            scores: d.score_map(labels),
            rms_dbfs: round_db(d.level.rms_dbfs),
            peak_dbfs: round_db(d.level.peak_dbfs),
            on: d.on_names(labels).collect(),
        }
    }
}

pub enum Format {
    Table,
    JsonLines,
}

pub struct Printer<W: Write> {
    out: W,
    format: Format,
    header_done: bool,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: Format) -> Self {
        Printer {
            out,
            format,
            header_done: false,
        }
    }

    /// Prints `d`, a window of `file` read with the model's `labels`.
    pub fn print(&mut self, file: &str, labels: &[LabelSpec], d: &Detection) -> io::Result<()> {
        let (start, end) = (round4(d.start as f32), round4(d.end as f32));
        match self.format {
            Format::JsonLines => {
                serde_json::to_writer(&mut self.out, &WindowJson::new(Some(file), labels, d))?;
                writeln!(self.out)
            }
            Format::Table => {
                if !self.header_done {
                    writeln!(
                        self.out,
                        "{:<28} {:>8} {:>8}  instruments",
                        "file", "start", "end"
                    )?;
                    self.header_done = true;
                }
                let name = std::path::Path::new(file)
                    .file_name()
                    .map_or(file.to_string(), |n| n.to_string_lossy().into_owned());
                let list = if d.instruments.is_empty() {
                    "-".to_string()
                } else {
                    d.instrument_names(labels).collect::<Vec<_>>().join(", ")
                };
                let pad = if d.padded {
                    "  (short file, zero-padded)"
                } else {
                    ""
                };
                writeln!(
                    self.out,
                    "{:<28} {:>8.2} {:>8.2}  {list}{pad}",
                    name, start, end
                )
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
