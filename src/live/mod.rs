//! The live analysis worker: it reads each capture segment's ring, takes
//! the configured channel (or the mix), resamples to the model's rate, and
//! runs the same windower, features and model as `tutti analyze`. Every
//! window becomes a [`Record`] for the sinks, with its wall-clock times and
//! the ON/OFF changes it caused.

use crate::audio::{AudioError, Resampler};
use crate::capture::{CaptureError, Format, Segment, SourceEvent, Stop};
use crate::config::Channel;
use crate::detect::{Hysteresis, InstrumentStates, StateChange};
use crate::features;
use crate::model::Model;
use crate::window::{WindowInfo, WindowSpec, Windower};
use ringbuf::traits::{Consumer, Observer};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Most frames taken from the ring at a time.
const CHUNK_FRAMES: usize = 4096;
/// Input frames per resampler FFT: the same as `tutti analyze` uses, so a
/// file gives the same features through either path.
const RESAMPLER_CHUNK: usize = 8192;
/// The shortest and longest the worker sleeps when it waits for audio.
/// In between it sleeps until the next window's audio is due, so it wakes
/// a few times per window rather than polling.
const IDLE_MIN: Duration = Duration::from_millis(1);
const IDLE_MAX: Duration = Duration::from_millis(100);
/// How often the worker looks for the first (or next) capture segment.
const SEGMENT_WAIT: Duration = Duration::from_millis(10);

/// One analysed window, ready for the sinks.
#[derive(Debug, Clone)]
pub struct Record {
    /// Window number since the daemon started.
    pub seq: u64,
    pub start: SystemTime,
    pub end: SystemTime,
    /// Scores in the model's label order.
    pub scores: Vec<f32>,
    /// Instruments ON after this window, in label order.
    pub on: Vec<bool>,
    /// Changes this window caused.
    pub changes: Vec<StateChange>,
    /// From the arrival of the last sample the window's features read
    /// (half an analysis frame past its end) to this record.
    pub latency: Duration,
}

/// What the worker hands the sinks.
#[derive(Debug)]
pub enum Output {
    Window(Record),
    /// The source ended (a file that does not loop); no more windows.
    Ended,
    /// Capture or analysis failed for good.
    Failed(String),
}

/// Progress counters, read by the watchdog and the shutdown report.
#[derive(Debug, Default)]
pub struct Progress {
    pub frames: AtomicU64,
    pub windows: AtomicU64,
    pub overruns: AtomicU64,
}

/// One segment's conversion from interleaved device frames to windows:
/// channel choice or downmix, resampling, windowing and features. Buffers
/// are made in `new`; `process` allocates nothing.
pub struct Analyzer {
    channels: usize,
    channel: Channel,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    resampler: Option<Resampler>,
    windower: Windower,
}

impl Analyzer {
    pub fn new(
        format: Format,
        channel: Channel,
        spec: WindowSpec,
        feature_set: &str,
        source: &str,
    ) -> Result<Self, CaptureError> {
        if let Channel::Only(n) = channel {
            if n == 0 || n > format.channels {
                return Err(CaptureError::Channel {
                    device: source.to_string(),
                    channel: n,
                    channels: format.channels,
                });
            }
        }
        let set = features::feature_set(feature_set, spec.sample_rate).map_err(|e| {
            CaptureError::Device {
                device: source.to_string(),
                reason: e.to_string(),
            }
        })?;
        let resampler = if format.sample_rate == spec.sample_rate {
            None
        } else {
            Some(Resampler::new(
                Path::new(source),
                format.sample_rate,
                spec.sample_rate,
                RESAMPLER_CHUNK,
            )?)
        };
        let out_max = resampler.as_ref().map_or(CHUNK_FRAMES, |r| {
            let (cin, cout) = r.chunk_sizes();
            (CHUNK_FRAMES / cin + 2) * cout
        });
        Ok(Analyzer {
            channels: usize::from(format.channels.max(1)),
            channel,
            mono: Vec::with_capacity(CHUNK_FRAMES),
            resampled: Vec::with_capacity(out_max),
            resampler,
            windower: Windower::new(spec, set),
        })
    }

    /// Analyses interleaved frames (at most [`CHUNK_FRAMES`] of them) and
    /// calls `f` for each window they complete.
    pub fn process(
        &mut self,
        interleaved: &[f32],
        f: &mut impl FnMut(WindowInfo, &[f32]),
    ) -> Result<(), AudioError> {
        self.mono.clear();
        let ch = self.channels;
        match self.channel {
            Channel::Only(n) => {
                let i = usize::from(n) - 1;
                self.mono
                    .extend(interleaved.chunks_exact(ch).map(|frame| frame[i]));
            }
            Channel::Mix if ch == 1 => self.mono.extend_from_slice(interleaved),
            Channel::Mix => {
                let inv = 1.0 / ch as f32;
                self.mono.extend(
                    interleaved
                        .chunks_exact(ch)
                        .map(|frame| frame.iter().sum::<f32>() * inv),
                );
            }
        }
        let samples = match &mut self.resampler {
            None => &self.mono,
            Some(r) => {
                self.resampled.clear();
                r.process(&self.mono, false, &mut self.resampled)?;
                &self.resampled
            }
        };
        let mut g = |info: WindowInfo, feats: &[f32]| -> Result<(), std::convert::Infallible> {
            f(info, feats);
            Ok(())
        };
        let Ok(()) = self.windower.push(samples, &mut g);
        Ok(())
    }

    /// Ends the segment's stream (a file that played to its end): the
    /// resampler's tail and the last windows, zero-padded, as `tutti
    /// analyze` ends a file.
    pub fn finish(&mut self, f: &mut impl FnMut(WindowInfo, &[f32])) -> Result<(), AudioError> {
        let mut g = |info: WindowInfo, feats: &[f32]| -> Result<(), std::convert::Infallible> {
            f(info, feats);
            Ok(())
        };
        if let Some(r) = &mut self.resampler {
            self.resampled.clear();
            r.process(&[], true, &mut self.resampled)?;
            let Ok(()) = self.windower.push(&self.resampled, &mut g);
        }
        let Ok(()) = self.windower.finish(&mut g);
        Ok(())
    }

    pub fn spec(&self) -> WindowSpec {
        self.windower.spec()
    }

    /// Input frames still to come before the next window is complete: what
    /// the windower lacks, and with a resampler the rest of its chunk plus
    /// the further whole chunks that the missing output (and, at the start,
    /// the output dropped for the filter's delay) needs.
    pub fn input_frames_missing(&self) -> u64 {
        let missing = self.windower.samples_missing();
        match &self.resampler {
            None => missing,
            Some(r) => {
                let (cin, cout) = r.chunk_sizes();
                let out = missing + r.pending_skip() as u64;
                let chunks = out.div_ceil(cout as u64).max(1);
                (cin - r.pending_frames().min(cin)) as u64 + (chunks - 1) * cin as u64
            }
        }
    }
}

pub struct Worker {
    pub model: Arc<Model>,
    pub spec: WindowSpec,
    pub channel: Channel,
    pub hysteresis: Hysteresis,
}

impl Worker {
    /// Runs until the source ends, fails, or `stop` is requested; every
    /// window goes to `out`.
    pub fn run(
        self,
        sources: Receiver<SourceEvent>,
        out: tokio::sync::mpsc::UnboundedSender<Output>,
        progress: Arc<Progress>,
        stop: Stop,
    ) {
        let result = self.run_inner(&sources, &out, &progress, &stop);
        let _ = out.send(match result {
            Ok(()) => Output::Ended,
            Err(e) => Output::Failed(e.to_string()),
        });
    }

    fn run_inner(
        &self,
        sources: &Receiver<SourceEvent>,
        out: &tokio::sync::mpsc::UnboundedSender<Output>,
        progress: &Progress,
        stop: &Stop,
    ) -> Result<(), CaptureError> {
        let sc = &self.model.sidecar;
        let mut emit = Emitter {
            model: &self.model,
            states: InstrumentStates::new(&sc.labels, sc.relative_threshold, self.hysteresis),
            scores: Vec::with_capacity(sc.labels.len()),
            seq: 0,
            clock_offset: 0.0,
            last_end: 0.0,
            out,
            progress,
            failed: None,
        };
        let mut buf = vec![0f32; 0];
        let mut ended = false;
        let mut current: Option<(Segment, Analyzer, u64)> = None;
        let mut last_overruns = 0u64;
        let mut lost = LostReport::default();
        while !stop.requested() {
            match sources.try_recv() {
                Ok(SourceEvent::Segment(seg)) => {
                    let analyzer = Analyzer::new(
                        seg.format,
                        self.channel,
                        self.spec,
                        &sc.feature_set,
                        &seg.source,
                    )?;
                    buf.resize(CHUNK_FRAMES * usize::from(seg.format.channels.max(1)), 0.0);
                    if current.is_some() {
                        // A gap between segments counts as a full hold.
                        emit.clock_offset = emit.last_end + self.hysteresis.hold_seconds;
                    }
                    last_overruns = 0;
                    current = Some((seg, analyzer, 0));
                }
                Ok(SourceEvent::End) | Err(TryRecvError::Disconnected) => ended = true,
                Ok(SourceEvent::Failed(e)) => return Err(e),
                Err(TryRecvError::Empty) => {}
            }
            let Some((seg, analyzer, frames_in)) = &mut current else {
                if ended {
                    return Ok(());
                }
                std::thread::sleep(SEGMENT_WAIT);
                continue;
            };
            let ch = usize::from(seg.format.channels.max(1));
            let available = seg.consumer.occupied_len() / ch * ch;
            if available == 0 && ended {
                // The source played to its end: finish its last windows.
                let timing = Timing::now(*frames_in, seg);
                analyzer.finish(&mut |info, feats| emit.window(info, feats, &timing))?;
                return emit.result(&seg.source);
            }
            let missing = analyzer.input_frames_missing() as usize;
            if !ended && available < buf.len() && available / ch < missing {
                // Not enough for the next window yet: sleep until its audio
                // is due, then look again.
                let due = (missing - available / ch) as f64
                    / f64::from(seg.format.sample_rate)
                    / seg.speed;
                std::thread::sleep(Duration::from_secs_f64(due).clamp(IDLE_MIN, IDLE_MAX));
                continue;
            }
            let take = available.min(buf.len());
            let n = seg.consumer.pop_slice(&mut buf[..take]);
            *frames_in += (n / ch) as u64;
            progress
                .frames
                .fetch_add((n / ch) as u64, Ordering::Relaxed);
            let overruns = seg.overruns.load(Ordering::Relaxed);
            if overruns > last_overruns {
                progress
                    .overruns
                    .fetch_add(overruns - last_overruns, Ordering::Relaxed);
                lost.add(overruns - last_overruns, &seg.source);
                last_overruns = overruns;
            }
            let timing = Timing::now(*frames_in, seg);
            analyzer.process(&buf[..n], &mut |info, feats| {
                emit.window(info, feats, &timing)
            })?;
            emit.result(&seg.source)?;
        }
        Ok(())
    }
}

/// How often at most the log reports lost audio.
const LOST_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Reports lost audio as a sentence at most every [`LOST_REPORT_EVERY`],
/// with the frames lost since the last report, however often it happens.
#[derive(Default)]
struct LostReport {
    pending: u64,
    last: Option<Instant>,
}

impl LostReport {
    fn add(&mut self, frames: u64, source: &str) {
        self.pending += frames;
        if self.last.is_some_and(|t| t.elapsed() < LOST_REPORT_EVERY) {
            return;
        }
        let since = match self.last {
            None => String::new(),
            Some(t) => format!(" in the last {} s", t.elapsed().as_secs()),
        };
        log::warn!(
            "{source}: the analysis fell behind and {} frames of audio were lost{since}.",
            self.pending
        );
        self.pending = 0;
        self.last = Some(Instant::now());
    }
}

/// When a chunk of audio was taken from the ring, to date its windows.
struct Timing {
    at: SystemTime,
    instant: Instant,
    /// Segment audio time of the chunk's last frame, in seconds.
    chunk_end: f64,
    speed: f64,
}

impl Timing {
    fn now(frames_in: u64, seg: &Segment) -> Timing {
        Timing {
            at: SystemTime::now(),
            instant: Instant::now(),
            chunk_end: frames_in as f64 / f64::from(seg.format.sample_rate),
            speed: seg.speed,
        }
    }
}

/// Turns windows' features into records: scores, states, times.
struct Emitter<'a> {
    model: &'a Model,
    states: InstrumentStates,
    scores: Vec<f32>,
    seq: u64,
    /// Audio time across segments, for the hold time.
    clock_offset: f64,
    last_end: f64,
    out: &'a tokio::sync::mpsc::UnboundedSender<Output>,
    progress: &'a Progress,
    failed: Option<String>,
}

impl Emitter<'_> {
    fn window(&mut self, info: WindowInfo, feats: &[f32], t: &Timing) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.model.predict(feats, &mut self.scores) {
            self.failed = Some(e.to_string());
            return;
        }
        let sc = &self.model.sidecar;
        let rate = f64::from(sc.sample_rate);
        let start_s = info.start_sample as f64 / rate;
        let end_s = start_s + sc.window_seconds;
        // When the window's last sample arrived, by wall clock; and the
        // last sample its features read (half a frame later), from which
        // the processing latency counts.
        let behind = Duration::from_secs_f64(((t.chunk_end - end_s) / t.speed).max(0.0));
        let read_end_s = info.end_sample_read as f64 / rate;
        let behind_read = Duration::from_secs_f64(((t.chunk_end - read_end_s) / t.speed).max(0.0));
        let end = t.at - behind;
        let start = end - Duration::from_secs_f64(sc.window_seconds / t.speed);
        let mut changes = vec![];
        self.last_end = self.clock_offset + end_s;
        self.states
            .update(self.last_end, &self.scores, &mut changes);
        let record = Record {
            seq: self.seq,
            start,
            end,
            scores: self.scores.clone(),
            on: (0..sc.labels.len()).map(|i| self.states.is_on(i)).collect(),
            changes,
            latency: t.instant.elapsed() + behind_read,
        };
        self.seq += 1;
        self.progress.windows.fetch_add(1, Ordering::Relaxed);
        let _ = self.out.send(Output::Window(record));
    }

    fn result(&mut self, source: &str) -> Result<(), CaptureError> {
        match self.failed.take() {
            None => Ok(()),
            Some(reason) => Err(CaptureError::Device {
                device: source.to_string(),
                reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker sleeps for `input_frames_missing` frames' worth of time:
    /// one frame fewer must never complete a window, and that many must.
    #[test]
    fn input_frames_missing_is_exactly_when_the_next_window_completes() {
        for (rate, channels) in [(22_050, 1u16), (44_100, 2), (48_000, 2)] {
            let format = Format {
                sample_rate: rate,
                channels,
            };
            let spec = WindowSpec::from_seconds(22_050, 2.0, 0.5).unwrap();
            let mut a = Analyzer::new(format, Channel::Mix, spec, "seed26", "test").unwrap();
            let ch = usize::from(channels);
            // A 440 Hz tone, fed in pieces no longer than CHUNK_FRAMES.
            let mut t = 0usize;
            let mut feed = |a: &mut Analyzer, frames: usize| -> usize {
                let mut windows = 0;
                let mut left = frames;
                while left > 0 {
                    let n = left.min(CHUNK_FRAMES);
                    let piece: Vec<f32> = (t..t + n)
                        .flat_map(|i| {
                            let v = (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin();
                            std::iter::repeat_n(0.3 * v, ch)
                        })
                        .collect();
                    t += n;
                    a.process(&piece, &mut |_, _| windows += 1).unwrap();
                    left -= n;
                }
                windows
            };
            for k in 0..6 {
                let missing = a.input_frames_missing() as usize;
                assert!(missing > 0);
                assert_eq!(feed(&mut a, missing - 1), 0, "{rate} Hz, window {k}: early");
                assert!(feed(&mut a, 1) >= 1, "{rate} Hz, window {k}: late");
            }
        }
    }
}
