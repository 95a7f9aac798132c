//! Output of detections: a readable table, or one JSON object per line.

use crate::detect::Detection;
use std::io::{self, Write};

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

    pub fn print(&mut self, d: &Detection) -> io::Result<()> {
        match self.format {
            Format::JsonLines => {
                serde_json::to_writer(&mut self.out, d)?;
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
                let name = std::path::Path::new(&d.file)
                    .file_name()
                    .map_or(d.file.clone(), |n| n.to_string_lossy().into_owned());
                let list = if d.instruments.is_empty() {
                    "-".to_string()
                } else {
                    d.instruments.join(", ")
                };
                let pad = if d.padded {
                    "  (short file, zero-padded)"
                } else {
                    ""
                };
                writeln!(
                    self.out,
                    "{:<28} {:>8.2} {:>8.2}  {list}{pad}",
                    name, d.start, d.end
                )
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
