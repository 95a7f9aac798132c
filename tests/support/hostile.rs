//! What the hostile-input tests share: a seeded mutator, a bounded run of
//! tutti (memory, time) and the rule every run must keep.

use super::root;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The memory bound: every run is limited to this much address space
/// (`ulimit -v`), so an allocation sized by a hostile header fails the run
/// (abort) instead of passing unnoticed.
pub const ADDRESS_SPACE_KB: u64 = 1 << 20;
/// No run may take longer than this.
pub const HANG: Duration = Duration::from_secs(60);

/// A small, seeded generator (xorshift64*): the same inputs on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

pub const INTERESTING_U32: [u32; 10] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_fffe,
    0xffff_ffff,
];

/// One to four byte-level mutations of `bytes`; `fields` are offsets of
/// header fields that are hit more often than chance would.
pub fn mutate(rng: &mut Rng, bytes: &[u8], fields: &[usize]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len().max(1);
        let at = if !fields.is_empty() && rng.below(2) == 0 {
            *rng.pick(fields)
        } else {
            rng.below(len)
        };
        match rng.below(7) {
            0 if at < b.len() => b[at] ^= 1 << rng.below(8),
            1 if at < b.len() => b[at] = *rng.pick(&[0, 0xff, 0x7f, 0x80, b'\n', b'"']),
            2 if at + 4 <= b.len() => {
                let v = *rng.pick(&INTERESTING_U32);
                b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            3 => b.truncate(rng.below(len)),
            4 => {
                let n = rng.below(64);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let at = at.min(b.len());
                b.splice(at..at, junk);
            }
            5 if at < b.len() => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                b.drain(at..end);
            }
            _ => {
                // A piece of the file again, elsewhere: a repeated chunk.
                let from = rng.below(len).min(b.len());
                let piece: Vec<u8> = b[from..(from + rng.below(48)).min(b.len())].to_vec();
                let at = at.min(b.len());
                b.splice(at..at, piece);
            }
        }
    }
    b
}

/// `tutti ARGS` under the memory bound, with a time limit: (exit code or
/// -signal, stdout, stderr).
pub fn run_bounded(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KB}; exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_tutti"))
        .args(args)
        .current_dir(root())
        .env_remove("TUTTI_MODEL")
        // Warnings and errors only: `listen`'s progress sentences are not
        // what is checked.
        .env("TUTTI_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read while it runs, so a full pipe never looks like a hang.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let mut said = String::new();
    let err_reader = std::thread::spawn(move || {
        std::io::Read::read_to_string(&mut err, &mut said).ok();
        said
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("hung for {HANG:?}: tutti {}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0));
    (code, reader.join().unwrap(), err_reader.join().unwrap())
}

/// The rule for one run: 0, or 1 with one `tutti: error:` line per
/// refused input that names it (`names`: what the line must contain).
/// Returns how many inputs it refused.
pub fn assert_clean(what: &str, (code, _, err): &(i32, String, String), names: &[String]) -> usize {
    assert!(
        *code == 0 || *code == 1,
        "{what}: exit {code} (a crash or abort): {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    for line in err.lines() {
        assert!(
            line.starts_with("tutti: error: ") || line.starts_with("tutti: warning: "),
            "{what}: not one clear line: {line}"
        );
        if line.starts_with("tutti: error: ") {
            assert!(
                names.iter().any(|n| line.contains(n.as_str())),
                "{what}: the error names none of {names:?}: {line}"
            );
        }
    }
    if *code == 1 {
        assert!(err.contains("tutti: error: "), "{what}: exit 1, silently");
    }
    err.lines()
        .filter(|l| l.starts_with("tutti: error: "))
        .count()
}

/// A generator that only makes valid inputs, or only broken ones, tests
/// one side: both must be well represented.
pub fn assert_both_sides(what: &str, refused: usize, tried: usize) {
    eprintln!("{what}: {refused} of {tried} refused");
    assert!(
        refused >= tried / 10 && refused <= tried - tried / 10,
        "{what}: {refused} of {tried} refused: the mutations are too mild or too wild"
    );
}

/// Writes `cases` into `dir` as NAME-N.EXT, returning their paths.
pub fn write_cases(dir: &Path, name: &str, ext: &str, cases: &[Vec<u8>]) -> Vec<PathBuf> {
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = dir.join(format!("{name}-{i}.{ext}"));
            std::fs::write(&p, c).unwrap();
            p
        })
        .collect()
}

/// The regression fixtures of one kind: inputs the generators once found
/// accepted, or refused without naming them.
pub fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = root().join("tests/fixtures/hostile").join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A valid WAV of `seconds` of a tone: PCM at `bits` (8, 16, 24, 32) or
/// float (32), with an optional `LIST` chunk before `data`.
pub fn wav(rate: u32, channels: u16, bits: u16, float: bool, seconds: f64, list: bool) -> Vec<u8> {
    let frames = (seconds * f64::from(rate)) as usize;
    let mut data = vec![];
    for i in 0..frames {
        let x = (i as f64 * 0.07).sin() * 0.3;
        for _ in 0..channels {
            match (bits, float) {
                (32, true) => data.extend((x as f32).to_le_bytes()),
                (8, _) => data.push((128.0 + x * 127.0) as u8),
                (16, _) => data.extend(((x * 32767.0) as i16).to_le_bytes()),
                (24, _) => data.extend(&((x * 8_388_607.0) as i32).to_le_bytes()[..3]),
                _ => data.extend(((x * 2_147_483_647.0) as i32).to_le_bytes()),
            }
        }
    }
    let block = channels * bits / 8;
    let mut fmt = vec![];
    fmt.extend((if float { 3u16 } else { 1 }).to_le_bytes());
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend((rate * u32::from(block)).to_le_bytes());
    fmt.extend(block.to_le_bytes());
    fmt.extend(bits.to_le_bytes());
    let mut body = b"WAVE".to_vec();
    body.extend(b"fmt ");
    body.extend((fmt.len() as u32).to_le_bytes());
    body.extend(fmt);
    if list {
        body.extend(b"LIST");
        body.extend(12u32.to_le_bytes());
        body.extend(b"INFOISFT");
        body.extend(0u32.to_le_bytes());
    }
    body.extend(b"data");
    body.extend((data.len() as u32).to_le_bytes());
    body.extend(data);
    let mut w = b"RIFF".to_vec();
    w.extend((body.len() as u32).to_le_bytes());
    w.extend(body);
    w
}

/// A copy of the shipped CNN (the smallest model) in `dir`: its sidecar as
/// JSON, and the ONNX bytes.
pub fn cnn_copy(dir: &Path) -> (serde_json::Value, Vec<u8>) {
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("models/cnn.json")).unwrap()).unwrap();
    let onnx = std::fs::read(root().join("models/cnn.onnx")).unwrap();
    std::fs::write(dir.join("cnn.onnx"), &onnx).unwrap();
    (sidecar, onnx)
}

/// A clip to analyse with each hostile model.
pub fn clip(dir: &Path) -> String {
    let p = dir.join("clip.wav");
    std::fs::write(&p, wav(22050, 1, 16, false, 2.5, false)).unwrap();
    p.display().to_string()
}
