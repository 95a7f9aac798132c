//! Capture devices through cpal (ALSA on Linux): listing them, choosing one
//! by name, id or index, and a supervisor thread that keeps a stream open,
//! reopening it with capped backoff when the device goes away.

use super::{ring, CaptureError, Format, RingWriter, SourceEvent};
use crate::config::Input;
use crate::wait::{Backoff, Stop};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{
    SampleFormat, SizedSample, StreamConfig, SupportedBufferSize, SupportedStreamConfigRange,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One input device as `tutti devices` shows it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub index: usize,
    pub name: String,
    pub id: String,
    pub is_default: bool,
    /// The device's own preferred format, if it reports one.
    pub default_config: Option<String>,
    /// The supported ranges, grouped: "1–2 ch, 8000–192000 Hz: i16, i32".
    pub configs: Vec<String>,
}

/// What to open: which device, and optionally at which rate and period.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub input: Input,
    /// `None`: the device's default rate.
    pub sample_rate: Option<u32>,
    /// `None`: the device's default period.
    pub period_frames: Option<u32>,
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| "(unnamed)".into())
}

fn device_id(d: &cpal::Device) -> String {
    d.id().map(|id| id.to_string()).unwrap_or_default()
}

fn input_devices(host: &cpal::Host) -> Result<Vec<cpal::Device>, CaptureError> {
    Ok(host
        .input_devices()
        .map_err(|e| CaptureError::NoDevice {
            reason: e.to_string(),
        })?
        .collect())
}

/// Every input device of the default host, with its formats.
pub fn list() -> Result<Vec<DeviceInfo>, CaptureError> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().map(|d| device_id(&d));
    let mut out = vec![];
    for (index, d) in input_devices(&host)?.into_iter().enumerate() {
        let id = device_id(&d);
        let default_config = d.default_input_config().ok().map(|c| {
            let periods = match c.buffer_size() {
                SupportedBufferSize::Range { min, max } => {
                    format!(", periods of {min}–{max} frames")
                }
                SupportedBufferSize::Unknown => String::new(),
            };
            format!(
                "{} ch, {} Hz, {}{periods}",
                c.channels(),
                c.sample_rate(),
                c.sample_format()
            )
        });
        let configs = d
            .supported_input_configs()
            .map(|it| summarise(&it.collect::<Vec<_>>()))
            .unwrap_or_default();
        out.push(DeviceInfo {
            index,
            name: device_name(&d),
            is_default: default_id.as_deref() == Some(id.as_str()),
            id,
            default_config,
            configs,
        });
    }
    Ok(out)
}

/// Groups a device's ranges for reading: one line per rate range and set of
/// channel counts, listing the sample formats that share them. (ALSA's
/// `plug` devices report every format for each of 1–64 channels.)
fn summarise(ranges: &[SupportedStreamConfigRange]) -> Vec<String> {
    /// Each format with the channel counts it takes, in the order first seen.
    type Formats = Vec<(SampleFormat, Vec<u16>)>;
    let mut by_rate: Vec<((u32, u32), Formats)> = vec![];
    for r in ranges {
        let rates = (r.min_sample_rate(), r.max_sample_rate());
        let formats = match by_rate.iter_mut().find(|(k, _)| *k == rates) {
            Some((_, f)) => f,
            None => {
                by_rate.push((rates, vec![]));
                &mut by_rate.last_mut().expect("just pushed").1
            }
        };
        match formats.iter_mut().find(|(f, _)| *f == r.sample_format()) {
            Some((_, ch)) => ch.push(r.channels()),
            None => formats.push((r.sample_format(), vec![r.channels()])),
        }
    }
    let mut lines = vec![];
    for ((min, max), formats) in by_rate {
        let rates = if min == max {
            format!("{min} Hz")
        } else if max == u32::MAX {
            format!("{min} Hz and up")
        } else {
            format!("{min}–{max} Hz")
        };
        let mut groups: Vec<(Vec<u16>, Vec<String>)> = vec![];
        for (format, mut channels) in formats {
            channels.sort_unstable();
            channels.dedup();
            match groups.iter_mut().find(|(c, _)| *c == channels) {
                Some((_, names)) => names.push(format.to_string()),
                None => groups.push((channels, vec![format.to_string()])),
            }
        }
        for (channels, names) in groups {
            lines.push(format!(
                "{} ch, {rates}: {}",
                channel_counts(&channels),
                names.join(", ")
            ));
        }
    }
    lines
}

/// "1–64" for a run, "1, 2, 6" otherwise.
fn channel_counts(c: &[u16]) -> String {
    match (c.first(), c.last()) {
        (Some(&a), Some(&b)) if c.len() > 2 && usize::from(b - a) + 1 == c.len() => {
            format!("{a}–{b}")
        }
        _ => c.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// Finds the device `input` names: the default one, an index into
/// [`list`], or a name or id (exactly, or the id without its host prefix,
/// e.g. `plughw:CARD=Mic,DEV=0`).
fn find(host: &cpal::Host, input: &Input) -> Result<cpal::Device, CaptureError> {
    let devices = || input_devices(host);
    let found = |ds: &[cpal::Device]| {
        ds.iter()
            .map(|d| format!("{} ({})", device_name(d), device_id(d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match input {
        Input::Default => host
            .default_input_device()
            .ok_or_else(|| CaptureError::NoDevice {
                reason: "the system has no default input device".into(),
            }),
        Input::Index(i) => {
            let ds = devices()?;
            ds.get(*i).cloned().ok_or_else(|| CaptureError::NotFound {
                wanted: format!("index {i}"),
                found: found(&ds),
            })
        }
        Input::Device(name) => {
            let ds = devices()?;
            ds.iter()
                .find(|d| {
                    let id = device_id(d);
                    device_name(d) == *name
                        || id == *name
                        || id.split_once(':').is_some_and(|(_, rest)| rest == name)
                })
                .cloned()
                .ok_or_else(|| CaptureError::NotFound {
                    wanted: name.clone(),
                    found: if ds.is_empty() {
                        "none".into()
                    } else {
                        found(&ds)
                    },
                })
        }
        Input::File(_) | Input::Stdin(_) => unreachable!("files and pipes are not devices"),
    }
}

/// An open stream and what the supervisor watches it by.
struct Open {
    _stream: cpal::Stream,
    name: String,
    error: Arc<Mutex<Option<String>>>,
    frames: Arc<AtomicU64>,
}

fn build<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut writer: RingWriter,
    frames: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: cpal::FromSample<T>,
{
    let channels = u64::from(config.channels.max(1));
    device.build_input_stream::<T, _, _>(
        *config,
        // The real-time callback: copy, count, return.
        move |data: &[T], _| {
            writer.write(data);
            frames.fetch_add(data.len() as u64 / channels, Ordering::Relaxed);
        },
        move |e| {
            if let Ok(mut slot) = error.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        },
        None,
    )
}

/// Opens `input`, starts its stream and sends the worker its segment to
/// read; `None` when the worker is gone.
fn open(req: &Request, events: &Sender<SourceEvent>) -> Result<Option<Open>, CaptureError> {
    let host = cpal::default_host();
    let device = find(&host, &req.input)?;
    let name = device_name(&device);
    let dev_err = |e: cpal::Error| CaptureError::Device {
        device: name.clone(),
        reason: e.to_string(),
    };
    let default = device.default_input_config().map_err(dev_err)?;
    let supported = match req.sample_rate {
        None => default,
        Some(rate) if rate == default.sample_rate() => default,
        Some(rate) => {
            let ranges: Vec<_> = device.supported_input_configs().map_err(dev_err)?.collect();
            // The default's channels and format if they allow the rate.
            ranges
                .iter()
                .filter(|r| (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate))
                .min_by_key(|r| {
                    (
                        r.channels() != default.channels(),
                        r.sample_format() != default.sample_format(),
                    )
                })
                .map(|r| r.with_sample_rate(rate))
                .ok_or_else(|| CaptureError::Device {
                    device: name.clone(),
                    reason: format!(
                        "input.sample_rate {rate} Hz is not offered (it takes: {})",
                        summarise(&ranges).join("; ")
                    ),
                })?
        }
    };
    let buffer_size = match (req.period_frames, supported.buffer_size()) {
        (None, _) => cpal::BufferSize::Default,
        (Some(n), SupportedBufferSize::Range { min, max }) if !(*min..=*max).contains(&n) => {
            return Err(CaptureError::Device {
                device: name,
                reason: format!("input.period_frames {n} is outside the device's {min}–{max}"),
            })
        }
        (Some(n), _) => cpal::BufferSize::Fixed(n),
    };
    let config = StreamConfig {
        channels: supported.channels(),
        sample_rate: supported.sample_rate(),
        buffer_size,
    };
    let format = Format {
        sample_rate: config.sample_rate,
        channels: config.channels,
    };
    let (writer, segment) = ring(format, &name, 1.0);
    let error = Arc::new(Mutex::new(None));
    let frames = Arc::new(AtomicU64::new(0));
    let (f, e) = (frames.clone(), error.clone());
    let stream = match supported.sample_format() {
        SampleFormat::I8 => build::<i8>(&device, &config, writer, f, e),
        SampleFormat::I16 => build::<i16>(&device, &config, writer, f, e),
        SampleFormat::I24 => build::<cpal::I24>(&device, &config, writer, f, e),
        SampleFormat::I32 => build::<i32>(&device, &config, writer, f, e),
        SampleFormat::I64 => build::<i64>(&device, &config, writer, f, e),
        SampleFormat::U8 => build::<u8>(&device, &config, writer, f, e),
        SampleFormat::U16 => build::<u16>(&device, &config, writer, f, e),
        SampleFormat::U24 => build::<cpal::U24>(&device, &config, writer, f, e),
        SampleFormat::U32 => build::<u32>(&device, &config, writer, f, e),
        SampleFormat::U64 => build::<u64>(&device, &config, writer, f, e),
        SampleFormat::F32 => build::<f32>(&device, &config, writer, f, e),
        SampleFormat::F64 => build::<f64>(&device, &config, writer, f, e),
        other => {
            return Err(CaptureError::Device {
                device: name,
                reason: format!("unsupported sample format {other}"),
            })
        }
    }
    .map_err(dev_err)?;
    stream.play().map_err(dev_err)?;
    log::info!(
        "Capturing from {name} ({}): {} channel(s) at {} Hz, {}.",
        device_id(&device),
        config.channels,
        config.sample_rate,
        supported.sample_format()
    );
    if events.send(SourceEvent::Segment(segment)).is_err() {
        return Ok(None);
    }
    Ok(Some(Open {
        _stream: stream,
        name,
        error,
        frames,
    }))
}

/// How long a stream may deliver nothing before it counts as lost.
const STALL: Duration = Duration::from_secs(5);
/// How often the supervisor looks at the stream's progress.
const CHECK: Duration = Duration::from_millis(100);

/// Starts the capture supervisor for `input`. The first open happens before
/// this returns, so a missing device is reported at once; later losses are
/// retried with capped exponential backoff.
pub fn spawn(
    req: Request,
    events: Sender<SourceEvent>,
    stop: Stop,
) -> Result<JoinHandle<()>, CaptureError> {
    let first = open(&req, &events)?;
    std::thread::Builder::new()
        .name("tutti-capture".into())
        .spawn(move || supervise(req, first, events, stop))
        .map_err(|e| CaptureError::Device {
            device: "capture supervisor".into(),
            reason: e.to_string(),
        })
}

fn supervise(req: Request, mut current: Option<Open>, events: Sender<SourceEvent>, stop: Stop) {
    let mut backoff = Backoff::default();
    let mut last_frames = 0;
    let mut last_progress = Instant::now();
    while !stop.sleep(CHECK) {
        let Some(open_stream) = &current else {
            if stop.sleep(backoff.next_wait()) {
                break;
            }
            match open(&req, &events) {
                Ok(Some(o)) => {
                    log::info!("Capture device {} is back.", o.name);
                    current = Some(o);
                    last_progress = Instant::now();
                    last_frames = 0;
                }
                Ok(None) => return,
                Err(e) => {
                    log::warn!(
                        "Cannot reopen the capture device ({e}); retrying in {:.1} s.",
                        backoff.upcoming().as_secs_f64()
                    );
                }
            }
            continue;
        };
        let frames = open_stream.frames.load(Ordering::Relaxed);
        if frames != last_frames {
            last_frames = frames;
            last_progress = Instant::now();
            backoff.reset();
        }
        let failed = open_stream.error.lock().ok().and_then(|mut e| e.take());
        let reason = match failed {
            Some(reason) => reason,
            None if last_progress.elapsed() > STALL => {
                format!("no audio for {} s", STALL.as_secs())
            }
            None => continue,
        };
        log::warn!(
            "Capture device {} failed ({reason}); reopening in {:.1} s.",
            open_stream.name,
            backoff.upcoming().as_secs_f64()
        );
        current = None;
    }
    let _ = events.send(SourceEvent::End);
}
