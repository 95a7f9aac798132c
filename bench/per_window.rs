//! Cost of one 2-second window: each feature set's features (alone, and in
//! a stream at the default 0.5 s hop, where overlapping windows share
//! frames), and each shipped model (the forest, the CNN and their ensemble)
//! on one core.
//! Run: cargo bench --bench per_window

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;
use tutti::feature_set;
use tutti::Model;
use tutti::MonoStream;
use tutti::{WindowSpec, Windower};

fn per_window(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let audio = MonoStream::open(&root.join("samples/violin_cello.wav"), 22050)
        .unwrap()
        .read_all()
        .unwrap();
    let spec = WindowSpec::from_seconds(22050, 2.0, 0.5).unwrap();
    let models: Vec<(&str, Model)> = ["forest", "cnn", "ensemble"]
        .into_iter()
        .map(|m| {
            (
                m,
                Model::load(&root.join(format!("models/{m}.json"))).unwrap(),
            )
        })
        .collect();
    // Each set's features of the first window, for the models: computed
    // here, so the model benchmarks do not depend on which others ran.
    let mut feats: Vec<(&str, Vec<f32>)> = vec![];
    for set in ["seed26", "timbre98", "logmel128", "timbre98+logmel128"] {
        let mut windower = Windower::new(spec, feature_set(set, 22050).unwrap());
        let mut first = vec![];
        windower
            .push(&audio[..88200], &mut |_, f: &[f32]| -> Result<(), ()> {
                if first.is_empty() {
                    first.extend_from_slice(f);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(
            first.len(),
            windower.feature_set().len(),
            "{set}: one window"
        );
        feats.push((set, first));
        windower.reset();
        let mut keep = |_, _: &[f32]| -> Result<(), ()> { Ok(()) };
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
    for (name, model) in &models {
        let input = &feats
            .iter()
            .find(|(set, _)| *set == model.sidecar.feature_set)
            .unwrap()
            .1;
        c.bench_function(
            &format!(
                "model {name} ({}) in tract, one window",
                model.sidecar.feature_set
            ),
            |b| b.iter(|| model.predict(black_box(input), &mut scores).unwrap()),
        );
    }
}

criterion_group!(benches, per_window);
criterion_main!(benches);
