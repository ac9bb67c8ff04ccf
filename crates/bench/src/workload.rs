//! What to send: request templates, key patterns and the ratio schedule, with
//! memtier's meaning. Requests are encoded straight into the write buffer:
//! no allocation per request.

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// memtier's key patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum KeyPattern {
    /// `S`: sequential over the whole range, shared by all connections (each
    /// key once per pass).
    Sequential,
    /// `R`: uniform random.
    Random,
    /// `G`: Gaussian around the middle of the range (stddev = range / 6).
    Gaussian,
    /// `P`: the range split among connections, each sequential in its part.
    Parallel,
}

impl KeyPattern {
    pub fn parse(s: &str) -> anyhow::Result<KeyPattern> {
        Ok(match s {
            "S" => KeyPattern::Sequential,
            "R" => KeyPattern::Random,
            "G" => KeyPattern::Gaussian,
            "P" => KeyPattern::Parallel,
            _ => bail!("unknown key pattern {s:?}: use S (sequential), R (random), G (gaussian) or P (parallel)"),
        })
    }
}

/// One argument of a request template.
#[derive(Clone, Debug)]
enum Arg {
    Lit(Vec<u8>),
    Key,
    Data,
}

/// A command to send, e.g. `SET __key__ __data__`.
#[derive(Clone, Debug)]
pub struct Template {
    /// Name shown in the report ("Sets", "Gets", or the command's name).
    pub label: String,
    args: Vec<Arg>,
    pub pattern: KeyPattern,
    /// A GET-like command: a nil reply is a miss.
    pub counts_hits: bool,
}

impl Template {
    /// Parses a `--command` string: arguments split on spaces, `__key__` and
    /// `__data__` replaced per request.
    pub fn parse(cmd: &str, pattern: KeyPattern) -> anyhow::Result<Template> {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let Some(first) = words.first() else {
            bail!("--command is empty: give a command such as \"LPUSH __key__ __data__\"")
        };
        let args = words
            .iter()
            .map(|w| match *w {
                "__key__" => Arg::Key,
                "__data__" => Arg::Data,
                w => Arg::Lit(w.as_bytes().to_vec()),
            })
            .collect();
        let name = first.to_ascii_uppercase();
        Ok(Template {
            counts_hits: matches!(name.as_str(), "GET" | "HGET" | "MGET" | "GETEX" | "GETDEL"),
            label: name,
            args,
            pattern,
        })
    }

    pub fn set(pattern: KeyPattern) -> Template {
        let mut t = Template::parse("SET __key__ __data__", pattern).expect("static");
        t.label = "Sets".into();
        t
    }

    pub fn get(pattern: KeyPattern) -> Template {
        let mut t = Template::parse("GET __key__", pattern).expect("static");
        t.label = "Gets".into();
        t
    }

    /// Appends the encoded request to `out`; returns its length.
    pub fn encode(&self, key: u64, prefix: &[u8], data: &[u8], out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let mut num = itoa::Buffer::new();
        out.push(b'*');
        out.extend_from_slice(num.format(self.args.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut knum = itoa::Buffer::new();
        let kdigits = knum.format(key).as_bytes();
        for a in &self.args {
            let (len, parts): (usize, [&[u8]; 2]) = match a {
                Arg::Lit(l) => (l.len(), [l, b""]),
                Arg::Key => (prefix.len() + kdigits.len(), [prefix, kdigits]),
                Arg::Data => (data.len(), [data, b""]),
            };
            out.push(b'$');
            out.extend_from_slice(num.format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(parts[0]);
            out.extend_from_slice(parts[1]);
            out.extend_from_slice(b"\r\n");
        }
        out.len() - start
    }
}

/// The whole workload, shared by all connections.
#[derive(Debug)]
pub struct Workload {
    pub templates: Vec<Template>,
    /// Template indexes in ratio order (e.g. 1:10 → one SET then ten GETs).
    pub schedule: Vec<u8>,
    pub key_prefix: Vec<u8>,
    pub key_min: u64,
    pub key_max: u64,
    pub data_min: usize,
    pub data_max: usize,
    /// Random printable bytes, `data_max` long; values are prefixes of it.
    pub data: Vec<u8>,
    /// Per-template shared counter for the S pattern.
    seq: Vec<AtomicU64>,
    pub seed: u64,
    pub distinct_client_seed: bool,
}

impl Workload {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        templates: Vec<Template>,
        ratios: &[u32],
        key_prefix: &str,
        key_min: u64,
        key_max: u64,
        data_min: usize,
        data_max: usize,
        seed: u64,
        distinct_client_seed: bool,
    ) -> anyhow::Result<Workload> {
        if key_max < key_min {
            bail!("--key-maximum ({key_max}) is below --key-minimum ({key_min})");
        }
        if data_max < data_min || data_max == 0 {
            bail!("data size must be at least 1 byte (got {data_min}-{data_max})");
        }
        if data_max > 512 * 1024 * 1024 {
            bail!("data size {data_max} exceeds Redis's 512 MB bulk limit");
        }
        let mut schedule = Vec::new();
        for (i, r) in ratios.iter().enumerate() {
            schedule.extend(std::iter::repeat_n(i as u8, *r as usize));
        }
        if schedule.is_empty() {
            bail!("the ratio sends nothing: at least one side must be above 0 (e.g. --ratio 1:10)");
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let data = (0..data_max)
            .map(|_| rng.random_range(b'a'..=b'z'))
            .collect();
        Ok(Workload {
            seq: templates.iter().map(|_| AtomicU64::new(0)).collect(),
            templates,
            schedule,
            key_prefix: key_prefix.as_bytes().to_vec(),
            key_min,
            key_max,
            data_min,
            data_max,
            data,
            seed,
            distinct_client_seed,
        })
    }

    pub fn key_range(&self) -> u64 {
        self.key_max - self.key_min + 1
    }
}

/// A connection's view of the workload: its RNG, its place in the
/// schedule and its slice of the key range for the P pattern.
pub struct Generator {
    w: Arc<Workload>,
    rng: SmallRng,
    pos: usize,
    par_lo: u64,
    par_len: u64,
    par_next: Vec<u64>,
}

impl Generator {
    /// Generator for connection `conn` of `conns`.
    pub fn new(w: Arc<Workload>, conn: usize, conns: usize) -> Generator {
        let seed = if w.distinct_client_seed {
            w.seed.wrapping_add(conn as u64 * 0x9E37_79B9)
        } else {
            w.seed
        };
        let range = w.key_range();
        let per = (range / conns.max(1) as u64).max(1);
        let lo = w.key_min + (per * conn as u64).min(range - 1);
        let len = if conn + 1 == conns {
            w.key_max - lo + 1
        } else {
            per.min(w.key_max - lo + 1)
        };
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            pos: conn % w.schedule.len(),
            par_lo: lo,
            par_len: len,
            par_next: vec![0; w.templates.len()],
            w,
        }
    }

    /// Whether a nil reply to template `t` is a miss.
    pub fn counts_hits(&self, t: u8) -> bool {
        self.w.templates[t as usize].counts_hits
    }

    /// Encodes the next request into `out`; returns (template index, bytes).
    pub fn next(&mut self, out: &mut Vec<u8>) -> (u8, usize) {
        let t = self.w.schedule[self.pos];
        self.pos = (self.pos + 1) % self.w.schedule.len();
        let key = self.key(t as usize);
        let w = &self.w;
        let len = if w.data_min == w.data_max {
            w.data_max
        } else {
            self.rng.random_range(w.data_min..=w.data_max)
        };
        let n = w.templates[t as usize].encode(key, &w.key_prefix, &w.data[..len], out);
        (t, n)
    }

    fn key(&mut self, t: usize) -> u64 {
        let w = &self.w;
        let range = w.key_range();
        match w.templates[t].pattern {
            KeyPattern::Sequential => w.key_min + w.seq[t].fetch_add(1, Ordering::Relaxed) % range,
            KeyPattern::Random => self.rng.random_range(w.key_min..=w.key_max),
            KeyPattern::Parallel => {
                let k = self.par_lo + self.par_next[t] % self.par_len;
                self.par_next[t] += 1;
                k
            }
            KeyPattern::Gaussian => {
                // Box-Muller: one normal sample, clamped to the range.
                let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = self.rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                let mid = w.key_min as f64 + (range as f64 - 1.0) / 2.0;
                let k = (mid + z * range as f64 / 6.0).round();
                (k.max(w.key_min as f64) as u64).min(w.key_max)
            }
        }
    }
}

/// Parses memtier's `A:B` ratio.
pub fn parse_ratio(s: &str) -> anyhow::Result<(u32, u32)> {
    let (a, b) = s
        .split_once(':')
        .with_context(|| format!("--ratio {s:?} must be SET:GET, e.g. 1:10"))?;
    let p = |x: &str| {
        x.trim()
            .parse::<u32>()
            .with_context(|| format!("--ratio {s:?} must be two whole numbers, e.g. 1:10"))
    };
    Ok((p(a)?, p(b)?))
}

/// Parses `--data-size-range MIN-MAX`.
pub fn parse_range(s: &str) -> anyhow::Result<(usize, usize)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("--data-size-range {s:?} must be MIN-MAX, e.g. 32-1024"))?;
    let p = |x: &str| {
        x.trim()
            .parse::<usize>()
            .with_context(|| format!("--data-size-range {s:?} must be two byte counts"))
    };
    let (lo, hi) = (p(a)?, p(b)?);
    if lo == 0 || hi < lo {
        bail!("--data-size-range {s:?}: need 1 <= MIN <= MAX");
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(p: KeyPattern, min: u64, max: u64) -> Arc<Workload> {
        Arc::new(
            Workload::new(
                vec![Template::set(p), Template::get(p)],
                &[1, 2],
                "k:",
                min,
                max,
                4,
                4,
                7,
                false,
            )
            .unwrap(),
        )
    }

    #[test]
    fn encodes_set_and_follows_ratio() {
        let w = wl(KeyPattern::Sequential, 5, 9);
        let mut g = Generator::new(w, 0, 1);
        let mut out = Vec::new();
        let (t, n) = g.next(&mut out);
        assert_eq!(t, 0);
        assert_eq!(n, out.len());
        let s = String::from_utf8(out.clone()).unwrap();
        assert!(
            s.starts_with("*3\r\n$3\r\nSET\r\n$3\r\nk:5\r\n$4\r\n"),
            "{s}"
        );
        let kinds: Vec<u8> = (0..5).map(|_| g.next(&mut out).0).collect();
        assert_eq!(kinds, vec![1, 1, 0, 1, 1]);
    }

    #[test]
    fn parallel_pattern_partitions_range() {
        let w = wl(KeyPattern::Parallel, 1, 10);
        let mut seen = std::collections::BTreeSet::new();
        for c in 0..3 {
            let mut g = Generator::new(w.clone(), c, 3);
            for _ in 0..4 {
                seen.insert(g.key(0));
            }
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn gaussian_stays_in_range_and_centres() {
        let w = wl(KeyPattern::Gaussian, 100, 199);
        let mut g = Generator::new(w, 0, 1);
        let keys: Vec<u64> = (0..10_000).map(|_| g.key(0)).collect();
        assert!(keys.iter().all(|k| (100..=199).contains(k)));
        let mean = keys.iter().sum::<u64>() as f64 / keys.len() as f64;
        assert!((mean - 149.5).abs() < 2.0, "{mean}");
    }

    #[test]
    fn bad_ratio_and_range() {
        assert!(parse_ratio("1-2").is_err());
        assert!(parse_ratio("a:1").is_err());
        assert_eq!(parse_ratio("1:10").unwrap(), (1, 10));
        assert!(parse_range("10-5").is_err());
        assert_eq!(parse_range("5-10").unwrap(), (5, 10));
        assert!(KeyPattern::parse("X").is_err());
    }
}
