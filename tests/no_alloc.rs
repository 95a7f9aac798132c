//! Steady-state windowing and feature extraction allocate nothing: once a
//! stream is running, pushing audio and summarising windows reuse the
//! buffers made at construction. Counted with a global allocator that
//! tallies allocations made on this test's thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use tutti::audio::MonoStream;
use tutti::features::feature_set;
use tutti::window::{WindowSpec, Windower};

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
    let mut windower = Windower::new(spec, feature_set("seed26", 22050).unwrap());
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
        "{allocations} allocations over {steady} windows"
    );
}
