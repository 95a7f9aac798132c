//! WAV decoding: `hound` reads and checks the header, then the sample data
//! is read in blocks and converted here (hound's per-sample reader costs more
//! than everything after it). Integer PCM of 8, 16, 24 (in 3 or 4 bytes) or
//! 32 bits and 32-bit float, any channel count, downmixed to mono by
//! averaging channels.

use super::AudioError;
use hound::SampleFormat;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How one sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Unsigned 8-bit, centred on 128.
    U8,
    I16,
    I24,
    /// 24 bits in the low three bytes of four.
    I24In32,
    I32,
    F32,
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::U8 => 1,
            Encoding::I16 => 2,
            Encoding::I24 => 3,
            Encoding::I24In32 | Encoding::I32 | Encoding::F32 => 4,
        }
    }
}

/// Where a WAV file's bytes come from: a file, or memory (a request body).
trait Source: Read + Seek + Send {}
impl<T: Read + Seek + Send> Source for T {}

/// Streams a WAV file as mono `f32` frames in [-1, 1] (integer formats are
/// scaled by 2^(bits-1), as libsndfile and librosa do).
pub struct WavReader {
    /// What messages call the file: its path, or a name for bytes in memory.
    path: PathBuf,
    data: BufReader<Box<dyn Source>>,
    encoding: Encoding,
    scale: f32,
    channels: u16,
    sample_rate: u32,
    frames_read: u64,
    frames_total: u64,
    /// Byte offset of the first sample in the file.
    data_start: u64,
    bytes: Vec<u8>,
}

/// The `block_align` field of the file's `fmt ` chunk, which says how many
/// bytes a frame takes (hound checks the header but does not expose it).
fn block_align(file: &mut dyn Source) -> std::io::Result<Option<u16>> {
    let mut riff = [0u8; 12];
    file.read_exact(&mut riff)?;
    loop {
        let mut head = [0u8; 8];
        file.read_exact(&mut head)?;
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if &head[..4] == b"fmt " {
            let mut fmt = [0u8; 14];
            file.read_exact(&mut fmt)?;
            return Ok(Some(u16::from_le_bytes([fmt[12], fmt[13]])));
        }
        file.seek(SeekFrom::Current(i64::from(size) + i64::from(size & 1)))?;
    }
}

impl WavReader {
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let open = || -> Result<Box<dyn Source>, AudioError> {
            match File::open(path) {
                Ok(file) => Ok(Box::new(file)),
                Err(source) => Err(AudioError::Open {
                    path: path.to_path_buf(),
                    source,
                }),
            }
        };
        Self::new(path, &open)
    }

    /// Reads a WAV file held in memory; messages call it `name`.
    pub fn from_memory<B>(name: &Path, bytes: B) -> Result<Self, AudioError>
    where
        B: AsRef<[u8]> + Clone + Send + 'static,
    {
        Self::new(name, &|| {
            Ok(Box::new(std::io::Cursor::new(bytes.clone())) as Box<dyn Source>)
        })
    }

    /// Reads the header from one `open()`, and the frame size from
    /// another (hound checks the header but does not expose it).
    fn new(
        path: &Path,
        open: &dyn Fn() -> Result<Box<dyn Source>, AudioError>,
    ) -> Result<Self, AudioError> {
        let reader = hound::WavReader::new(BufReader::new(open()?)).map_err(|e| match e {
            hound::Error::Unsupported => AudioError::Unsupported {
                path: path.to_path_buf(),
                reason: "this WAV encoding is not supported (use PCM or IEEE float)".into(),
            },
            other => AudioError::Header {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })?;
        let spec = reader.spec();
        let unsupported = |reason: String| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        if spec.channels == 0 {
            return Err(unsupported("zero channels".into()));
        }
        if spec.sample_rate == 0 {
            return Err(unsupported("sample rate is 0 Hz".into()));
        }
        // hound accepted the header, so its fmt chunk is there.
        let align = block_align(open()?.as_mut())
            .ok()
            .flatten()
            .unwrap_or(spec.bits_per_sample.div_ceil(8) * spec.channels);
        let container = align / spec.channels;
        let encoding = match (spec.sample_format, container, spec.bits_per_sample) {
            (SampleFormat::Int, 1, 8) => Encoding::U8,
            (SampleFormat::Int, 2, 16) => Encoding::I16,
            (SampleFormat::Int, 3, 24) => Encoding::I24,
            (SampleFormat::Int, 4, 24) => Encoding::I24In32,
            (SampleFormat::Int, 4, 32) => Encoding::I32,
            (SampleFormat::Float, 4, 32) => Encoding::F32,
            (format, bytes, bits) => {
                return Err(unsupported(format!(
                    "{bits}-bit {} samples in {bytes} bytes (supported: 8/16/24/32-bit integer, 32-bit float)",
                    match format {
                        SampleFormat::Int => "integer",
                        SampleFormat::Float => "float",
                    }
                )))
            }
        };
        let scale = match encoding {
            Encoding::F32 => 1.0,
            _ => 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32,
        };
        let frames_total = u64::from(reader.duration());
        // hound stops at the first sample of the data chunk.
        let mut data = reader.into_inner();
        let data_start = data.stream_position().map_err(|source| AudioError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(WavReader {
            path: path.to_path_buf(),
            data,
            data_start,
            encoding,
            scale,
            channels: spec.channels,
            sample_rate: spec.sample_rate,
            frames_read: 0,
            frames_total,
            bytes: Vec::new(),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Number of frames the header announces.
    pub fn frames_total(&self) -> u64 {
        self.frames_total
    }

    /// Continues reading at frame `frame` (for reading a file in parts).
    pub fn seek_to_frame(&mut self, frame: u64) -> Result<(), AudioError> {
        let frame = frame.min(self.frames_total);
        let bytes = frame * u64::from(self.channels) * self.encoding.bytes() as u64;
        self.data
            .seek(SeekFrom::Start(self.data_start + bytes))
            .map_err(|e| self.truncated(e.to_string()))?;
        self.frames_read = frame;
        Ok(())
    }

    /// Appends up to `max_frames` mono frames to `out`; returns how many
    /// (0 at the end). A file whose data ends inside a frame, or before the
    /// header's length, is reported as truncated rather than silently
    /// shortened.
    pub fn read_mono(
        &mut self,
        out: &mut Vec<f32>,
        max_frames: usize,
    ) -> Result<usize, AudioError> {
        self.read_block(out, max_frames, false)
    }

    /// Like [`WavReader::read_mono`], but appends every channel's sample,
    /// frame by frame (interleaved), as a capture device delivers them.
    pub fn read_interleaved(
        &mut self,
        out: &mut Vec<f32>,
        max_frames: usize,
    ) -> Result<usize, AudioError> {
        self.read_block(out, max_frames, true)
    }

    fn read_block(
        &mut self,
        out: &mut Vec<f32>,
        max_frames: usize,
        interleaved: bool,
    ) -> Result<usize, AudioError> {
        let channels = usize::from(self.channels);
        // Decoding every sample on its own is what mono decoding does.
        let out_channels = if interleaved { 1 } else { channels };
        let per_frame = if interleaved { channels } else { 1 };
        let sample_bytes = self.encoding.bytes();
        let frame_bytes = channels * sample_bytes;
        let left = self.frames_total - self.frames_read;
        let want = (max_frames as u64).min(left) as usize;
        self.bytes.resize(want * frame_bytes, 0);
        let mut got = 0;
        while got < self.bytes.len() {
            match self.data.read(&mut self.bytes[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.truncated(e.to_string())),
            }
        }
        let frames = got / frame_bytes;
        let first = out.len();
        let scale = self.scale;
        let bytes = &self.bytes[..frames * frame_bytes];
        match self.encoding {
            Encoding::U8 => mix(bytes, out_channels, out, |[b]: [u8; 1]| {
                (f32::from(b) - 128.0) * scale
            }),
            Encoding::I16 => mix(bytes, out_channels, out, |b: [u8; 2]| {
                f32::from(i16::from_le_bytes(b)) * scale
            }),
            Encoding::I24 => mix(bytes, out_channels, out, |[a, b, c]: [u8; 3]| {
                (i32::from_le_bytes([0, a, b, c]) >> 8) as f32 * scale
            }),
            Encoding::I24In32 => mix(bytes, out_channels, out, |[a, b, c, _]: [u8; 4]| {
                (i32::from_le_bytes([0, a, b, c]) >> 8) as f32 * scale
            }),
            Encoding::I32 => mix(bytes, out_channels, out, |b: [u8; 4]| {
                i32::from_le_bytes(b) as f32 * scale
            }),
            Encoding::F32 => {
                mix(bytes, out_channels, out, f32::from_le_bytes);
                // A NaN or infinity in any channel makes the average one.
                if let Some(i) = out[first..]
                    .iter()
                    .position(|v| !v.is_finite())
                    .map(|i| i / per_frame)
                {
                    let value = bytes[i * frame_bytes..(i + 1) * frame_bytes]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .find(|v| !v.is_finite())
                        .unwrap_or(f32::NAN);
                    return Err(AudioError::NonFinite {
                        path: self.path.clone(),
                        frame: self.frames_read + i as u64,
                        value,
                    });
                }
            }
        }
        self.frames_read += frames as u64;
        if got < self.bytes.len() {
            let partial = got % frame_bytes;
            return Err(self.truncated(if partial > 0 {
                format!(
                    "the last frame has only {} of {channels} channels",
                    partial / sample_bytes
                )
            } else {
                format!("the header announces {} frames", self.frames_total)
            }));
        }
        Ok(frames)
    }

    fn truncated(&self, reason: String) -> AudioError {
        AudioError::Truncated {
            path: self.path.clone(),
            frames: self.frames_read,
            reason,
        }
    }
}

/// Decodes whole frames of `B`-byte samples with `decode` and appends each
/// frame's channel average to `out`.
fn mix<const B: usize>(
    bytes: &[u8],
    channels: usize,
    out: &mut Vec<f32>,
    decode: impl Fn([u8; B]) -> f32,
) {
    let sample = |s: &[u8]| decode(s.try_into().expect("chunks are B bytes"));
    // Mono and stereo get loops the compiler can see through; the results
    // are the same as the general average's.
    match channels {
        1 => return out.extend(bytes.chunks_exact(B).map(sample)),
        2 => {
            return out.extend(
                bytes
                    .chunks_exact(2 * B)
                    .map(|f| (sample(&f[..B]) + sample(&f[B..])) * 0.5),
            )
        }
        _ => {}
    }
    let inv = 1.0 / channels as f32;
    out.extend(bytes.chunks_exact(B * channels).map(|frame| {
        let acc = frame.chunks_exact(B).fold(0.0f32, |acc, s| {
            acc + decode(s.try_into().expect("chunks are B bytes"))
        });
        acc * inv
    }));
}
