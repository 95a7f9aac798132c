//! The sound level of each window: the RMS and the peak of its samples, in
//! dBFS. The stream is summed in blocks whose length divides both the hop
//! and the window, so a window's level is the sum of its blocks', however
//! much the windows overlap, and a window costs a few additions.

use crate::audio::resample::gcd;
use std::collections::VecDeque;

/// The level reported for digital silence, in dBFS.
pub const SILENCE_DBFS: f32 = -120.0;

/// A window's level, in dBFS (full scale is 0; silence [`SILENCE_DBFS`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub rms_dbfs: f32,
    pub peak_dbfs: f32,
}

impl Level {
    /// The level of a sum of squares over `n` samples and a peak magnitude.
    pub fn of(sum_squares: f64, n: usize, peak: f32) -> Level {
        let db = |power: f64| ((10.0 * power.log10()) as f32).max(SILENCE_DBFS);
        Level {
            rms_dbfs: db(sum_squares / n.max(1) as f64),
            peak_dbfs: db(f64::from(peak) * f64::from(peak)),
        }
    }
}

/// A level in dBFS as outputs give it, to 0.01 dB.
pub fn round_db(db: f32) -> f64 {
    (f64::from(db) * 100.0).round() / 100.0
}

/// One block's sum of squares and peak magnitude.
#[derive(Debug, Clone, Copy, Default)]
struct Block {
    sum_squares: f64,
    peak: f32,
}

/// Block sums of a stream, kept for as long as a window may still need
/// them.
#[derive(Debug)]
pub struct LevelMeter {
    block: u64,
    blocks_per_window: usize,
    /// Complete blocks, the first being block number `first`.
    blocks: VecDeque<Block>,
    capacity: usize,
    first: u64,
    /// The block being filled, number `filling`, with `filled` samples.
    current: Block,
    filling: u64,
    filled: u64,
}

impl LevelMeter {
    /// A meter for windows of `length` samples every `hop` samples, fed
    /// at most `lead` samples past the end of the oldest window still to
    /// be measured.
    pub fn new(length: usize, hop: usize, lead: usize) -> LevelMeter {
        let block = gcd(length.max(1), hop.max(1));
        let blocks_per_window = length.max(1) / block;
        let capacity = blocks_per_window + lead.div_ceil(block) + 2;
        LevelMeter {
            block: block as u64,
            blocks_per_window,
            blocks: VecDeque::with_capacity(capacity),
            capacity,
            first: 0,
            current: Block::default(),
            filling: 0,
            filled: 0,
        }
    }

    /// Forgets the stream; the samples pushed next start at `position`.
    pub fn reset_at(&mut self, position: u64) {
        self.blocks.clear();
        self.filling = position / self.block;
        self.first = self.filling;
        self.filled = position % self.block;
        self.current = Block::default();
    }

    pub fn push(&mut self, samples: &[f32]) {
        for &x in samples {
            self.current.sum_squares += f64::from(x) * f64::from(x);
            self.current.peak = self.current.peak.max(x.abs());
            self.filled += 1;
            if self.filled == self.block {
                if self.blocks.len() == self.capacity {
                    self.blocks.pop_front();
                    self.first += 1;
                }
                self.blocks.push_back(self.current);
                self.current = Block::default();
                self.filling += 1;
                self.filled = 0;
            }
        }
    }

    /// The level of the window starting at stream sample `start`, once all
    /// of it has been pushed.
    pub fn level(&self, start: u64) -> Level {
        let from = (start / self.block).saturating_sub(self.first) as usize;
        let (mut sum, mut peak, mut n) = (0.0, 0.0f32, 0);
        for b in self.blocks.iter().skip(from).take(self.blocks_per_window) {
            sum += b.sum_squares;
            peak = peak.max(b.peak);
            n += 1;
        }
        debug_assert_eq!(
            n, self.blocks_per_window,
            "window at {start} not all pushed"
        );
        Level::of(sum, n * self.block as usize, peak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The level of `samples[start..start + length]`, computed directly.
    fn direct(samples: &[f32], start: usize, length: usize) -> Level {
        let span = &samples[start..start + length];
        let sum = span.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let peak = span.iter().fold(0.0f32, |p, x| p.max(x.abs()));
        Level::of(sum, length, peak)
    }

    #[test]
    fn every_window_matches_its_samples_whatever_the_hop() {
        let samples: Vec<f32> = (0..5000)
            .map(|i| (i as f32 * 0.37).sin() * (i % 97) as f32 / 97.0)
            .collect();
        for (length, hop) in [(400, 100), (400, 130), (441, 441), (300, 7)] {
            let mut meter = LevelMeter::new(length, hop, 64);
            let mut next = 0;
            for chunk in samples.chunks(64) {
                meter.push(chunk);
                let pushed = meter.filling * meter.block + meter.filled;
                while next * hop + length <= pushed as usize {
                    let got = meter.level((next * hop) as u64);
                    let want = direct(&samples, next * hop, length);
                    assert!(
                        (got.rms_dbfs - want.rms_dbfs).abs() < 1e-4,
                        "{length}/{hop} #{next}"
                    );
                    assert_eq!(got.peak_dbfs, want.peak_dbfs);
                    next += 1;
                }
            }
            assert!(next > 10);
        }
    }

    #[test]
    fn full_scale_is_0_db_and_silence_is_the_floor() {
        let l = Level::of(4.0, 4, 1.0);
        assert_eq!((l.rms_dbfs, l.peak_dbfs), (0.0, 0.0));
        let l = Level::of(0.0, 4, 0.0);
        assert_eq!((l.rms_dbfs, l.peak_dbfs), (SILENCE_DBFS, SILENCE_DBFS));
        // A sine at half scale: RMS 0.5/√2, about -9.03 dBFS; peak -6.02.
        let l = Level::of(0.125 * 1000.0, 1000, 0.5);
        assert!((l.rms_dbfs + 9.031).abs() < 1e-3 && (l.peak_dbfs + 6.0206).abs() < 1e-3);
    }

    #[test]
    fn a_stream_read_in_parts_measures_as_a_whole() {
        let samples: Vec<f32> = (0..3000).map(|i| (i as f32 * 0.01).cos()).collect();
        let mut meter = LevelMeter::new(400, 100, 64);
        // From sample 750: blocks before 800 are incomplete, and unused.
        meter.reset_at(750);
        meter.push(&samples[750..1300]);
        let (got, want) = (meter.level(800), direct(&samples, 800, 400));
        assert!((got.rms_dbfs - want.rms_dbfs).abs() < 1e-4);
        assert_eq!(got.peak_dbfs, want.peak_dbfs);
    }
}
