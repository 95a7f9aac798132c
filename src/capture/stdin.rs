//! Raw PCM on standard input (`--input -`) as a capture source: whatever
//! ffmpeg, arecord, GStreamer or pw-record can open (an RTSP camera, a
//! PipeWire node, a remote stream) reaches tutti through a pipe. Its frames
//! go through the same ring as a device's. The end of the stream ends the
//! input, as the end of a file does; a stream that stops without ending
//! stops the audio, which the watchdog notices as it does a stalled device.

use super::{ring, CaptureError, Format, RingWriter, SourceEvent};
use crate::config::{Encoding, RawFormat};
use crate::wait::Stop;
use std::io::Read;
use std::os::fd::AsFd;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What messages call the source.
pub const NAME: &str = "standard input";
/// How long a read waits before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(100);
/// Silence on the pipe this long is logged (once, until audio comes back).
const STALL: Duration = Duration::from_secs(5);
/// Most frames taken in one read.
const READ_FRAMES: usize = 4096;

pub struct StdinSource {
    pub format: RawFormat,
}

impl StdinSource {
    /// Starts the reader thread on the process's standard input.
    pub fn spawn(
        self,
        events: Sender<SourceEvent>,
        stop: Stop,
    ) -> Result<JoinHandle<()>, CaptureError> {
        std::thread::Builder::new()
            .name("tutti-stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                if let Err(e) = self.feed(stdin.lock(), &events, &stop) {
                    let _ = events.send(SourceEvent::Failed(e));
                }
            })
            .map_err(|e| CaptureError::Device {
                device: NAME.into(),
                reason: e.to_string(),
            })
    }

    /// Reads `input` until its end or `stop`, feeding a ring.
    pub fn feed(
        &self,
        mut input: impl Read + AsFd,
        events: &Sender<SourceEvent>,
        stop: &Stop,
    ) -> Result<(), CaptureError> {
        let raw = self.format;
        let format = Format {
            sample_rate: raw.sample_rate,
            channels: raw.channels,
        };
        let (mut writer, segment) = ring(format, NAME, 1.0);
        if events.send(SourceEvent::Segment(segment)).is_err() {
            return Ok(());
        }
        let channels = usize::from(raw.channels);
        let frame_bytes = channels * raw.encoding.bytes();
        let mut bytes = vec![0u8; READ_FRAMES * frame_bytes];
        let mut samples = Vec::with_capacity(READ_FRAMES * channels);
        // Bytes of a frame split across two reads wait at the front.
        let mut held = 0;
        let mut last_audio = Instant::now();
        let mut stalled = false;
        let failed = |e: std::io::Error| CaptureError::Device {
            device: NAME.into(),
            reason: e.to_string(),
        };
        while !stop.requested() {
            if !readable(&input, POLL).map_err(failed)? {
                if !stalled && last_audio.elapsed() >= STALL {
                    log::warn!(
                        "No audio on {NAME} for {} s; waiting for it (under systemd the \
                         watchdog restarts tutti if it does not come).",
                        STALL.as_secs()
                    );
                    stalled = true;
                }
                continue;
            }
            let n = match input.read(&mut bytes[held..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(failed(e)),
            };
            if n == 0 {
                if held > 0 {
                    log::warn!(
                        "{NAME} ended in the middle of a frame: its last {held} byte(s) \
                         were not audio enough for one."
                    );
                }
                break;
            }
            if stalled {
                log::info!("Audio on {NAME} again.");
                stalled = false;
            }
            last_audio = Instant::now();
            let whole = (held + n) / frame_bytes * frame_bytes;
            samples.clear();
            decode(raw.encoding, &bytes[..whole], &mut samples);
            bytes.copy_within(whole..held + n, 0);
            held = held + n - whole;
            if !write_all(&mut writer, &samples, channels, stop) {
                break;
            }
        }
        let _ = events.send(SourceEvent::End);
        Ok(())
    }
}

/// Waits up to `timeout` for `input` to have bytes (or its end) to read.
fn readable(input: &impl AsFd, timeout: Duration) -> std::io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(input, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Appends the samples in `bytes` (whole frames, little-endian) to `out`,
/// scaled to [-1, 1) as WAV files of the same encoding are.
fn decode(encoding: Encoding, bytes: &[u8], out: &mut Vec<f32>) {
    match encoding {
        Encoding::S16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) * (1.0 / 32768.0)),
        ),
        Encoding::S32 => out.extend(bytes.chunks_exact(4).map(|b| {
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 * (1.0 / 2_147_483_648.0)
        })),
        // Not finite is silence: one NaN would poison every feature of
        // its windows.
        Encoding::F32 => out.extend(bytes.chunks_exact(4).map(|b| {
            let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if x.is_finite() {
                x
            } else {
                0.0
            }
        })),
    }
}

/// Writes `samples` into the ring, waiting for room while the analysis
/// catches up (a pipe can wait; nothing is lost). False if a stop came.
fn write_all(writer: &mut RingWriter, samples: &[f32], channels: usize, stop: &Stop) -> bool {
    let mut rest = samples;
    while !rest.is_empty() {
        let room = writer.vacant_frames() * channels;
        if room == 0 {
            if stop.sleep(Duration::from_millis(1)) {
                return false;
            }
            continue;
        }
        let take = room.min(rest.len());
        writer.write(&rest[..take]);
        rest = &rest[take..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbuf::traits::Consumer;

    #[test]
    fn every_encoding_scales_as_wav_files_do() {
        let mut out = vec![];
        decode(
            Encoding::S16,
            &[0x00, 0x80, 0xff, 0x7f, 0x00, 0x40],
            &mut out,
        );
        assert_eq!(out, [-1.0, 32767.0 / 32768.0, 0.5]);
        out.clear();
        decode(Encoding::S32, &i32::MIN.to_le_bytes(), &mut out);
        decode(Encoding::S32, &(1i32 << 30).to_le_bytes(), &mut out);
        assert_eq!(out, [-1.0, 0.5]);
        out.clear();
        let mut bytes = 0.25f32.to_le_bytes().to_vec();
        bytes.extend(f32::NAN.to_le_bytes());
        decode(Encoding::F32, &bytes, &mut out);
        assert_eq!(out, [0.25, 0.0]);
    }

    #[test]
    fn frames_split_across_reads_arrive_whole_and_the_end_ends_the_input() {
        // A pipe written to in odd-sized pieces, then closed.
        let (reader, mut writer) = std::io::pipe().unwrap();
        let frames: Vec<i16> = (0..3000).map(|i| (i * 7 % 2000) as i16 - 1000).collect();
        let bytes: Vec<u8> = frames.iter().flat_map(|s| s.to_le_bytes()).collect();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            for piece in bytes.chunks(333) {
                writer.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let source = StdinSource {
            format: RawFormat {
                encoding: Encoding::S16,
                sample_rate: 8000,
                channels: 2,
            },
        };
        let (tx, rx) = std::sync::mpsc::channel();
        source.feed(reader, &tx, &Stop::default()).unwrap();
        feeder.join().unwrap();
        let Ok(SourceEvent::Segment(mut seg)) = rx.recv() else {
            panic!("no segment first")
        };
        assert!(matches!(rx.recv(), Ok(SourceEvent::End)));
        let mut got = vec![0f32; 4000];
        let n = seg.consumer.pop_slice(&mut got);
        assert_eq!(n, 3000);
        for (g, s) in got.iter().zip(&frames) {
            assert_eq!(*g, f32::from(*s) / 32768.0);
        }
    }
}
