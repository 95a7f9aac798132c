//! Steady-state windowing and feature extraction allocate nothing: once a
//! stream is running, pushing audio and summarising windows reuse the
//! buffers made at construction. Counted with a global allocator that
//! tallies allocations made on this test's thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use tutti::feature_set;
use tutti::MonoStream;
use tutti::{WindowSpec, Windower};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

#[test]
fn windows_and_features_allocate_nothing_in_steady_state() {
    steady_state_allocates_nothing("seed26");
}

#[test]
fn timbre98_allocates_nothing_in_steady_state() {
    steady_state_allocates_nothing("timbre98");
}

#[test]
fn logmel128_allocates_nothing_in_steady_state() {
    steady_state_allocates_nothing("logmel128");
}

#[test]
fn the_pair_set_allocates_nothing_in_steady_state() {
    steady_state_allocates_nothing("timbre98+logmel128");
}

fn steady_state_allocates_nothing(set: &str) {
    // The counter sees an allocation when there is one.
    assert_eq!(
        allocations_during(|| drop(std::hint::black_box(vec![1u8]))),
        1
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let audio = MonoStream::open(&root.join("samples/violin_cello.wav"), 22050)
        .unwrap()
        .read_all()
        .unwrap();
    let spec = WindowSpec::from_seconds(22050, 2.0, 0.5).unwrap();
    let mut windower = Windower::new(spec, feature_set(set, 22050).unwrap());
    let mut last = vec![0.0f32; windower.feature_set().len()];
    let windows = Cell::new(0usize);
    let mut keep = |_, f: &[f32]| -> Result<(), ()> {
        last.copy_from_slice(f);
        windows.set(windows.get() + 1);
        Ok(())
    };
    // Warm up with the first few seconds, then stream 40 s more in
    // 512-sample pieces, as a capture callback would deliver them.
    windower.push(&audio[..4 * 22050], &mut keep).unwrap();
    let before = windows.get();
    let allocations = allocations_during(|| {
        for _ in 0..5 {
            for piece in audio.chunks(512) {
                windower.push(piece, &mut keep).unwrap();
            }
        }
    });
    let steady = windows.get() - before;
    assert!(steady >= 70, "only {steady} windows were produced");
    assert!(last.iter().all(|v| v.is_finite()));
    assert_eq!(
        allocations, 0,
        "{set}: {allocations} allocations over {steady} windows"
    );
}

/// The audio callback's only work: converting and copying whole frames
/// into the ring, and counting the frames that did not fit.
#[test]
fn the_capture_callback_allocates_nothing_even_when_the_ring_is_full() {
    use ringbuf::traits::Consumer;
    use tutti::{ring, Format};
    let format = Format {
        sample_rate: 48_000,
        channels: 2,
    };
    let (mut writer, mut segment) = ring(format, "test", 1.0);
    let period_i16: Vec<i16> = (0..960).map(|i| (i * 31 % 2000) as i16 - 1000).collect();
    let period_f32: Vec<f32> = period_i16.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let mut drain = vec![0f32; 4096];
    let allocations = allocations_during(|| {
        // 10 s of callbacks, drained as the worker would...
        for _ in 0..1000 {
            writer.write(&period_i16);
            writer.write(&period_f32);
            while segment.consumer.pop_slice(&mut drain) > 0 {}
        }
        // ...then 10 s more with nobody reading: the ring fills up.
        for _ in 0..1000 {
            writer.write(&period_i16);
        }
    });
    let lost = segment.overruns.load(std::sync::atomic::Ordering::Relaxed);
    // 2 s of room; the other 8 s of 480-frame periods were counted.
    assert_eq!(lost, 1000 * 480 - 2 * 48_000);
    assert_eq!(allocations, 0, "{allocations} allocations in the callback");
}

/// The live worker's per-chunk path for a 44.1 kHz stereo device: channel
/// mix, resampling to the model's rate, windows and features.
#[test]
fn the_live_analyzer_allocates_nothing_in_steady_state() {
    use tutti::Analyzer;
    use tutti::Channel;
    use tutti::Format;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mono = MonoStream::open(&root.join("samples/violin_cello.wav"), 44_100)
        .unwrap()
        .read_all()
        .unwrap();
    let stereo: Vec<f32> = mono.iter().flat_map(|&s| [s, 0.5 * s]).collect();
    let format = Format {
        sample_rate: 44_100,
        channels: 2,
    };
    let spec = WindowSpec::from_seconds(22050, 2.0, 0.5).unwrap();
    for channel in [Channel::Mix, Channel::Only(2)] {
        let mut analyzer = Analyzer::new(format, channel, spec, "seed26", "test").unwrap();
        let windows = Cell::new(0usize);
        let mut sum = 0f32;
        let mut count = |_, f: &[f32]| {
            sum += f[0];
            windows.set(windows.get() + 1);
        };
        // Warm up with 4 s, then 5 × the recording in device-sized pieces.
        analyzer.process(&stereo[..2 * 4096], &mut count).unwrap();
        for piece in stereo[2 * 4096..4 * 44_100].chunks(2 * 441) {
            analyzer.process(piece, &mut count).unwrap();
        }
        let before = windows.get();
        let allocations = allocations_during(|| {
            for _ in 0..5 {
                for piece in stereo.chunks(2 * 441) {
                    analyzer.process(piece, &mut count).unwrap();
                }
            }
        });
        let steady = windows.get() - before;
        assert!(steady >= 70, "only {steady} windows");
        assert!(sum.is_finite());
        assert_eq!(
            allocations, 0,
            "{channel:?}: {allocations} allocations over {steady} windows"
        );
    }
}
