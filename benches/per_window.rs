//! Cost of one 2-second window: seed26 features, and the shipped model.
//! Run: cargo bench --bench per_window

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;
use tutti::audio::MonoStream;
use tutti::features::extractor;
use tutti::model::Model;

fn per_window(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut window = MonoStream::open(&root.join("samples/violin_cello.wav"), 22050)
        .unwrap()
        .read_all()
        .unwrap();
    window.truncate(44100);
    let mut fx = extractor("seed26", 22050, 44100).unwrap();
    let mut feats = vec![0.0f32; fx.len()];
    c.bench_function("features seed26, one 2 s window", |b| {
        b.iter(|| fx.compute(black_box(&window), &mut feats))
    });
    let model = Model::load(&root.join("models/tutti.json")).unwrap();
    fx.compute(&window, &mut feats);
    let mut scores = vec![];
    c.bench_function("model (scaler, PCA, forest in tract), one window", |b| {
        b.iter(|| model.predict(black_box(&feats), &mut scores).unwrap())
    });
}

criterion_group!(benches, per_window);
criterion_main!(benches);
