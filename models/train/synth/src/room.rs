//! What a microphone in a real room adds to a clean rendering: the room's
//! reverberation (a synthetic impulse response), the microphone's
//! colouration (band limits and one resonance or dip) and background noise at a chosen
//! signal-to-noise ratio. Labels are unchanged: the same notes sound, only
//! the way they reach the microphone differs.

use rand::rngs::StdRng;
use rand::Rng;
use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

/// The randomly drawn conditions of one clip, written to the dataset's
/// metadata so results can be split by them.
#[derive(Clone, Copy, Debug)]
pub struct Conditions {
    /// Reverberation time: the decay to -60 dB, in seconds.
    pub rt60: f64,
    /// Direct sound over reverberant energy, in dB.
    pub direct_to_reverb_db: f64,
    /// Microphone band: high-pass and low-pass corner frequencies, Hz.
    pub high_pass_hz: f64,
    pub low_pass_hz: f64,
    /// Signal over background noise, in dB, after the room.
    pub snr_db: f64,
    /// Noise colour: 0 white, 1 pink (1/f), 2 brown (1/f²).
    pub noise_colour: u8,
    /// A peaking EQ (a cheap microphone's resonance, a wall's dip): its
    /// centre, gain and quality factor.
    pub eq_hz: f64,
    pub eq_db: f64,
    pub eq_q: f64,
}

impl Conditions {
    /// The ranges issue 17 asks for: RT60 0.2–2.0 s, SNR 5–40 dB, band
    /// limits of small and cheap microphones, a resonance or dip of up to
    /// 9 dB anywhere from 150 Hz to 6 kHz.
    pub fn draw(rng: &mut StdRng) -> Self {
        Conditions {
            rt60: rng.random_range(0.2..2.0),
            direct_to_reverb_db: rng.random_range(-6.0..10.0),
            high_pass_hz: rng.random_range(40.0..250.0),
            low_pass_hz: rng.random_range(5000.0..16000.0),
            snr_db: rng.random_range(5.0..40.0),
            noise_colour: rng.random_range(0..3),
            eq_hz: 150.0 * 40f64.powf(rng.random::<f64>()),
            eq_db: rng.random_range(-9.0..9.0),
            eq_q: rng.random_range(0.7..3.0),
        }
    }
}

/// A synthetic impulse response: a unit direct path, then Gaussian noise
/// under an exponential envelope that falls 60 dB in `rt60` seconds,
/// starting after a short pre-delay, scaled to the direct-to-reverberant
/// ratio, its high frequencies decaying faster (a one-pole low-pass whose
/// corner falls over the tail, as air and walls absorb treble first).
fn impulse_response(rng: &mut StdRng, c: &Conditions, rate: f64) -> Vec<f32> {
    let len = (c.rt60 * rate) as usize + 1;
    let pre_delay = (rng.random_range(0.005..0.03) * rate) as usize;
    let mut ir = vec![0.0f64; pre_delay + len];
    ir[0] = 1.0;
    let decay = (1e-3f64).ln() / (c.rt60 * rate); // amplitude: -60 dB at rt60
    let mut state = 0.0;
    for i in 0..len {
        let t = i as f64 / len as f64;
        // The low-pass corner goes from 12 kHz down to 2 kHz over the tail.
        let corner = 12000.0 * (1.0 - t) + 2000.0 * t;
        let a = (-2.0 * std::f64::consts::PI * corner / rate).exp();
        let noise = gaussian(rng) * (decay * i as f64).exp();
        state = a * state + (1.0 - a) * noise;
        ir[pre_delay + i] = state;
    }
    let tail: f64 = ir[1..].iter().map(|v| v * v).sum();
    let want = 10f64.powf(-c.direct_to_reverb_db / 10.0);
    let scale = if tail > 0.0 {
        (want / tail).sqrt()
    } else {
        0.0
    };
    ir[1..].iter_mut().for_each(|v| *v *= scale);
    ir.into_iter().map(|v| v as f32).collect()
}

pub fn gaussian(rng: &mut StdRng) -> f64 {
    // Box–Muller; `1 - u` keeps the logarithm finite.
    let u: f64 = rng.random();
    let v: f64 = rng.random();
    (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Linear convolution of `x` with `h`, cut to `x`'s length, by one FFT.
fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    let n = (x.len() + h.len() - 1).next_power_of_two();
    let mut planner = FftPlanner::<f64>::new();
    let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    let pad = |s: &[f32]| {
        let mut v: Vec<Complex<f64>> = s.iter().map(|&a| Complex::new(f64::from(a), 0.0)).collect();
        v.resize(n, Complex::new(0.0, 0.0));
        v
    };
    let (mut a, mut b) = (pad(x), pad(h));
    fwd.process(&mut a);
    fwd.process(&mut b);
    a.iter_mut().zip(&b).for_each(|(p, q)| *p *= q);
    inv.process(&mut a);
    a[..x.len()]
        .iter()
        .map(|z| (z.re / n as f64) as f32)
        .collect()
}

/// A peaking biquad (the Audio EQ Cookbook's) at `c.eq_hz`, `c.eq_db`.
fn peaking_eq(x: &mut [f32], c: &Conditions, rate: f64) {
    let a = 10f64.powf(c.eq_db / 40.0);
    let w = 2.0 * std::f64::consts::PI * c.eq_hz / rate;
    let alpha = w.sin() / (2.0 * c.eq_q);
    let (b0, b1, b2) = (1.0 + alpha * a, -2.0 * w.cos(), 1.0 - alpha * a);
    let (a0, a1, a2) = (1.0 + alpha / a, -2.0 * w.cos(), 1.0 - alpha / a);
    let (mut x1, mut x2, mut y1, mut y2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for s in x.iter_mut() {
        let v = f64::from(*s);
        let out = (b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2) / a0;
        (x2, x1, y2, y1) = (x1, v, y1, out);
        *s = out as f32;
    }
}

/// One-pole high-pass then low-pass at the microphone's corners, then its
/// peaking EQ.
fn colour(x: &mut [f32], c: &Conditions, rate: f64) {
    let hp = (-2.0 * std::f64::consts::PI * c.high_pass_hz / rate).exp();
    let lp = (-2.0 * std::f64::consts::PI * c.low_pass_hz / rate).exp();
    let (mut prev_in, mut hp_out, mut lp_out) = (0.0f64, 0.0f64, 0.0f64);
    for s in x.iter_mut() {
        let v = f64::from(*s);
        hp_out = hp * (hp_out + v - prev_in);
        prev_in = v;
        lp_out = lp * lp_out + (1.0 - lp) * hp_out;
        *s = lp_out as f32;
    }
    peaking_eq(x, c, rate);
}

/// Background noise of the clip's colour, scaled to `snr_db` below the
/// signal's power.
fn add_noise(rng: &mut StdRng, x: &mut [f32], c: &Conditions) {
    let power = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64;
    if power == 0.0 {
        return;
    }
    let mut noise: Vec<f64> = (0..x.len()).map(|_| gaussian(rng)).collect();
    // Pink by Paul Kellett's economy filter (three leaky integrators, close
    // to -3 dB per octave), brown by one leaky integrator.
    match c.noise_colour {
        1 => {
            let (mut b0, mut b1, mut b2) = (0.0, 0.0, 0.0);
            for n in noise.iter_mut() {
                b0 = 0.99765 * b0 + *n * 0.0990460;
                b1 = 0.96300 * b1 + *n * 0.2965164;
                b2 = 0.57000 * b2 + *n * 1.0526913;
                *n = b0 + b1 + b2 + *n * 0.1848;
            }
        }
        2 => {
            let mut acc = 0.0;
            for n in noise.iter_mut() {
                acc = 0.995 * acc + *n;
                *n = acc;
            }
        }
        _ => {}
    }
    let noise_power = noise.iter().map(|v| v * v).sum::<f64>() / noise.len() as f64;
    let scale = (power / noise_power / 10f64.powf(c.snr_db / 10.0)).sqrt();
    for (s, n) in x.iter_mut().zip(&noise) {
        *s += (n * scale) as f32;
    }
}

/// Puts `audio` (mono, at `rate` Hz) in a room with a microphone and
/// background noise drawn from `rng`, and returns the conditions drawn.
/// The result peaks at the input's peak level.
pub fn apply(rng: &mut StdRng, audio: &mut Vec<f32>, rate: f64) -> Conditions {
    let c = Conditions::draw(rng);
    let peak_in = audio.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let ir = impulse_response(rng, &c, rate);
    *audio = convolve(audio, &ir);
    colour(audio, &c, rate);
    add_noise(rng, audio, &c);
    let peak = audio.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 0.0 && peak_in > 0.0 {
        let gain = peak_in / peak;
        audio.iter_mut().for_each(|x| *x *= gain);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A short room, a wide microphone, 20 dB of white noise, a flat EQ.
    fn plain() -> Conditions {
        Conditions {
            rt60: 0.3,
            direct_to_reverb_db: 0.0,
            high_pass_hz: 50.0,
            low_pass_hz: 10000.0,
            snr_db: 20.0,
            noise_colour: 0,
            eq_hz: 1000.0,
            eq_db: 0.0,
            eq_q: 1.0,
        }
    }

    #[test]
    fn convolution_matches_the_direct_sum() {
        let x: Vec<f32> = (0..50)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let h = [1.0f32, 0.5, -0.25, 0.125];
        let y = convolve(&x, &h);
        for (n, &got) in y.iter().enumerate() {
            let want: f32 = (0..h.len())
                .filter(|&k| k <= n)
                .map(|k| h[k] * x[n - k])
                .sum();
            assert!((got - want).abs() < 1e-5, "{n}: {got} vs {want}");
        }
    }

    #[test]
    fn the_impulse_response_decays_by_its_rt60() {
        let mut rng = StdRng::seed_from_u64(3);
        let rate = 22050.0;
        let c = Conditions {
            rt60: 0.5,
            snr_db: 30.0,
            ..plain()
        };
        let ir = impulse_response(&mut rng, &c, rate);
        assert_eq!(ir[0], 1.0);
        // Direct and reverberant energy are equal at 0 dB.
        let tail: f64 = ir[1..].iter().map(|&v| f64::from(v).powi(2)).sum();
        assert!((tail - 1.0).abs() < 1e-3, "{tail}");
        // Energy in the first and last 50 ms of the tail: about 60 dB apart
        // (the envelope falls 60 dB over rt60; the filter narrows the tail).
        let w = (0.05 * rate) as usize;
        let e = |s: &[f32]| s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        let drop_db = 10.0 * (e(&ir[1..1 + w]) / e(&ir[ir.len() - w..])).log10();
        assert!((45.0..80.0).contains(&drop_db), "{drop_db} dB");
    }

    #[test]
    fn noise_lands_at_the_drawn_snr() {
        let mut rng = StdRng::seed_from_u64(5);
        let clean: Vec<f32> = (0..44100).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
        for colour in 0..3 {
            let c = Conditions {
                noise_colour: colour,
                ..plain()
            };
            let mut x = clean.clone();
            add_noise(&mut rng, &mut x, &c);
            let p = |s: &[f32]| s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
            let noise: Vec<f32> = x.iter().zip(&clean).map(|(a, b)| a - b).collect();
            let snr = 10.0 * (p(&clean) / p(&noise)).log10();
            assert!((snr - 20.0).abs() < 0.1, "colour {colour}: {snr} dB");
        }
    }

    #[test]
    fn the_peaking_eq_lifts_its_centre_and_leaves_far_tones_alone() {
        let rate = 22050.0;
        let c = Conditions {
            eq_db: 9.0,
            eq_q: 2.0,
            ..plain()
        };
        let gain_db = |f: f64| {
            let tone: Vec<f32> = (0..22050)
                .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / rate).sin() as f32)
                .collect();
            let mut x = tone.clone();
            peaking_eq(&mut x, &c, rate);
            // Past the filter's settling time.
            let p = |s: &[f32]| s[4410..].iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
            10.0 * (p(&x) / p(&tone)).log10()
        };
        assert!((gain_db(1000.0) - 9.0).abs() < 0.2, "{}", gain_db(1000.0));
        assert!(gain_db(8000.0).abs() < 0.5, "{}", gain_db(8000.0));
        assert!(gain_db(100.0).abs() < 0.5, "{}", gain_db(100.0));
    }
}
