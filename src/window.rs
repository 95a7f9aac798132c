//! Sliding windows over a mono stream. The windower owns the overlap: it keeps
//! just enough history for the next window and copies each window into a
//! caller-owned buffer, so steady-state windowing never allocates.

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

/// Where a window lies in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowInfo {
    pub index: u64,
    pub start_sample: u64,
    /// True when the stream was shorter than one window and the rest of the
    /// window is zeros.
    pub padded: bool,
}

pub struct Windower {
    spec: WindowSpec,
    buf: Vec<f32>,
    /// Absolute stream position of `buf[0]`.
    buf_start: u64,
    next_start: u64,
    next_index: u64,
}

impl Windower {
    pub fn new(spec: WindowSpec) -> Self {
        Windower {
            spec,
            buf: Vec::with_capacity(spec.length + spec.hop + 16384),
            buf_start: 0,
            next_start: 0,
            next_index: 0,
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Samples waiting in the buffer (for callers that bound memory).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, samples: &[f32]) {
        // Drop history that no future window needs before growing the buffer.
        let keep_from = (self.next_start - self.buf_start) as usize;
        if keep_from > 0 && keep_from <= self.buf.len() {
            self.buf.drain(..keep_from);
            self.buf_start = self.next_start;
        }
        self.buf.extend_from_slice(samples);
    }

    /// Copies the next full window into `out` (of the window's length).
    pub fn next_window(&mut self, out: &mut [f32]) -> Option<WindowInfo> {
        debug_assert_eq!(out.len(), self.spec.length);
        let offset = (self.next_start - self.buf_start) as usize;
        if offset + self.spec.length > self.buf.len() {
            return None;
        }
        out.copy_from_slice(&self.buf[offset..offset + self.spec.length]);
        Some(self.advance(false))
    }

    /// At the end of a stream that never filled one window, yields that
    /// stream zero-padded to a window, once.
    pub fn finish(&mut self, out: &mut [f32]) -> Option<WindowInfo> {
        if self.next_index > 0 || self.buf.is_empty() {
            return None;
        }
        let n = self.buf.len().min(out.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        out[n..].fill(0.0);
        Some(self.advance(true))
    }

    fn advance(&mut self, padded: bool) -> WindowInfo {
        let info = WindowInfo {
            index: self.next_index,
            start_sample: self.next_start,
            padded,
        };
        self.next_index += 1;
        self.next_start += self.spec.hop as u64;
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_slide_by_hop_and_see_the_right_samples() {
        let spec = WindowSpec::from_seconds(10, 2.0, 0.5).unwrap();
        assert_eq!((spec.length, spec.hop), (20, 5));
        let mut w = Windower::new(spec);
        let signal: Vec<f32> = (0..47).map(|i| i as f32).collect();
        let mut out = vec![0.0; 20];
        let mut starts = vec![];
        for chunk in signal.chunks(7) {
            w.push(chunk);
            while let Some(info) = w.next_window(&mut out) {
                assert_eq!(out[0], info.start_sample as f32);
                assert_eq!(out[19], info.start_sample as f32 + 19.0);
                starts.push(info.start_sample);
            }
        }
        assert_eq!(starts, vec![0, 5, 10, 15, 20, 25]);
        assert!(w.finish(&mut out).is_none());
    }

    #[test]
    fn short_stream_gives_one_padded_window() {
        let spec = WindowSpec::from_seconds(10, 2.0, 0.5).unwrap();
        let mut w = Windower::new(spec);
        w.push(&[1.0; 7]);
        let mut out = vec![9.0; 20];
        assert!(w.next_window(&mut out).is_none());
        let info = w.finish(&mut out).unwrap();
        assert!(info.padded);
        assert_eq!(&out[..7], &[1.0; 7]);
        assert!(out[7..].iter().all(|&x| x == 0.0));
        assert!(w.finish(&mut out).is_none());
    }

    #[test]
    fn bad_hops_are_rejected_with_their_value() {
        let err = WindowSpec::from_seconds(22050, 2.0, 3.0).unwrap_err();
        assert!(err.to_string().contains("hop 3 s"), "{err}");
        assert!(WindowSpec::from_seconds(22050, 2.0, 0.0).is_err());
        assert!(WindowSpec::from_seconds(22050, 2.0, f64::NAN).is_err());
    }
}
