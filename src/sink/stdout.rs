//! `tutti listen --json`: each detection's payload as a line on standard
//! output, written by a thread of its own. A reader that stalls (a full
//! pipe, a paused terminal) blocks only that thread: the detections it has
//! no room for are dropped from standard output, counted and logged, while
//! analysis, MQTT and the outbox go on.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// Lines that may wait for a slow reader before new ones are dropped.
const QUEUE: usize = 256;

pub struct Printer {
    lines: SyncSender<Vec<u8>>,
    dropped: u64,
    printed: Arc<AtomicU64>,
}

impl Printer {
    /// Starts the printing thread.
    pub fn spawn() -> std::io::Result<Printer> {
        let (lines, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let printed = Arc::new(AtomicU64::new(0));
        let count = printed.clone();
        std::thread::Builder::new()
            .name("tutti-stdout".into())
            .spawn(move || {
                for line in rx {
                    let mut out = std::io::stdout().lock();
                    let written = out
                        .write_all(&line)
                        .and_then(|()| out.write_all(b"\n"))
                        .and_then(|()| out.flush());
                    if let Err(e) = written {
                        // A closed pipe (`tutti listen --json | head`) must
                        // not take the daemon down.
                        log::warn!(
                            "Could not print detections on standard output ({e}); \
                             printing stops, publishing goes on."
                        );
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        Ok(Printer {
            lines,
            dropped: 0,
            printed,
        })
    }

    /// Queues one payload; false once printing has stopped for good.
    pub fn print(&mut self, payload: Vec<u8>) -> bool {
        match self.lines.try_send(payload) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    log::warn!(
                        "Standard output is not being read: detections that do not fit \
                         in its queue of {QUEUE} are not printed (MQTT and the outbox have \
                         them all)."
                    );
                }
                self.dropped += 1;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Says at exit what did not reach standard output.
    pub fn finish(self) {
        if self.dropped > 0 {
            log::warn!(
                "{} detection(s) were not printed because standard output was not read \
                 ({} printed).",
                self.dropped,
                self.printed.load(Ordering::Relaxed)
            );
        }
    }
}
