//! What durability costs the outbox: appending one detection line (about
//! 700 bytes, the size of a real payload) with no flush to the disk, and
//! with `fdatasync` after each line. The daemon's policy (one `fdatasync`
//! a second, off the MQTT thread, when lines were appended) follows from
//! these: see docs/mqtt.md.
//! Run: cargo bench --bench outbox

use criterion::{criterion_group, criterion_main, Criterion};
use tutti::Outbox;

fn outbox(c: &mut Criterion) {
    // On the disk the build uses, not a tmpfs where a sync costs nothing.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let line = format!("{{\"schema\":1,\"pad\":\"{}\"}}", "x".repeat(680));
    let mut g = c.benchmark_group("outbox append of one 700-byte detection");
    let mut o = Outbox::open(&dir.path().join("none"), 1 << 30).unwrap();
    g.bench_function("no sync", |b| b.iter(|| o.append(&line).unwrap()));
    let mut o = Outbox::open(&dir.path().join("each"), 1 << 30).unwrap();
    g.bench_function("fdatasync after each line", |b| {
        b.iter(|| {
            o.append(&line).unwrap();
            o.sync_data().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, outbox);
criterion_main!(benches);
