//! Capture devices through cpal (ALSA on Linux): listing them, choosing one
//! by name, id or index, and a supervisor thread that keeps a stream open,
//! reopening it with capped backoff when the device goes away.

use super::{ring, CaptureError, Format, RingWriter, SourceEvent, Stop};
use crate::config::Input;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SizedSample, StreamConfig};
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
    /// Every supported range: "2 ch, 8000–192000 Hz, i16".
    pub configs: Vec<String>,
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
            format!(
                "{} ch, {} Hz, {}",
                c.channels(),
                c.sample_rate(),
                c.sample_format()
            )
        });
        let configs = d
            .supported_input_configs()
            .map(|it| {
                it.map(|r| {
                    format!(
                        "{} ch, {}–{} Hz, {}",
                        r.channels(),
                        r.min_sample_rate(),
                        r.max_sample_rate(),
                        r.sample_format()
                    )
                })
                .collect()
            })
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
        Input::File(_) => unreachable!("files are not devices"),
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

/// Opens `input` and starts its stream; returns the segment to read.
fn open(input: &Input, events: &Sender<SourceEvent>) -> Result<Option<Open>, CaptureError> {
    let host = cpal::default_host();
    let device = find(&host, input)?;
    let name = device_name(&device);
    let dev_err = |e: cpal::Error| CaptureError::Device {
        device: name.clone(),
        reason: e.to_string(),
    };
    let supported = device.default_input_config().map_err(dev_err)?;
    let config = StreamConfig {
        channels: supported.channels(),
        sample_rate: supported.sample_rate(),
        buffer_size: cpal::BufferSize::Default,
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
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Starts the capture supervisor for `input`. The first open happens before
/// this returns, so a missing device is reported at once; later losses are
/// retried with capped exponential backoff.
pub fn spawn(
    input: Input,
    events: Sender<SourceEvent>,
    stop: Stop,
) -> Result<JoinHandle<()>, CaptureError> {
    let first = open(&input, &events)?;
    std::thread::Builder::new()
        .name("tutti-capture".into())
        .spawn(move || supervise(input, first, events, stop))
        .map_err(|e| CaptureError::Device {
            device: "capture supervisor".into(),
            reason: e.to_string(),
        })
}

fn supervise(input: Input, mut current: Option<Open>, events: Sender<SourceEvent>, stop: Stop) {
    let mut backoff = BACKOFF_FIRST;
    let mut last_frames = 0;
    let mut last_progress = Instant::now();
    while !stop.requested() {
        std::thread::sleep(Duration::from_millis(100));
        let Some(open_stream) = &current else {
            std::thread::sleep(backoff);
            match open(&input, &events) {
                Ok(Some(o)) => {
                    log::info!("Capture device {} is back.", o.name);
                    current = Some(o);
                    last_progress = Instant::now();
                    last_frames = 0;
                }
                Ok(None) => return,
                Err(e) => {
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    log::warn!(
                        "Cannot reopen the capture device ({e}); retrying in {:.1} s.",
                        backoff.as_secs_f64()
                    );
                }
            }
            continue;
        };
        let frames = open_stream.frames.load(Ordering::Relaxed);
        if frames != last_frames {
            last_frames = frames;
            last_progress = Instant::now();
            backoff = BACKOFF_FIRST;
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
            backoff.as_secs_f64()
        );
        current = None;
    }
    let _ = events.send(SourceEvent::End);
}
