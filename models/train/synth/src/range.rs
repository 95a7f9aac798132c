//! Where each instrument is rendered: a comfortable playing range in MIDI
//! notes, kept here because only the training-audio renderer reads it.

/// Lowest and highest MIDI note of each instrument, in the order of
/// `tutti::INSTRUMENTS`.
const RANGES: [(&str, (u8, u8)); 11] = [
    ("piano", (33, 96)),
    ("harpsichord", (36, 86)),
    ("violin", (55, 100)),
    ("viola", (48, 88)),
    ("cello", (36, 76)),
    ("contrabass", (28, 60)),
    ("horn", (41, 77)),
    ("oboe", (58, 91)),
    ("bassoon", (34, 72)),
    ("clarinet", (50, 91)),
    ("flute", (60, 96)),
];

/// The playing range of instrument `k` (an index into `INSTRUMENTS`).
pub fn range(k: usize) -> (u8, u8) {
    RANGES[k].1
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti::INSTRUMENTS;

    #[test]
    fn one_range_per_instrument_in_order() {
        let names: Vec<&str> = RANGES.iter().map(|r| r.0).collect();
        let ours: Vec<&str> = INSTRUMENTS.iter().map(|i| i.name).collect();
        assert_eq!(names, ours);
        assert!(RANGES.iter().all(|(_, (lo, hi))| lo < hi && *hi <= 127));
    }
}
