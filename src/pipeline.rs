//! Drives a file through the stages: audio → windows → features. Both
//! `tutti analyze` and dataset extraction go through [`for_each_window`], so
//! a model is always served the features it was trained on.

use crate::audio::{AudioError, MonoStream, WavReader};
use crate::dataset::{self, DatasetError, Recording};
use crate::features::{self, FeatureError};
use crate::instruments::INSTRUMENTS;
use crate::window::{WindowInfo, WindowSpec, Windower};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write NPZ: {reason}")]
    Npz { path: PathBuf, reason: String },
}

/// Streams `path` through `windower` (reset first), calling `f` with each
/// window's position and features. Decoding and resampling run on a second
/// thread, one block ahead, while this one computes features (and whatever
/// `f` does); memory stays bounded by a few decoded blocks plus the
/// windower's frames. Returns the number of windows.
pub fn for_each_window<E: From<AudioError> + Send>(
    path: &Path,
    windower: &mut Windower,
    mut f: impl FnMut(WindowInfo, &[f32]) -> Result<(), E>,
) -> Result<u64, E> {
    use std::sync::mpsc::sync_channel;
    windower.reset();
    let mut stream = MonoStream::open(path, windower.spec().sample_rate)?;
    let mut count = 0;
    let mut counted = |info: WindowInfo, feats: &[f32]| {
        count += 1;
        f(info, feats)
    };
    // Full blocks go one way, emptied ones come back to be refilled, so the
    // two threads share three buffers and allocate nothing per block.
    const BUFFERS: usize = 3;
    let (full_tx, full_rx) = sync_channel::<Result<Vec<f32>, AudioError>>(BUFFERS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<f32>>(BUFFERS);
    for _ in 0..BUFFERS {
        empty_tx
            .send(Vec::with_capacity(1 << 15))
            .expect("the channel has room for every buffer");
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // Ends when the stream does, on an error, or when the consumer
            // hangs up (it stopped early).
            while let Ok(mut block) = empty_rx.recv() {
                block.clear();
                match stream.read_into(&mut block) {
                    Ok(true) => {
                        if full_tx.send(Ok(block)).is_err() {
                            return;
                        }
                    }
                    Ok(false) => return,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let result = (|| -> Result<(), E> {
            for block in full_rx.iter() {
                let block = block?;
                windower.push(&block, &mut counted)?;
                // The reader may already be gone; then nothing needs the
                // buffer any more.
                let _ = empty_tx.send(block);
            }
            windower.finish(&mut counted)
        })();
        // Dropping our ends lets a reader blocked on a send or a receive
        // finish, so the scope can join it.
        drop(full_rx);
        drop(empty_tx);
        result
    })?;
    Ok(count)
}

/// Streams `stream` through `windower` (reset first) on this thread, for
/// audio already in memory (a request's clip); the windows and features
/// are those [`for_each_window`] gives for the same file. Returns the
/// number of windows.
pub fn for_each_window_of<E: From<AudioError>>(
    stream: &mut MonoStream,
    windower: &mut Windower,
    mut f: impl FnMut(WindowInfo, &[f32]) -> Result<(), E>,
) -> Result<u64, E> {
    windower.reset();
    let mut count = 0;
    let mut counted = |info: WindowInfo, feats: &[f32]| {
        count += 1;
        f(info, feats)
    };
    let mut block = Vec::with_capacity(1 << 15);
    loop {
        block.clear();
        if !stream.read_into(&mut block)? {
            break;
        }
        windower.push(&block, &mut counted)?;
    }
    windower.finish(&mut counted)?;
    Ok(count)
}

/// Files with fewer windows than this are not worth splitting.
const MIN_WINDOWS_TO_SPLIT: u64 = 256;

/// `map` for [`for_each_window_parallel`] that keeps the features.
pub fn features_as_they_are<E>(features: &[f32], out: &mut Vec<f32>) -> Result<(), E> {
    out.extend_from_slice(features);
    Ok(())
}

/// Like [`for_each_window`], with the file cut into `threads` parts that
/// are decoded and analysed at once, each on its own thread, from a little
/// before its first window. Each part passes each window's features
/// through `map` (which appends what it makes of them, a model's scores
/// say, to its second argument) on its own thread and keeps only that. `f`
/// still sees every window in order, with what `map` made of the very same
/// features: each part's resampler and frames are warmed up on the samples
/// before its first window (`tests/parallel.rs` compares). Short files, and
/// `threads` of 1, take the streaming path.
pub fn for_each_window_parallel<E>(
    path: &Path,
    spec: WindowSpec,
    set: &str,
    threads: usize,
    map: impl Fn(&[f32], &mut Vec<f32>) -> Result<(), E> + Sync,
    mut f: impl FnMut(WindowInfo, &[f32]) -> Result<(), E>,
) -> Result<u64, E>
where
    E: From<AudioError> + From<FeatureError> + Send,
{
    let make = || -> Result<Windower, FeatureError> {
        Ok(Windower::new(
            spec,
            features::feature_set(set, spec.sample_rate)?,
        ))
    };
    // The header alone says how long the file is.
    let (rate, frames) = {
        let wav = WavReader::open(path)?;
        (wav.sample_rate(), wav.frames_total())
    };
    let samples = (frames * u64::from(spec.sample_rate) + u64::from(rate) / 2) / u64::from(rate);
    let windows = match samples.checked_sub(spec.length as u64) {
        Some(rest) => rest / spec.hop as u64 + 1,
        None => 1,
    };
    let parts = threads as u64;
    if parts <= 1 || windows < MIN_WINDOWS_TO_SPLIT {
        let mut out = vec![];
        return for_each_window(path, &mut make()?, |info, x| {
            out.clear();
            map(x, &mut out)?;
            f(info, &out)
        });
    }
    let map = &map;
    /// A part's windows (and what `map` made of each) up to its end, or up
    /// to the error that stopped it.
    type Part<E> = (Vec<WindowInfo>, Vec<f32>, Result<(), E>);
    let results: Vec<Part<E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..parts)
            .map(|k| {
                let first = windows * k / parts;
                let end = if k + 1 == parts {
                    u64::MAX
                } else {
                    windows * (k + 1) / parts
                };
                scope.spawn(move || -> Part<E> {
                    let (mut infos, mut outs) = (vec![], vec![]);
                    let mut keep = |info: WindowInfo, x: &[f32]| -> Result<(), E> {
                        infos.push(info);
                        map(x, &mut outs)
                    };
                    let result = (|| -> Result<(), E> {
                        let mut windower = make()?;
                        let (mut stream, position) = MonoStream::open_at(
                            path,
                            spec.sample_rate,
                            windower.first_sample_needed(first),
                        )?;
                        windower.reset_at(position, first..end);
                        let mut block = Vec::with_capacity(1 << 15);
                        loop {
                            block.clear();
                            let more = stream.read_into(&mut block)?;
                            windower.push(&block, &mut keep)?;
                            if windower.done() {
                                return Ok(());
                            }
                            if !more {
                                return windower.finish(&mut keep);
                            }
                        }
                    })();
                    (infos, outs, result)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a part's worker panicked"))
            .collect()
    });
    let mut count = 0;
    // Windows in order up to the first error, as a front-to-back read
    // would give them.
    for (infos, outs, result) in results {
        let width = outs.len() / infos.len().max(1);
        for (info, x) in infos.into_iter().zip(outs.chunks_exact(width.max(1))) {
            f(info, x)?;
            count += 1;
        }
        result?;
    }
    Ok(count)
}

/// Features and multi-hot labels of every window of a dataset.
#[derive(Debug, Default)]
pub struct FeatureTable {
    pub feature_set: String,
    pub feature_names: Vec<String>,
    pub n_features: usize,
    /// Row-major, windows × features.
    pub x: Vec<f32>,
    /// Row-major, windows × instruments, 0 or 1.
    pub y: Vec<u8>,
    /// Index into `recordings` for each window.
    pub recording: Vec<u32>,
    pub start: Vec<f64>,
    pub split: Vec<u8>,
    pub recordings: Vec<String>,
}

impl FeatureTable {
    pub fn rows(&self) -> usize {
        self.recording.len()
    }

    /// Writes the table as NPZ (arrays `x`, `y`, `recording`, `start`,
    /// `split`, and `meta`: UTF-8 JSON bytes with names and settings).
    /// Written to a temporary file first, so no partial file is left.
    pub fn write_npz(&self, path: &Path, meta: serde_json::Value) -> Result<(), PipelineError> {
        use ndarray::{Array1, Array2};
        let npz_err = |reason: String| PipelineError::Npz {
            path: path.to_path_buf(),
            reason,
        };
        let tmp = path.with_extension("npz.partial");
        let result = (|| -> Result<(), PipelineError> {
            let file = std::fs::File::create(&tmp).map_err(|source| PipelineError::Write {
                path: tmp.clone(),
                source,
            })?;
            let mut npz = ndarray_npy::NpzWriter::new(std::io::BufWriter::new(file));
            let n = self.rows();
            let x = Array2::from_shape_vec((n, self.n_features), self.x.clone())
                .map_err(|e| npz_err(e.to_string()))?;
            let y = Array2::from_shape_vec((n, INSTRUMENTS.len()), self.y.clone())
                .map_err(|e| npz_err(e.to_string()))?;
            let meta = Array1::from_vec(meta.to_string().into_bytes());
            let e = |e: ndarray_npy::WriteNpzError| npz_err(e.to_string());
            npz.add_array("x", &x).map_err(e)?;
            npz.add_array("y", &y).map_err(e)?;
            npz.add_array("recording", &Array1::from_vec(self.recording.clone()))
                .map_err(e)?;
            npz.add_array("start", &Array1::from_vec(self.start.clone()))
                .map_err(e)?;
            npz.add_array("split", &Array1::from_vec(self.split.clone()))
                .map_err(e)?;
            npz.add_array("meta", &meta).map_err(e)?;
            npz.finish().map_err(e)?;
            Ok(())
        })();
        match result {
            Ok(()) => std::fs::rename(&tmp, path).map_err(|source| PipelineError::Write {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Computes features and window labels for every recording of a
/// MusicNet-layout dataset, on `threads` worker threads; `progress` is
/// called once per finished recording. Rows come out in recording order.
pub fn extract_dataset(
    recordings: &[Recording],
    spec: WindowSpec,
    set: &str,
    min_sounding: f64,
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<FeatureTable, PipelineError> {
    struct Part {
        x: Vec<f32>,
        y: Vec<u8>,
        start: Vec<f64>,
    }
    let probe = features::feature_set(set, spec.sample_rate)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = threads.clamp(1, recordings.len().max(1));
    let mut parts: Vec<Option<Part>> = (0..recordings.len()).map(|_| None).collect();
    let results: Vec<Result<Vec<(usize, Part)>, PipelineError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<Vec<(usize, Part)>, PipelineError> {
                    let mut windower =
                        Windower::new(spec, features::feature_set(set, spec.sample_rate)?);
                    let mut done = vec![];
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(rec) = recordings.get(i) else { break };
                        let notes = dataset::read_labels(&rec.labels)?;
                        let mut part = Part {
                            x: vec![],
                            y: vec![],
                            start: vec![],
                        };
                        for_each_window(
                            &rec.wav,
                            &mut windower,
                            |info, feats| -> Result<(), PipelineError> {
                                let start = spec.seconds(info.start_sample);
                                let end = start + spec.seconds(spec.length as u64);
                                part.x.extend_from_slice(feats);
                                let labels =
                                    dataset::window_labels(&notes, start, end, min_sounding);
                                part.y.extend(labels.iter().map(|&b| u8::from(b)));
                                part.start.push(start);
                                Ok(())
                            },
                        )?;
                        done.push((i, part));
                        progress();
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("feature worker panicked"))
            .collect()
    });
    for r in results {
        for (i, part) in r? {
            parts[i] = Some(part);
        }
    }
    let mut table = FeatureTable {
        feature_set: set.to_string(),
        feature_names: probe.feature_names().to_vec(),
        n_features: probe.len(),
        ..Default::default()
    };
    for (i, part) in parts.into_iter().enumerate() {
        let part = part.expect("every recording was processed");
        table
            .recording
            .extend(std::iter::repeat_n(i as u32, part.start.len()));
        table.split.extend(std::iter::repeat_n(
            recordings[i].split as u8,
            part.start.len(),
        ));
        table.x.extend(part.x);
        table.y.extend(part.y);
        table.start.extend(part.start);
        table.recordings.push(recordings[i].id.clone());
    }
    Ok(table)
}
