//! The seed study's nine augmentations ("1 audio => 9 audios"), read for
//! instrument recognition: random noise, background elements put in under a
//! mask, pitch shift, harmonic noise, volume over sections, tone change,
//! volume, speed change and mask normalisation. Each changes how a clip
//! sounds, never which instruments play in it; the two that move or remove
//! time (speed, mask) say how in [`Applied`], so the labels can follow.

use crate::room::gaussian;
use rand::rngs::StdRng;
use rand::Rng;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::f64::consts::TAU;
use std::sync::Arc;

/// The augmentations in the order they are applied to a clip: those that
/// reshape the sound first, then the ones that add to it, volume last.
pub const NAMES: [&str; 9] = [
    "speed",
    "pitch",
    "tone",
    "sections",
    "mask",
    "background",
    "harmonic",
    "noise",
    "volume",
];

/// What [`apply`] did to a clip.
#[derive(Debug)]
pub struct Applied {
    /// One `name:value` token per augmentation, for metadata.csv.
    pub tokens: Vec<String>,
    /// The clip now plays `speed` times as fast: what sounded at t seconds
    /// sounds at t / speed.
    pub speed: f64,
    /// Spans, in seconds of the result, that were silenced.
    pub masked: Vec<(f64, f64)>,
}

/// Applies one to three of the nine augmentations, drawn from `rng`, to
/// `audio` (mono at `rate` Hz). The result peaks where the input did,
/// except for `volume`, which moves it.
pub fn apply(rng: &mut StdRng, audio: &mut Vec<f32>, rate: f64) -> Applied {
    let count = rng.random_range(1..=3);
    let mut chosen: Vec<usize> = vec![];
    while chosen.len() < count {
        let k = rng.random_range(0..NAMES.len());
        if !chosen.contains(&k) {
            chosen.push(k);
        }
    }
    chosen.sort_unstable();
    let peak_in = peak(audio);
    let mut out = Applied {
        tokens: vec![],
        speed: 1.0,
        masked: vec![],
    };
    let mut gain = 1.0;
    for k in chosen {
        let token = match NAMES[k] {
            "speed" => {
                // Never exactly 1: between 0.85 and 0.97 or 1.03 and 1.15.
                let step = rng.random_range(0.03..0.15);
                let speed = if rng.random_bool(0.5) {
                    1.0 + step
                } else {
                    1.0 - step
                };
                *audio = Vocoder::new().stretch(audio, speed);
                out.speed = speed;
                format!("{speed:.3}")
            }
            "pitch" => {
                let semitones =
                    rng.random_range(0.3..2.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                *audio = Vocoder::new().pitch_shift(audio, semitones);
                format!("{semitones:+.2}")
            }
            "tone" => {
                let bands = rng.random_range(2..=3);
                let mut desc = vec![];
                for _ in 0..bands {
                    let centre = 150.0 * (8000.0f64 / 150.0).powf(rng.random());
                    let db =
                        rng.random_range(3.0..10.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    let q = rng.random_range(0.7..3.0);
                    Biquad::peaking(centre, db, q, rate).run(audio);
                    desc.push(format!("{centre:.0}Hz{db:+.1}dB"));
                }
                desc.join("/")
            }
            "sections" => sections(rng, audio, rate),
            "mask" => {
                out.masked = mask(rng, audio, rate);
                let spans: Vec<String> = out
                    .masked
                    .iter()
                    .map(|(a, b)| format!("{a:.2}-{b:.2}"))
                    .collect();
                spans.join("/")
            }
            "background" => background(rng, audio, rate),
            "harmonic" => harmonic(rng, audio, rate),
            "noise" => {
                let snr_db = rng.random_range(15.0..45.0);
                let noise: Vec<f64> = (0..audio.len()).map(|_| gaussian(rng)).collect();
                add_at(audio, &noise, -snr_db);
                format!("{snr_db:.1}dB")
            }
            _ => {
                let db = rng.random_range(-24.0..-3.0);
                gain = 10f64.powf(db / 20.0);
                format!("{db:.1}dB")
            }
        };
        out.tokens.push(format!("{}:{token}", NAMES[k]));
    }
    let now = peak(audio);
    if now > 0.0 && peak_in > 0.0 {
        let scale = (f64::from(peak_in) * gain / f64::from(now)) as f32;
        audio.iter_mut().for_each(|x| *x *= scale);
    }
    out
}

fn peak(audio: &[f32]) -> f32 {
    audio.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

fn power(audio: &[f32]) -> f64 {
    audio.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / audio.len().max(1) as f64
}

/// Adds `extra` to `audio`, scaled so its power sits `db` dB relative to
/// the audio's (over the whole clip). Silent audio stays silent.
fn add_at(audio: &mut [f32], extra: &[f64], db: f64) {
    let (p, q) = (power(audio), extra.iter().map(|v| v * v).sum::<f64>());
    if p == 0.0 || q == 0.0 {
        return;
    }
    let scale = (p * 10f64.powf(db / 10.0) / (q / extra.len() as f64)).sqrt();
    for (a, e) in audio.iter_mut().zip(extra) {
        *a += (e * scale) as f32;
    }
}

/// Volume over sections: two to six spans, each with its own gain between
/// -12 and +3 dB, joined by 20 ms ramps.
fn sections(rng: &mut StdRng, audio: &mut [f32], rate: f64) -> String {
    let n = rng.random_range(2..=6);
    let mut cuts: Vec<usize> = (1..n)
        .map(|_| rng.random_range(0..audio.len().max(1)))
        .collect();
    cuts.sort_unstable();
    let gains_db: Vec<f64> = (0..n).map(|_| rng.random_range(-12.0..3.0)).collect();
    let ramp = (0.02 * rate) as usize;
    let gain_at = |i: usize| {
        let s = cuts.partition_point(|&c| c <= i);
        let g = |s: usize| 10f64.powf(gains_db[s] / 20.0);
        // Ramp over the `ramp` samples after each cut.
        match s.checked_sub(1).map(|p| cuts[p]) {
            Some(c) if i - c < ramp => {
                let t = (i - c) as f64 / ramp as f64;
                g(s - 1) * (1.0 - t) + g(s) * t
            }
            _ => g(s),
        }
    };
    for (i, x) in audio.iter_mut().enumerate() {
        *x = (f64::from(*x) * gain_at(i)) as f32;
    }
    let desc: Vec<String> = gains_db.iter().map(|g| format!("{g:+.1}")).collect();
    desc.join("/")
}

/// Mask normalisation: one to three spans of 0.1–0.4 s silenced, with 5 ms
/// fades; the caller renormalises the clip to its former peak. Returns the
/// silenced spans in seconds.
fn mask(rng: &mut StdRng, audio: &mut [f32], rate: f64) -> Vec<(f64, f64)> {
    let seconds = audio.len() as f64 / rate;
    let mut spans: Vec<(f64, f64)> = vec![];
    for _ in 0..rng.random_range(1..=3) {
        let len = rng.random_range(0.1..0.4f64).min(seconds / 4.0);
        let start = rng.random_range(0.0..(seconds - len).max(f64::MIN_POSITIVE));
        spans.push((start, start + len));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fade = (0.005 * rate) as usize;
    for &(a, b) in &spans {
        let (a, b) = ((a * rate) as usize, ((b * rate) as usize).min(audio.len()));
        let span = b.saturating_sub(a);
        for (k, x) in audio[a.min(b)..b].iter_mut().enumerate() {
            // Down over `fade` samples, silent, up over `fade` samples.
            let from_edge = k.min(span - 1 - k);
            let g = if from_edge < fade {
                1.0 - from_edge as f32 / fade as f32
            } else {
                0.0
            };
            *x *= g;
        }
    }
    spans
}

/// Background elements under a mask: band-passed noise (a hall's air
/// handling, a crowd, traffic) switched on and off over the clip with
/// 100 ms fades, its power 10–30 dB under the music's.
fn background(rng: &mut StdRng, audio: &mut [f32], rate: f64) -> String {
    let centre = 200.0 * 15f64.powf(rng.random());
    let q = rng.random_range(0.5..2.0);
    let db = rng.random_range(-30.0..-10.0);
    let mut noise: Vec<f64> = (0..audio.len()).map(|_| gaussian(rng)).collect();
    Biquad::band_pass(centre, q, rate).run_f64(&mut noise);
    // On and off in spans of 0.5–3 s, starting either way.
    let fade = 0.1 * rate;
    let (mut on, mut level, mut next) = (rng.random_bool(0.5), 0.0f64, 0usize);
    for (i, n) in noise.iter_mut().enumerate() {
        if i >= next {
            on = !on;
            next = i + (rng.random_range(0.5..3.0) * rate) as usize;
        }
        let target = if on { 1.0 } else { 0.0 };
        level += (target - level).clamp(-1.0 / fade, 1.0 / fade);
        *n *= level;
    }
    add_at(audio, &noise, db);
    format!("{centre:.0}Hz@{db:.1}dB")
}

/// Harmonic noise: a steady buzz (mains hum, a projector's fan, a badly
/// earthed cable) of 3–12 harmonics over a 50–400 Hz fundamental, 15–35 dB
/// under the music.
fn harmonic(rng: &mut StdRng, audio: &mut [f32], rate: f64) -> String {
    let f0 = 50.0 * 8f64.powf(rng.random());
    let harmonics = rng.random_range(3..=12);
    let tilt = rng.random_range(0.5..2.0);
    let db = rng.random_range(-35.0..-15.0);
    let partials: Vec<(f64, f64, f64)> = (1..=harmonics)
        .map(|k| {
            (
                f0 * k as f64,
                (k as f64).powf(-tilt),
                rng.random_range(0.0..TAU),
            )
        })
        .filter(|&(f, _, _)| f < rate / 2.0)
        .collect();
    let buzz: Vec<f64> = (0..audio.len())
        .map(|i| {
            let t = i as f64 / rate;
            partials
                .iter()
                .map(|&(f, a, ph)| a * (TAU * f * t + ph).sin())
                .sum()
        })
        .collect();
    add_at(audio, &buzz, db);
    format!("{f0:.0}Hzx{harmonics}@{db:.1}dB")
}

/// An RBJ-cookbook biquad, run in direct form I.
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    fn normalised(b: [f64; 3], a: [f64; 3]) -> Self {
        Biquad {
            b: [b[0] / a[0], b[1] / a[0], b[2] / a[0]],
            a: [a[1] / a[0], a[2] / a[0]],
        }
    }

    /// A peak (or notch, for negative `db`) of `db` at `centre` Hz.
    fn peaking(centre: f64, db: f64, q: f64, rate: f64) -> Self {
        let amp = 10f64.powf(db / 40.0);
        let w0 = TAU * centre.min(0.45 * rate) / rate;
        let alpha = w0.sin() / (2.0 * q);
        let c = w0.cos();
        Self::normalised(
            [1.0 + alpha * amp, -2.0 * c, 1.0 - alpha * amp],
            [1.0 + alpha / amp, -2.0 * c, 1.0 - alpha / amp],
        )
    }

    /// A band-pass with 0 dB at `centre` Hz.
    fn band_pass(centre: f64, q: f64, rate: f64) -> Self {
        let w0 = TAU * centre.min(0.45 * rate) / rate;
        let alpha = w0.sin() / (2.0 * q);
        Self::normalised(
            [alpha, 0.0, -alpha],
            [1.0 + alpha, -2.0 * w0.cos(), 1.0 - alpha],
        )
    }

    fn run_f64(&self, x: &mut [f64]) {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in x.iter_mut() {
            let y =
                self.b[0] * *v + self.b[1] * x1 + self.b[2] * x2 - self.a[0] * y1 - self.a[1] * y2;
            (x2, x1, y2, y1) = (x1, *v, y1, y);
            *v = y;
        }
    }

    fn run(&self, x: &mut [f32]) {
        let mut v: Vec<f64> = x.iter().map(|&s| f64::from(s)).collect();
        self.run_f64(&mut v);
        x.iter_mut().zip(&v).for_each(|(s, &y)| *s = y as f32);
    }
}

/// A phase vocoder: 2048-point Hann frames every 512 samples.
struct Vocoder {
    n: usize,
    hop: usize,
    window: Vec<f32>,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
}

impl Vocoder {
    fn new() -> Self {
        let n = 2048;
        let mut planner = FftPlanner::new();
        Vocoder {
            n,
            hop: n / 4,
            window: (0..n)
                .map(|i| (0.5 - 0.5 * (TAU * i as f64 / n as f64).cos()) as f32)
                .collect(),
            forward: planner.plan_fft_forward(n),
            inverse: planner.plan_fft_inverse(n),
        }
    }

    /// Windowed spectra of `x`, frames centred every `hop` samples.
    fn frames(&self, x: &[f32]) -> Vec<Vec<Complex<f32>>> {
        let half = self.n / 2;
        (0..=x.len() / self.hop)
            .map(|k| {
                let mut frame: Vec<Complex<f32>> = (0..self.n)
                    .map(|i| {
                        let at = (k * self.hop + i).checked_sub(half);
                        let v = at.and_then(|j| x.get(j)).copied().unwrap_or(0.0);
                        Complex::new(v * self.window[i], 0.0)
                    })
                    .collect();
                self.forward.process(&mut frame);
                frame
            })
            .collect()
    }

    /// Overlap-adds `frames` (centred every `hop` samples) into `len` samples.
    fn synthesise(&self, frames: Vec<Vec<Complex<f32>>>, len: usize) -> Vec<f32> {
        let half = self.n / 2;
        let total = frames.len() * self.hop + self.n;
        let (mut out, mut weight) = (vec![0.0f32; total], vec![0.0f32; total]);
        for (k, mut frame) in frames.into_iter().enumerate() {
            self.inverse.process(&mut frame);
            for (i, z) in frame.iter().enumerate() {
                let w = self.window[i];
                out[k * self.hop + i] += z.re / self.n as f32 * w;
                weight[k * self.hop + i] += w * w;
            }
        }
        (0..len)
            .map(|i| {
                let j = i + half;
                if j < total && weight[j] > 1e-3 {
                    out[j] / weight[j]
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// `x` played `speed` times as fast at the same pitch: about
    /// len / speed samples. Magnitudes are interpolated between analysis
    /// frames; each bin's phase advances by its measured frequency.
    fn stretch(&self, x: &[f32], speed: f64) -> Vec<f32> {
        let spec = self.frames(x);
        let bins = self.n / 2;
        let advance: Vec<f64> = (0..=bins)
            .map(|k| TAU * k as f64 * self.hop as f64 / self.n as f64)
            .collect();
        let mut phase: Vec<f64> = spec[0][..=bins]
            .iter()
            .map(|z| f64::from(z.arg()))
            .collect();
        let mut out = vec![];
        let mut t = 0.0f64;
        while t < (spec.len() - 1) as f64 {
            let (i, a) = (t as usize, (t - t.floor()) as f32);
            let (p, q) = (&spec[i], &spec[i + 1]);
            let mut frame = vec![Complex::new(0.0f32, 0.0); self.n];
            for k in 0..=bins {
                let mag = (1.0 - a) * p[k].norm() + a * q[k].norm();
                frame[k] = Complex::from_polar(mag, phase[k] as f32);
                let dev = f64::from(q[k].arg() - p[k].arg()) - advance[k];
                let wrapped = dev - TAU * (dev / TAU).round();
                phase[k] += advance[k] + wrapped;
            }
            for k in 1..bins {
                frame[self.n - k] = frame[k].conj();
            }
            out.push(frame);
            t += speed;
        }
        let len = (x.len() as f64 / speed).round() as usize;
        self.synthesise(out, len)
    }

    /// `x` shifted by `semitones` at the same length: stretched, then
    /// resampled back to its length (linear interpolation).
    fn pitch_shift(&self, x: &[f32], semitones: f64) -> Vec<f32> {
        let ratio = 2f64.powf(semitones / 12.0);
        let slow = self.stretch(x, 1.0 / ratio);
        if slow.is_empty() {
            return vec![0.0; x.len()];
        }
        let step = slow.len() as f64 / x.len() as f64;
        (0..x.len())
            .map(|i| {
                let pos = i as f64 * step;
                let j = (pos as usize).min(slow.len() - 1);
                let frac = (pos - j as f64) as f32;
                let next = slow.get(j + 1).copied().unwrap_or(slow[j]);
                slow[j] * (1.0 - frac) + next * frac
            })
            .collect()
    }
}

/// The strongest frequency in `x`, in Hz (for tests and checks), by a
/// zero-padded FFT of a Hann-windowed `x`.
#[cfg(test)]
fn dominant_hz(x: &[f32], rate: f64) -> f64 {
    let n = (x.len() * 4).next_power_of_two();
    let mut buf: Vec<Complex<f64>> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let w = 0.5 - 0.5 * (TAU * i as f64 / x.len() as f64).cos();
            Complex::new(f64::from(v) * w, 0.0)
        })
        .collect();
    buf.resize(n, Complex::new(0.0, 0.0));
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let k = (1..n / 2)
        .max_by(|&a, &b| buf[a].norm().total_cmp(&buf[b].norm()))
        .unwrap_or(0);
    k as f64 * rate / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const RATE: f64 = 44100.0;

    fn sine(hz: f64, seconds: f64) -> Vec<f32> {
        (0..(seconds * RATE) as usize)
            .map(|i| (0.5 * (TAU * hz * i as f64 / RATE).sin()) as f32)
            .collect()
    }

    fn db(a: f64) -> f64 {
        10.0 * a.log10()
    }

    #[test]
    fn speed_changes_length_not_pitch() {
        let x = sine(440.0, 2.0);
        for speed in [0.85, 1.15] {
            let y = Vocoder::new().stretch(&x, speed);
            assert_eq!(y.len(), (x.len() as f64 / speed).round() as usize);
            // Away from the edges, where the frames run out.
            let mid = &y[y.len() / 4..3 * y.len() / 4];
            let hz = dominant_hz(mid, RATE);
            assert!((hz - 440.0).abs() < 2.0, "speed {speed}: {hz} Hz");
            let level = db(power(mid) / power(&x));
            assert!(level.abs() < 1.5, "speed {speed}: level moved {level} dB");
        }
    }

    #[test]
    fn pitch_moves_by_its_semitones_at_the_same_length() {
        let x = sine(440.0, 2.0);
        for semitones in [-2.0, 1.0, 2.0] {
            let y = Vocoder::new().pitch_shift(&x, semitones);
            assert_eq!(y.len(), x.len());
            let want = 440.0 * 2f64.powf(semitones / 12.0);
            let hz = dominant_hz(&y[y.len() / 4..3 * y.len() / 4], RATE);
            assert!((hz - want).abs() < 2.0, "{semitones}: {hz} Hz, want {want}");
        }
    }

    #[test]
    fn a_peaking_filter_moves_its_centre_by_its_gain_and_leaves_far_bands() {
        for gain in [-9.0, 6.0] {
            let f = Biquad::peaking(1000.0, gain, 1.0, RATE);
            let mut at = sine(1000.0, 1.0);
            let mut far = sine(100.0, 1.0);
            f.run(&mut at);
            f.run(&mut far);
            let p = power(&sine(1000.0, 1.0)[4410..]);
            assert!((db(power(&at[4410..]) / p) - gain).abs() < 0.2);
            assert!(db(power(&far[4410..]) / p).abs() < 0.5);
        }
    }

    #[test]
    fn masked_spans_are_silent_and_the_rest_untouched() {
        let mut rng = StdRng::seed_from_u64(4);
        let x = sine(300.0, 3.0);
        let mut y = x.clone();
        let spans = mask(&mut rng, &mut y, RATE);
        assert!((1..=3).contains(&spans.len()));
        for (i, (&a, &b)) in x.iter().zip(&y).enumerate() {
            let t = i as f64 / RATE;
            let inside = spans.iter().any(|&(s, e)| t >= s + 0.006 && t < e - 0.006);
            let outside = spans.iter().all(|&(s, e)| t < s || t >= e + 1.0 / RATE);
            if inside {
                assert_eq!(b, 0.0, "{t} s should be silent");
            } else if outside {
                assert_eq!(a, b, "{t} s should be untouched");
            }
        }
    }

    #[test]
    fn added_sounds_sit_at_their_level_under_the_music() {
        let x = sine(440.0, 2.0);
        let mut rng = StdRng::seed_from_u64(9);
        for add in [background, harmonic] {
            let mut y = x.clone();
            let desc = add(&mut rng, &mut y, RATE);
            let want: f64 = desc
                .rsplit('@')
                .next()
                .unwrap()
                .trim_end_matches("dB")
                .parse()
                .unwrap();
            let extra: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
            let got = db(power(&extra) / power(&x));
            assert!((got - want).abs() < 0.1, "{desc}: {got} dB");
        }
    }

    #[test]
    fn apply_is_repeatable_keeps_the_peak_and_names_what_it_did() {
        let x = sine(440.0, 3.0);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..40 {
            let (mut a, mut b) = (x.clone(), x.clone());
            let first = apply(&mut StdRng::seed_from_u64(seed), &mut a, RATE);
            let again = apply(&mut StdRng::seed_from_u64(seed), &mut b, RATE);
            assert_eq!(a, b);
            assert_eq!(first.tokens, again.tokens);
            assert!((1..=3).contains(&first.tokens.len()));
            let names: Vec<&str> = first
                .tokens
                .iter()
                .map(|t| t.split(':').next().unwrap())
                .collect();
            // In the order of NAMES, each once.
            let order: Vec<usize> = names
                .iter()
                .map(|n| NAMES.iter().position(|m| m == n).unwrap())
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{names:?}");
            let want_peak = if names.contains(&"volume") {
                let db: f64 = first.tokens.last().unwrap()[7..]
                    .trim_end_matches("dB")
                    .parse()
                    .unwrap();
                0.5 * 10f64.powf(db / 20.0)
            } else {
                0.5
            };
            // The token rounds the gain to 0.1 dB: within 0.6 %.
            let off = (f64::from(peak(&a)) / want_peak - 1.0).abs();
            assert!(off < 0.006, "{:?}: peak off by {off}", first.tokens);
            let want_len = (x.len() as f64 / first.speed).round() as usize;
            assert_eq!(a.len(), want_len, "{:?}", first.tokens);
            assert_eq!(names.contains(&"mask"), !first.masked.is_empty());
            seen.extend(names.iter().map(|n| n.to_string()));
        }
        assert_eq!(seen.len(), NAMES.len(), "40 seeds drew {seen:?}");
    }
}
