//! The on-disk outbox: every detection is appended here first and leaves
//! only once the broker has acknowledged it, so a broker outage, a restart
//! or a crash loses nothing that reached the disk. One JSON object per line
//! in `outbox.jsonl`; `outbox.cursor` holds the byte offset of the first
//! unacknowledged line. The waiting part is bounded: past `max_bytes` the
//! oldest lines are dropped, and counted.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("{path}: outbox: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Outbox {
    path: PathBuf,
    cursor_path: PathBuf,
    file: File,
    /// Byte offset of the first line not yet acknowledged.
    cursor: u64,
    /// Length of the file: where the next line goes.
    end: u64,
    max_bytes: u64,
    saved_cursor: u64,
    /// Lines dropped because the outbox was full, since the last report.
    pub dropped: u64,
    /// Lines from `cursor` to `end`.
    waiting_lines: u64,
    /// Lines were appended since the file was last flushed to the disk.
    unsynced: bool,
    reader: Option<(u64, BufReader<File>)>,
}

/// The outbox's write failures (a full disk, a read-only state directory),
/// which do not stop tutti: said once when they start and once when they
/// end, with the detections that could not be kept meanwhile counted.
#[derive(Debug, Default)]
pub struct Trouble {
    failing: bool,
    /// Detections not kept since the trouble started.
    lost: u64,
    /// Detections not kept since tutti started.
    pub lost_total: u64,
}

impl Trouble {
    /// An outbox operation failed; `lost` when a detection went with it.
    pub fn failed(&mut self, e: &OutboxError, lost: bool) {
        if lost {
            self.lost += 1;
            self.lost_total += 1;
        }
        if !self.failing {
            self.failing = true;
            log::warn!(
                "{e}. Detections that cannot be written are counted and dropped until it \
                 can be; ON/OFF states are still published."
            );
        }
    }

    /// A detection was written: the trouble, if any, is over.
    pub fn ok(&mut self) {
        if self.failing {
            self.failing = false;
            log::warn!(
                "The outbox can be written again; {} detection(s) could not be kept meanwhile.",
                self.lost
            );
            self.lost = 0;
        }
    }
}

/// Where the last whole line of `file` (of length `len`) ends: the byte
/// after its last newline, found by reading backwards a block at a time,
/// so opening a large outbox does not read all of it.
fn whole_lines_end(file: &File, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 8192];
    let mut to = len;
    while to > 0 {
        let from = to.saturating_sub(buf.len() as u64);
        let block = &mut buf[..(to - from) as usize];
        file.read_exact_at(block, from)?;
        if let Some(i) = block.iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        to = from;
    }
    Ok(0)
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`. A last line cut short by a
    /// crash is removed.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Outbox, OutboxError> {
        let path = dir.join("outbox.jsonl");
        let cursor_path = dir.join("outbox.cursor");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| OutboxError::Io { path: p, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut end = file.metadata().map_err(io(&path))?.len();
        // Keep only whole lines: a write cut short by a crash or a full
        // disk left a torn last line, which could never be parsed.
        let whole = whole_lines_end(&file, end).map_err(io(&path))?;
        if whole < end {
            log::warn!(
                "{}: skipped a torn last line ({} bytes) that an interrupted write left.",
                path.display(),
                end - whole
            );
            file.set_len(whole).map_err(io(&path))?;
            end = whole;
        }
        let cursor = match std::fs::read_to_string(&cursor_path) {
            Ok(t) => t.trim().parse::<u64>().unwrap_or(0).min(end),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(OutboxError::Io {
                    path: cursor_path,
                    source,
                })
            }
        };
        let mut outbox = Outbox {
            path,
            cursor_path,
            file,
            cursor,
            end,
            max_bytes,
            saved_cursor: cursor,
            dropped: 0,
            waiting_lines: 0,
            unsynced: false,
            reader: None,
        };
        // A cursor that does not fall on a line start (an old cursor file
        // beside a rewritten outbox) restarts from the beginning.
        if cursor > 0 && outbox.byte_before(cursor)? != b'\n' {
            outbox.cursor = 0;
        }
        outbox.waiting_lines = outbox.lines_between(outbox.cursor, outbox.end)?;
        Ok(outbox)
    }

    fn err(&self, source: std::io::Error) -> OutboxError {
        OutboxError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn byte_before(&mut self, at: u64) -> Result<u8, OutboxError> {
        let mut f = File::open(&self.path).map_err(|e| self.err(e))?;
        f.seek(SeekFrom::Start(at - 1)).map_err(|e| self.err(e))?;
        let mut b = [0u8];
        f.read_exact(&mut b).map_err(|e| self.err(e))?;
        Ok(b[0])
    }

    /// How many lines lie between two line starts.
    fn lines_between(&self, from: u64, to: u64) -> Result<u64, OutboxError> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 8192];
        let (mut at, mut lines) = (from, 0);
        while at < to {
            let want = ((to - at) as usize).min(buf.len());
            let n = self
                .file
                .read_at(&mut buf[..want], at)
                .map_err(|e| self.err(e))?;
            if n == 0 {
                break;
            }
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            at += n as u64;
        }
        Ok(lines)
    }

    /// Lines (detections) waiting for an acknowledgement.
    pub fn waiting_lines(&self) -> u64 {
        self.waiting_lines
    }

    /// Bytes of lines waiting for an acknowledgement.
    pub fn waiting_bytes(&self) -> u64 {
        self.end - self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.cursor
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends one line (`line` has no newline). Returns its end offset.
    /// A write that fails (a full disk, a read-only directory) leaves the
    /// file as it was: what part of the line got written is cut off again.
    pub fn append(&mut self, line: &str) -> Result<u64, OutboxError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Err(e) = self.file.write_all(&bytes) {
            let _ = self.file.set_len(self.end);
            return Err(self.err(e));
        }
        self.end += bytes.len() as u64;
        self.waiting_lines += 1;
        self.unsynced = true;
        while self.waiting_bytes() > self.max_bytes {
            // Full: the oldest line goes.
            let Some((_, next)) = self.read_at(self.cursor)? else {
                break;
            };
            self.cursor = next;
            self.dropped += 1;
            self.waiting_lines -= 1;
        }
        Ok(self.end)
    }

    /// The line starting at `offset` (without its newline) and the offset of
    /// the next one; `None` at the end.
    pub fn read_at(&mut self, offset: u64) -> Result<Option<(String, u64)>, OutboxError> {
        if offset >= self.end {
            return Ok(None);
        }
        let reuse = matches!(&self.reader, Some((at, _)) if *at == offset);
        if !reuse {
            let mut f = File::open(&self.path).map_err(|e| self.err(e))?;
            f.seek(SeekFrom::Start(offset)).map_err(|e| self.err(e))?;
            self.reader = Some((offset, BufReader::new(f)));
        }
        let (at, reader) = self.reader.as_mut().expect("reader set above");
        let mut line = String::new();
        let n = reader.read_line(&mut line);
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.reader = None;
                return Err(self.err(e));
            }
        };
        if n == 0 || !line.ends_with('\n') {
            // Appended after the reader's buffer was filled: read afresh.
            self.reader = None;
            if n == 0 {
                return Ok(None);
            }
            return self.read_at(offset);
        }
        *at += n as u64;
        line.pop();
        Ok(Some((line, *at)))
    }

    /// Everything before `offset` has been acknowledged.
    pub fn acknowledge(&mut self, offset: u64) -> Result<(), OutboxError> {
        if offset > self.cursor {
            let offset = offset.min(self.end);
            let lines = self.lines_between(self.cursor, offset)?;
            self.waiting_lines = self.waiting_lines.saturating_sub(lines);
            self.cursor = offset;
        }
        if self.cursor == self.end && self.end > 0 {
            // All delivered: start the file afresh.
            self.file.set_len(0).map_err(|e| self.err(e))?;
            self.cursor = 0;
            self.end = 0;
            self.waiting_lines = 0;
            self.reader = None;
            self.save_cursor()?;
        }
        Ok(())
    }

    /// Rewrites the file without its acknowledged or dropped head, once
    /// that head is larger than the bound (during a long outage). Offsets
    /// change: callers must hold none (no line in flight).
    pub fn compact_if_needed(&mut self) -> Result<bool, OutboxError> {
        if self.cursor <= self.max_bytes.max(1 << 20) {
            return Ok(false);
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let io = |source| OutboxError::Io {
            path: tmp.clone(),
            source,
        };
        let copied = (|| {
            let mut src = File::open(&self.path).map_err(|e| self.err(e))?;
            src.seek(SeekFrom::Start(self.cursor))
                .map_err(|e| self.err(e))?;
            let mut dst = File::create(&tmp).map_err(io)?;
            std::io::copy(&mut src, &mut dst).map_err(io)?;
            dst.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &self.path).map_err(io)
        })();
        if let Err(e) = copied {
            // A full disk midway: no half copy left behind.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.err(e))?;
        self.end -= self.cursor;
        self.cursor = 0;
        self.reader = None;
        self.save_cursor()?;
        Ok(true)
    }

    /// Writes the cursor to disk if it moved (written atomically).
    pub fn save_cursor(&mut self) -> Result<(), OutboxError> {
        if self.cursor == self.saved_cursor && self.cursor_path.exists() {
            return Ok(());
        }
        let tmp = self.cursor_path.with_extension("tmp");
        let io = |source| OutboxError::Io {
            path: self.cursor_path.clone(),
            source,
        };
        std::fs::write(&tmp, self.cursor.to_string()).map_err(io)?;
        std::fs::rename(&tmp, &self.cursor_path).map_err(io)?;
        self.saved_cursor = self.cursor;
        Ok(())
    }

    /// Flushes the file and the cursor to the disk.
    pub fn sync(&mut self) -> Result<(), OutboxError> {
        self.sync_data()?;
        self.save_cursor()
    }

    /// Flushes the lines to the disk (`fdatasync`).
    pub fn sync_data(&mut self) -> Result<(), OutboxError> {
        self.file.sync_data().map_err(|e| self.err(e))?;
        self.unsynced = false;
        Ok(())
    }

    /// When lines were appended since the last flush: a handle on the file
    /// to flush them with, away from the caller's thread (an `fdatasync`
    /// through any handle flushes the file), and its path for the log.
    pub fn to_flush(&mut self) -> Result<Option<(File, PathBuf)>, OutboxError> {
        if !self.unsynced {
            return Ok(None);
        }
        let file = self.file.try_clone().map_err(|e| self.err(e))?;
        self.unsynced = false;
        Ok(Some((file, self.path.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_survive_a_reopen_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20).unwrap();
        let a = o.append("{\"n\":1}").unwrap();
        let b = o.append("{\"n\":2}").unwrap();
        o.append("{\"n\":3}").unwrap();
        assert_eq!(o.read_at(0).unwrap(), Some(("{\"n\":1}".into(), a)));
        assert_eq!(o.read_at(a).unwrap().unwrap().0, "{\"n\":2}");
        assert_eq!(o.waiting_lines(), 3);
        o.acknowledge(a).unwrap();
        assert_eq!(o.waiting_lines(), 2);
        o.sync().unwrap();
        drop(o);
        // A crash mid-write leaves half a line: it is dropped on open.
        let path = dir.path().join("outbox.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"n\":").unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(o.cursor(), a);
        assert_eq!(o.waiting_lines(), 2);
        assert_eq!(o.read_at(o.cursor()).unwrap().unwrap().0, "{\"n\":2}");
        assert_eq!(
            o.read_at(b).unwrap().unwrap(),
            ("{\"n\":3}".into(), o.end())
        );
        assert_eq!(o.read_at(o.end()).unwrap(), None);
        // Everything acknowledged: the file starts afresh.
        let end = o.end();
        o.acknowledge(end).unwrap();
        assert!(o.is_empty());
        assert_eq!(o.waiting_lines(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_lines_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 25).unwrap();
        for n in 0..10 {
            o.append(&format!("{{\"n\":{n}}}")).unwrap();
        }
        // 8 bytes a line: 3 fit in 25.
        assert_eq!(o.waiting_bytes(), 24);
        assert_eq!(o.dropped, 7);
        assert_eq!(o.waiting_lines(), 3);
        assert_eq!(o.read_at(o.cursor()).unwrap().unwrap().0, "{\"n\":7}");
    }

    #[test]
    fn compaction_keeps_the_waiting_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 100).unwrap();
        let line = "x".repeat(1000);
        for _ in 0..1100 {
            o.append(&line).unwrap();
        }
        o.append("{\"last\":1}").unwrap();
        let waiting = o.waiting_lines();
        assert!(o.compact_if_needed().unwrap());
        assert_eq!(o.cursor(), 0);
        assert_eq!(o.waiting_lines(), waiting);
        assert_eq!(o.read_at(0).unwrap().unwrap().0, "{\"last\":1}");
        drop(o);
        let mut o = Outbox::open(dir.path(), 100).unwrap();
        assert_eq!(o.read_at(o.cursor()).unwrap().unwrap().0, "{\"last\":1}");
    }

    #[test]
    fn the_last_whole_line_is_found_from_the_end_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Newlines before, at and after the 8192-byte block edges, and
        // none at all.
        for (len, newlines) in [
            (0usize, vec![]),
            (5, vec![]),
            (20_000, vec![]),
            (20_000, vec![0]),
            (20_000, vec![19_999]),
            (20_000, vec![3, 11_807]),
            (20_000, vec![11_808]),
            (20_000, vec![11_807, 11_808]),
            (8192, vec![0, 8191]),
            (8193, vec![1]),
        ] {
            let mut bytes = vec![b'x'; len];
            for &i in &newlines {
                bytes[i] = b'\n';
            }
            std::fs::write(&path, &bytes).unwrap();
            let want = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
            let f = File::open(&path).unwrap();
            assert_eq!(
                whole_lines_end(&f, len as u64).unwrap(),
                want,
                "{len} {newlines:?}"
            );
        }
    }

    #[test]
    fn a_flush_is_offered_only_after_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert!(o.to_flush().unwrap().is_none(), "nothing written yet");
        o.append("{\"n\":1}").unwrap();
        let (file, path) = o.to_flush().unwrap().expect("a line to flush");
        file.sync_data().unwrap();
        assert_eq!(path, dir.path().join("outbox.jsonl"));
        assert!(o.to_flush().unwrap().is_none(), "flushed already");
        o.append("{\"n\":2}").unwrap();
        o.sync_data().unwrap();
        assert!(o.to_flush().unwrap().is_none(), "sync_data flushed it");
    }
}
