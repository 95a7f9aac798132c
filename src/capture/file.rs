//! A WAV file as a capture source, for machines without a microphone: its
//! frames go through the same ring as a device's, at real-time pace (or
//! `speed` times faster), optionally looping.

use super::{ring, CaptureError, Format, SourceEvent};
use crate::audio::WavReader;
use crate::wait::Stop;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Wall-clock time between two writes into the ring, as a device's period.
const PERIOD: Duration = Duration::from_millis(10);

/// The fastest a file may play: a period then carries a second of audio,
/// half the capture ring.
pub const MAX_SPEED: f64 = 100.0;

pub struct FileSource {
    pub path: PathBuf,
    pub speed: f64,
    pub looped: bool,
}

impl FileSource {
    /// Opens the file (so that a bad file fails here, with its name) and
    /// starts the feeder thread.
    pub fn spawn(
        self,
        events: Sender<SourceEvent>,
        stop: Stop,
    ) -> Result<JoinHandle<()>, CaptureError> {
        let reader = WavReader::open(&self.path)?;
        let handle = std::thread::Builder::new()
            .name("tutti-file".into())
            .spawn(move || {
                if let Err(e) = self.feed(reader, &events, &stop) {
                    let _ = events.send(SourceEvent::Failed(e));
                }
            })
            .map_err(|e| CaptureError::Device {
                device: "file feeder".into(),
                reason: e.to_string(),
            })?;
        Ok(handle)
    }

    fn feed(
        &self,
        mut reader: WavReader,
        events: &Sender<SourceEvent>,
        stop: &Stop,
    ) -> Result<(), CaptureError> {
        let format = Format {
            sample_rate: reader.sample_rate(),
            channels: reader.channels(),
        };
        let name = self.path.display().to_string();
        let (mut writer, segment) = ring(format, &name, self.speed);
        if events.send(SourceEvent::Segment(segment)).is_err() {
            return Ok(());
        }
        let frames_per_period =
            ((f64::from(format.sample_rate) * PERIOD.as_secs_f64() * self.speed).ceil() as usize)
                .max(1);
        let mut block = Vec::with_capacity(frames_per_period * usize::from(format.channels));
        let start = Instant::now();
        let mut sent: u64 = 0;
        while !stop.requested() {
            // Real-time pace: frame `sent` is due at sent / (rate × speed).
            let due = start
                + Duration::from_secs_f64(
                    sent as f64 / (f64::from(format.sample_rate) * self.speed),
                );
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                if stop.sleep(wait) {
                    break;
                }
            }
            block.clear();
            let mut n = reader.read_interleaved(&mut block, frames_per_period)?;
            if n == 0 {
                if !self.looped || reader.frames_total() == 0 {
                    break;
                }
                reader.seek_to_frame(0)?;
                n = reader.read_interleaved(&mut block, frames_per_period)?;
            }
            // A file is not a device: when the worker lags, wait for room
            // rather than lose frames.
            while writer.vacant_frames() < n && !stop.sleep(Duration::from_millis(1)) {}
            writer.write(&block);
            sent += n as u64;
        }
        let _ = events.send(SourceEvent::End);
        Ok(())
    }
}
