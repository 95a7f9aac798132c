//! Sliding windows over a mono stream. The windower owns the overlap: it
//! cuts the stream into the feature set's centred frames, analyses each frame
//! once, keeps just the records the next window needs, and summarises every
//! window from the records of its frames. Overlapping windows therefore share
//! their frames' FFTs, and steady-state windowing never allocates.
//!
//! Window `k` nominally spans samples `[k·hop, k·hop + length)`. Its
//! features come from the `1 + length / frame_hop` frames starting at the
//! frame centred nearest to `k·hop` (at most half a frame hop away), which is
//! what librosa computes for that span when it starts on a frame.

pub mod level;

pub use level::Level;

use crate::features::FeatureSet;
use level::LevelMeter;

/// Errors in the window settings; messages name the offending value.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("window length {0} s is not a positive duration")]
    Length(f64),
    #[error("hop {hop} s must be positive and no longer than the {window} s window")]
    Hop { hop: f64, window: f64 },
}

/// Window length and hop, in samples at `sample_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub sample_rate: u32,
    pub length: usize,
    pub hop: usize,
}

impl WindowSpec {
    pub fn from_seconds(sample_rate: u32, window_s: f64, hop_s: f64) -> Result<Self, WindowError> {
        if !(window_s.is_finite() && window_s > 0.0) {
            return Err(WindowError::Length(window_s));
        }
        if !(hop_s.is_finite() && hop_s > 0.0 && hop_s <= window_s) {
            return Err(WindowError::Hop {
                hop: hop_s,
                window: window_s,
            });
        }
        let sr = f64::from(sample_rate);
        let hop = (hop_s * sr).round() as usize;
        if hop == 0 {
            return Err(WindowError::Hop {
                hop: hop_s,
                window: window_s,
            });
        }
        Ok(WindowSpec {
            sample_rate,
            length: (window_s * sr).round() as usize,
            hop,
        })
    }

    pub fn seconds(&self, samples: u64) -> f64 {
        samples as f64 / f64::from(self.sample_rate)
    }
}

/// Where a window lies in the stream, and how loud it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowInfo {
    pub index: u64,
    pub start_sample: u64,
    /// True when the stream was shorter than one window and the rest of the
    /// window is zeros.
    pub padded: bool,
    /// One past the last stream sample the window's features read: its
    /// last frame is centred within half a frame hop of the window's end,
    /// so this lies about half a frame past `start_sample + length`.
    pub end_sample_read: u64,
    /// The RMS and peak of the window's samples.
    pub level: Level,
}

/// Most samples taken from one `push` slice at a time, so the sample buffer
/// never grows past the capacity made in `new`.
const CHUNK: usize = 4096;

pub struct Windower {
    spec: WindowSpec,
    set: Box<dyn FeatureSet>,
    frame_len: usize,
    frame_hop: usize,
    record_len: usize,
    frames_per_window: usize,
    /// Stream samples from absolute position `samples_start`.
    samples: Vec<f32>,
    samples_start: u64,
    /// Samples pushed so far (the stream's length once finished).
    total: u64,
    /// Next frame to analyse.
    next_frame: u64,
    /// Records of frames `records_start..next_frame`.
    records: Vec<f32>,
    records_start: u64,
    next_index: u64,
    /// True once `finish` padded a short stream with zeros.
    padded: bool,
    /// Index of the first window not to emit (for streams read in parts).
    stop_before: u64,
    frame: Vec<f32>,
    features: Vec<f32>,
    level: LevelMeter,
}

impl Windower {
    pub fn new(spec: WindowSpec, set: Box<dyn FeatureSet>) -> Self {
        let (frame_len, frame_hop, record_len) =
            (set.frame_len(), set.frame_hop(), set.record_len());
        let frames_per_window = 1 + spec.length / frame_hop;
        Windower {
            spec,
            frame_len,
            frame_hop,
            record_len,
            frames_per_window,
            samples: Vec::with_capacity(frame_len + frame_hop + CHUNK),
            samples_start: 0,
            total: 0,
            next_frame: 0,
            records: Vec::with_capacity((frames_per_window + 2) * record_len),
            records_start: 0,
            next_index: 0,
            padded: false,
            stop_before: u64::MAX,
            frame: vec![0.0; frame_len],
            features: vec![0.0; set.len()],
            // A window is emitted at most a chunk and half a frame after
            // its last sample came in.
            level: LevelMeter::new(spec.length, spec.hop, CHUNK + frame_len),
            set,
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    pub fn feature_set(&self) -> &dyn FeatureSet {
        self.set.as_ref()
    }

    /// Forgets the stream, ready for a new one.
    pub fn reset(&mut self) {
        self.reset_at(0, 0..u64::MAX);
    }

    /// Readies the windower for one part of a stream: the samples pushed
    /// next start at stream position `position`, and only windows with an
    /// index in `windows` are emitted, exactly as a windower fed the whole
    /// stream would emit them. `position` must be 0 or no later than
    /// [`Windower::first_sample_needed`] of the first window.
    pub fn reset_at(&mut self, position: u64, windows: std::ops::Range<u64>) {
        self.samples.clear();
        self.records.clear();
        self.samples_start = position;
        self.total = position;
        self.level.reset_at(position);
        self.next_index = windows.start;
        self.stop_before = windows.end;
        self.next_frame = self.first_frame(windows.start);
        self.records_start = self.next_frame;
        self.padded = false;
    }

    /// The first stream sample that window `index`'s frames read.
    pub fn first_sample_needed(&self, index: u64) -> u64 {
        (self.first_frame(index) * self.frame_hop as u64)
            .saturating_sub((self.frame_len / 2) as u64)
    }

    /// How many stream samples window `index` needs before it can be
    /// emitted: its whole span, and its last frame's right half.
    fn samples_needed(&self, index: u64) -> u64 {
        let last = self.first_frame(index) + self.frames_per_window as u64 - 1;
        (last * self.frame_hop as u64 + (self.frame_len / 2) as u64)
            .max(index * self.spec.hop as u64 + self.spec.length as u64)
    }

    /// Stream samples still to come before the next window is complete.
    pub fn samples_missing(&self) -> u64 {
        self.samples_needed(self.next_index)
            .saturating_sub(self.total)
    }

    /// True once every window of the range given to `reset_at` is out.
    pub fn done(&self) -> bool {
        self.next_index >= self.stop_before
    }

    /// Appends `samples` to the stream and calls `f` with each window that
    /// became complete, in order.
    pub fn push<E>(
        &mut self,
        samples: &[f32],
        f: &mut impl FnMut(WindowInfo, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        for chunk in samples.chunks(CHUNK) {
            if self.done() {
                break;
            }
            self.drop_consumed_samples();
            self.samples.extend_from_slice(chunk);
            self.level.push(chunk);
            self.total += chunk.len() as u64;
            self.run(false, f)?;
        }
        Ok(())
    }

    /// Ends the stream: windows that need frames past its end are completed
    /// with zeros. A stream shorter than one window is padded to one window,
    /// marked `padded`.
    pub fn finish<E>(
        &mut self,
        f: &mut impl FnMut(WindowInfo, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.next_index == 0 && self.total > 0 && self.total < self.spec.length as u64 {
            self.padded = true;
            let mut missing = self.spec.length - self.total as usize;
            let zeros = [0.0f32; 1024];
            while missing > 0 {
                let n = missing.min(zeros.len());
                self.push(&zeros[..n], f)?;
                missing -= n;
            }
        }
        self.run(true, f)
    }

    /// First frame of window `index`: the frame centred nearest its start.
    fn first_frame(&self, index: u64) -> u64 {
        let start = index * self.spec.hop as u64;
        (start + self.frame_hop as u64 / 2) / self.frame_hop as u64
    }

    /// Whether the stream holds the whole span of window `index`.
    fn window_in_stream(&self, index: u64) -> bool {
        index * self.spec.hop as u64 + self.spec.length as u64 <= self.total
    }

    fn run<E>(
        &mut self,
        ended: bool,
        f: &mut impl FnMut(WindowInfo, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let fpw = self.frames_per_window as u64;
        loop {
            if self.done() {
                return Ok(());
            }
            let first = self.first_frame(self.next_index);
            if self.next_frame >= first + fpw && self.window_in_stream(self.next_index) {
                self.emit(first, f)?;
                continue;
            }
            // Records before the next window's first frame are done with;
            // frames before it are never needed.
            self.drop_records_before(first);
            if self.next_frame < first {
                self.next_frame = first;
                self.records_start = first;
            }
            let centre = self.next_frame * self.frame_hop as u64;
            let have_samples = centre + (self.frame_len / 2) as u64 <= self.total;
            let wanted = self.next_frame < first + fpw;
            let may_pad = ended && self.window_in_stream(self.next_index);
            if wanted && (have_samples || may_pad) {
                self.analyse_next_frame();
            } else {
                return Ok(());
            }
        }
    }

    fn emit<E>(
        &mut self,
        first: u64,
        f: &mut impl FnMut(WindowInfo, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let from = (first - self.records_start) as usize * self.record_len;
        let to = from + self.frames_per_window * self.record_len;
        self.set
            .summarise(&self.records[from..to], &mut self.features);
        let start_sample = self.next_index * self.spec.hop as u64;
        let info = WindowInfo {
            index: self.next_index,
            start_sample,
            padded: self.padded,
            end_sample_read: self.samples_needed(self.next_index),
            level: self.level.level(start_sample),
        };
        self.next_index += 1;
        f(info, &self.features)
    }

    fn analyse_next_frame(&mut self) {
        let half = (self.frame_len / 2) as i64;
        let begin = (self.next_frame * self.frame_hop as u64) as i64 - half;
        // The part of the frame inside the stream, in frame coordinates.
        let lo = (-begin).clamp(0, self.frame_len as i64) as usize;
        let hi = (self.total as i64 - begin).clamp(lo as i64, self.frame_len as i64) as usize;
        // Zeros only where the frame hangs past the stream's ends.
        self.frame[..lo].fill(0.0);
        self.frame[hi..].fill(0.0);
        if hi > lo {
            let from = (begin + lo as i64) as u64 - self.samples_start;
            let from = from as usize;
            self.frame[lo..hi].copy_from_slice(&self.samples[from..from + (hi - lo)]);
        }
        let at = self.records.len();
        self.records.resize(at + self.record_len, 0.0);
        self.set
            .analyse_frame(&self.frame, lo..hi, &mut self.records[at..]);
        self.next_frame += 1;
    }

    fn drop_records_before(&mut self, frame: u64) {
        if frame > self.records_start {
            let n =
                ((frame - self.records_start) as usize * self.record_len).min(self.records.len());
            self.records.copy_within(n.., 0);
            self.records.truncate(self.records.len() - n);
            self.records_start = frame;
        }
    }

    /// Drops samples that no frame still to be analysed reaches.
    fn drop_consumed_samples(&mut self) {
        let needed_from = (self.next_frame * self.frame_hop as u64)
            .saturating_sub((self.frame_len / 2) as u64)
            .max(self.samples_start);
        let n = ((needed_from - self.samples_start) as usize).min(self.samples.len());
        if n > 0 {
            self.samples.copy_within(n.., 0);
            self.samples.truncate(self.samples.len() - n);
            self.samples_start += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::SetShape;
    use std::ops::Range;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Frames of 8 samples every 4; a record keeps the centre sample and the
    /// valid range, a window reports its first frame's centre sample, its
    /// frame count, and the valid range of its first and last frames.
    struct Probe {
        shape: SetShape,
        frames: Arc<AtomicUsize>,
    }

    impl Probe {
        fn new(frames: Arc<AtomicUsize>) -> Self {
            Probe {
                shape: SetShape {
                    name: "probe",
                    names: ["centre", "frames", "first_lo", "last_hi"]
                        .map(String::from)
                        .to_vec(),
                    frame_len: 8,
                    frame_hop: 4,
                    record_len: 3,
                },
                frames,
            }
        }
    }

    impl FeatureSet for Probe {
        fn shape(&self) -> &SetShape {
            &self.shape
        }
        fn analyse_frame(&mut self, frame: &[f32], valid: Range<usize>, record: &mut [f32]) {
            self.frames.fetch_add(1, Ordering::Relaxed);
            record.copy_from_slice(&[frame[4], valid.start as f32, valid.end as f32]);
        }
        fn summarise(&mut self, records: &[f32], out: &mut [f32]) {
            let n = records.len();
            out.copy_from_slice(&[records[0], (n / 3) as f32, records[1], records[n - 1]]);
        }
    }

    fn windows(signal: &[f32], chunk: usize) -> (Vec<(WindowInfo, Vec<f32>)>, usize) {
        let spec = WindowSpec::from_seconds(10, 2.0, 0.5).unwrap();
        assert_eq!((spec.length, spec.hop), (20, 5));
        let frames = Arc::new(AtomicUsize::new(0));
        let probe = Probe::new(frames.clone());
        let mut w = Windower::new(spec, Box::new(probe));
        let mut got = vec![];
        let mut keep = |info, f: &[f32]| -> Result<(), ()> {
            got.push((info, f.to_vec()));
            Ok(())
        };
        for c in signal.chunks(chunk) {
            w.push(c, &mut keep).unwrap();
        }
        w.finish(&mut keep).unwrap();
        (got, frames.load(Ordering::Relaxed))
    }

    #[test]
    fn windows_use_the_frames_nearest_their_span_each_analysed_once() {
        let signal: Vec<f32> = (1..=47).map(|i| i as f32).collect();
        let (got, frames) = windows(&signal, 7);
        let starts: Vec<u64> = got.iter().map(|(i, _)| i.start_sample).collect();
        assert_eq!(starts, vec![0, 5, 10, 15, 20, 25]);
        // Window k starts on frame round(5k / 4); frame j is centred on
        // sample 4j, whose value is 4j + 1.
        let centres: Vec<f32> = got.iter().map(|(_, f)| f[0]).collect();
        assert_eq!(centres, vec![1.0, 5.0, 13.0, 17.0, 21.0, 25.0]);
        assert!(got.iter().all(|(i, f)| f[1] == 6.0 && !i.padded));
        // The first frame hangs 4 samples before the stream, the last one
        // (centred on 44) 1 sample past its end.
        assert_eq!((got[0].1[2], got[5].1[3]), (4.0, 7.0));
        // Frames 0..=11 each analysed once, not 6 per window.
        assert_eq!(frames, 12);
        // How the stream arrives changes nothing.
        assert_eq!(windows(&signal, 1).0, got);
        assert_eq!(windows(&signal, 47).0, got);
    }

    #[test]
    fn samples_missing_is_exactly_what_the_next_window_waits_for() {
        let spec = WindowSpec::from_seconds(10, 2.0, 0.5).unwrap();
        let probe = Probe::new(Arc::new(AtomicUsize::new(0)));
        let mut w = Windower::new(spec, Box::new(probe));
        let infos = std::cell::RefCell::new(vec![]);
        let mut keep = |info: WindowInfo, _: &[f32]| -> Result<(), ()> {
            infos.borrow_mut().push(info);
            Ok(())
        };
        let mut pushed = 0u64;
        for expected in 1..=5 {
            let missing = w.samples_missing();
            assert!(missing > 0);
            // One sample short: nothing; the last one: the window.
            w.push(&vec![1.0; missing as usize - 1], &mut keep).unwrap();
            assert_eq!(infos.borrow().len(), expected - 1);
            w.push(&[1.0], &mut keep).unwrap();
            pushed += missing;
            assert_eq!(infos.borrow().len(), expected);
            // Its last frame (centred within half a hop of its end, 2
            // samples here) read up to here, half a frame (4) past the end.
            let info = infos.borrow()[expected - 1];
            assert_eq!(info.end_sample_read, pushed);
            let end = info.start_sample + 20;
            assert!((end + 4 - 2..=end + 4 + 2).contains(&info.end_sample_read));
        }
    }

    #[test]
    fn short_stream_gives_one_padded_window() {
        let (got, _) = windows(&[1.0; 7], 3);
        assert_eq!(got.len(), 1);
        let (info, f) = &got[0];
        assert!(info.padded);
        assert_eq!(info.start_sample, 0);
        assert_eq!(f[1], 6.0);
        assert!(windows(&[], 3).0.is_empty());
    }

    #[test]
    fn bad_hops_are_rejected_with_their_value() {
        let err = WindowSpec::from_seconds(22050, 2.0, 3.0).unwrap_err();
        assert!(err.to_string().contains("hop 3 s"), "{err}");
        assert!(WindowSpec::from_seconds(22050, 2.0, 0.0).is_err());
        assert!(WindowSpec::from_seconds(22050, 2.0, f64::NAN).is_err());
    }
}
