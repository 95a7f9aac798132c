//! The worker thread: it takes each capture segment the source sends,
//! reads its ring as the audio arrives, and turns every window into a
//! [`Detection`](crate::detect::Detection) with its wall-clock times, for
//! the sinks.

use super::analyzer::{Analyzer, CHUNK_FRAMES};
use super::{Progress, WorkerError, WorkerEvent};
use crate::capture::{Segment, SourceEvent};
use crate::config::Channel;
use crate::detect::{Detector, Heard, Hysteresis, Rules};
use crate::model::{Model, ModelError};
use crate::wait::Stop;
use crate::window::{WindowInfo, WindowSpec};
use ringbuf::traits::{Consumer, Observer};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The shortest and longest the worker sleeps when it waits for audio.
/// In between it sleeps until the next window's audio is due, so it wakes
/// a few times per window rather than polling.
const IDLE_MIN: Duration = Duration::from_millis(1);
const IDLE_MAX: Duration = Duration::from_millis(100);
/// How often the worker looks for the first (or next) capture segment.
const SEGMENT_WAIT: Duration = Duration::from_millis(10);

pub struct Worker {
    pub model: Arc<Model>,
    pub spec: WindowSpec,
    pub channel: Channel,
    pub rules: Rules,
    pub hysteresis: Hysteresis,
}

impl Worker {
    /// Runs until the source ends, fails, or `stop` is requested; every
    /// window goes to `out`.
    pub fn run(
        self,
        sources: Receiver<SourceEvent>,
        out: tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
        progress: Arc<Progress>,
        stop: Stop,
    ) {
        let result = self.run_inner(&sources, &out, &progress, &stop);
        let _ = out.send(match result {
            Ok(()) => WorkerEvent::Ended,
            Err(e) => WorkerEvent::Failed(e),
        });
    }

    fn run_inner(
        &self,
        sources: &Receiver<SourceEvent>,
        out: &tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
        progress: &Progress,
        stop: &Stop,
    ) -> Result<(), WorkerError> {
        let sidecar = &self.model.sidecar;
        let mut emit = Emitter {
            model: &self.model,
            detector: Detector::new(sidecar, &self.rules, self.hysteresis),
            scores: Vec::with_capacity(sidecar.labels.len()),
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
                        &sidecar.feature_set,
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
                Ok(SourceEvent::Failed(e)) => return Err(e.into()),
                Err(TryRecvError::Empty) => {}
            }
            let Some((seg, analyzer, frames_in)) = &mut current else {
                if ended {
                    return Ok(());
                }
                stop.sleep(SEGMENT_WAIT);
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
                stop.sleep(Duration::from_secs_f64(due).clamp(IDLE_MIN, IDLE_MAX));
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
            progress.set_level(&buf[..n]);
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

/// Turns windows' features into detections: scores, states, times.
struct Emitter<'a> {
    model: &'a Model,
    detector: Detector,
    scores: Vec<f32>,
    /// Audio time across segments, for the hold time.
    clock_offset: f64,
    last_end: f64,
    out: &'a tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
    progress: &'a Progress,
    failed: Option<ModelError>,
}

impl Emitter<'_> {
    fn window(&mut self, info: WindowInfo, feats: &[f32], t: &Timing) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.model.predict(feats, &mut self.scores) {
            self.failed = Some(e);
            return;
        }
        let sidecar = &self.model.sidecar;
        let rate = f64::from(sidecar.sample_rate);
        let start_s = info.start_sample as f64 / rate;
        let end_s = start_s + sidecar.window_seconds;
        // When the window's last sample arrived, by wall clock; and the
        // last sample its features read (half a frame later), from which
        // the processing latency counts.
        let behind = Duration::from_secs_f64(((t.chunk_end - end_s) / t.speed).max(0.0));
        let read_end_s = info.end_sample_read as f64 / rate;
        let behind_read = Duration::from_secs_f64(((t.chunk_end - read_end_s) / t.speed).max(0.0));
        let end = t.at - behind;
        let start = end - Duration::from_secs_f64(sidecar.window_seconds / t.speed);
        let mut detection = self.detector.detect(
            self.clock_offset + start_s,
            info.padded,
            info.level,
            &self.scores,
        );
        self.last_end = detection.end;
        detection.heard = Some(Heard {
            start,
            end,
            latency: t.instant.elapsed() + behind_read,
        });
        self.progress.windows.fetch_add(1, Ordering::Relaxed);
        let _ = self.out.send(WorkerEvent::Window(detection));
    }

    fn result(&mut self, input: &str) -> Result<(), WorkerError> {
        match self.failed.take() {
            None => Ok(()),
            Some(source) => Err(WorkerError::Model {
                input: input.to_string(),
                source: Box::new(source),
            }),
        }
    }
}
