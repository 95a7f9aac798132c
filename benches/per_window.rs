//! Cost of one 2-second window: each feature set's features (alone, and in
//! a stream at the default 0.5 s hop, where overlapping windows share
//! frames), and the shipped model. Run: cargo bench --bench per_window

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;
use tutti::audio::MonoStream;
use tutti::features::feature_set;
use tutti::model::Model;
use tutti::window::{WindowSpec, Windower};

fn per_window(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let audio = MonoStream::open(&root.join("samples/violin_cello.wav"), 22050)
        .unwrap()
        .read_all()
        .unwrap();
    let spec = WindowSpec::from_seconds(22050, 2.0, 0.5).unwrap();
    let model = Model::load(&root.join("models/tutti.json")).unwrap();
    let mut feats = vec![];
    for set in ["seed26", "timbre98"] {
        let mut windower = Windower::new(spec, feature_set(set, 22050).unwrap());
        let mut keep = |_, f: &[f32]| -> Result<(), ()> {
            if set == model.sidecar.feature_set {
                feats.clear();
                feats.extend_from_slice(f);
            }
            Ok(())
        };
        c.bench_function(&format!("features {set}, one isolated 2 s window"), |b| {
            b.iter(|| {
                windower.reset();
                windower
                    .push(black_box(&audio[..44100]), &mut keep)
                    .unwrap();
                windower.finish(&mut keep).unwrap();
            })
        });
        // A stream: each 0.5 s pushed completes one window.
        windower.reset();
        let mut at = 0;
        c.bench_function(
            &format!("features {set}, per window in a stream (hop 0.5 s)"),
            |b| {
                b.iter(|| {
                    if at + spec.hop > audio.len() {
                        at = 0;
                    }
                    windower
                        .push(black_box(&audio[at..at + spec.hop]), &mut keep)
                        .unwrap();
                    at += spec.hop;
                })
            },
        );
    }
    let mut scores = vec![];
    c.bench_function("model (scaler, PCA, forest in tract), one window", |b| {
        b.iter(|| model.predict(black_box(&feats), &mut scores).unwrap())
    });
}

criterion_group!(benches, per_window);
criterion_main!(benches);
