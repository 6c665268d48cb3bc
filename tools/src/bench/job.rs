//! One job's settings, from its options, with fio's names and defaults
//! where the meaning is the same. Unknown keys and bad values are errors
//! that name the option, where it was set, and what would be accepted.

use std::path::PathBuf;
use std::time::Duration;

use super::jobfile::{JobSection, Opt};
use super::units;

/// What a job does, one operation at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// GET (fio `read`).
    Read,
    /// PUT (fio `write`).
    Write,
    /// GET or PUT by `rwmixread` (fio `rw`/`randrw`).
    Mixed,
    /// DELETE every key (fio's `trim` direction).
    Delete,
    /// LIST pages of the job's keys.
    List,
}

/// Where the operations go.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Engine {
    /// A region, through the client SDK (`ioengine=tessera`, the default).
    Region,
    /// One target's storage engine on a local file (`ioengine=io_uring`
    /// or `psync`, with `filename=`): no network, comparable with fio.
    Local { uring: bool },
}

/// Object sizes: a single `bs` or a `bssplit` of (bytes, percent).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sizes(pub(crate) Vec<(u64, u32)>);

impl Sizes {
    /// The size for key `index` (stable for a key, so verify and layout
    /// agree with every later write of it).
    pub(crate) fn of(&self, index: u64, seed: u64) -> u64 {
        if self.0.len() == 1 {
            return self.0[0].0;
        }
        let roll = (mix(index ^ seed.rotate_left(17)) % 100) as u32;
        let mut acc = 0;
        for &(bytes, pct) in &self.0 {
            acc += pct;
            if roll < acc {
                return bytes;
            }
        }
        self.0[self.0.len() - 1].0
    }

    pub(crate) fn mean(&self) -> f64 {
        self.0.iter().map(|&(b, p)| b as f64 * f64::from(p) / 100.0).sum()
    }
}

/// splitmix64: a stateless, well-mixed hash of a counter.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A job as it will run.
#[derive(Clone, Debug)]
pub(crate) struct JobSpec {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) workload: Workload,
    pub(crate) random: bool,
    pub(crate) norandommap: bool,
    pub(crate) rwmixread: u32,
    /// Sizes of GETs' objects (the keys' sizes) and of PUTs.
    pub(crate) read_sizes: Sizes,
    pub(crate) write_sizes: Sizes,
    /// Bytes of the key space: `size / mean(bs)` keys.
    pub(crate) size: u64,
    pub(crate) number_ios: Option<u64>,
    pub(crate) iodepth: u32,
    pub(crate) numjobs: u32,
    pub(crate) runtime: Option<Duration>,
    pub(crate) time_based: bool,
    pub(crate) ramp_time: Duration,
    pub(crate) verify: bool,
    pub(crate) randseed: u64,
    pub(crate) rate_iops: Option<u64>,
    pub(crate) continue_on_error: bool,
    pub(crate) stonewall: bool,
    pub(crate) group_reporting: bool,
    pub(crate) percentiles: Vec<f64>,
    pub(crate) engine: Engine,
    pub(crate) filename: Option<PathBuf>,
    pub(crate) filesize: Option<u64>,
    pub(crate) config: Option<PathBuf>,
    pub(crate) bucket: String,
    pub(crate) key_prefix: Option<String>,
    pub(crate) write_bw_log: Option<String>,
    pub(crate) write_lat_log: Option<String>,
    pub(crate) write_iops_log: Option<String>,
    pub(crate) log_avg: Duration,
    /// The options as given (fio's "job options" in JSON).
    pub(crate) given: Vec<(String, String)>,
    pub(crate) given_globals: Vec<(String, String)>,
}

/// fio's default percentile list.
pub(crate) const DEFAULT_PERCENTILES: [f64; 17] =
    [1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99];

/// Every option tessera-bench reads, for "unknown option" errors.
pub(crate) const KNOWN: &[&str] = &[
    "name",
    "description",
    "rw",
    "readwrite",
    "rwmixread",
    "rwmixwrite",
    "bs",
    "blocksize",
    "bssplit",
    "size",
    "filesize",
    "number_ios",
    "iodepth",
    "numjobs",
    "runtime",
    "time_based",
    "ramp_time",
    "verify",
    "do_verify",
    "randseed",
    "norandommap",
    "rate_iops",
    "continue_on_error",
    "stonewall",
    "wait_for_previous",
    "new_group",
    "group_reporting",
    "percentile_list",
    "ioengine",
    "filename",
    "direct",
    "config",
    "bucket",
    "key_prefix",
    "write_bw_log",
    "write_lat_log",
    "write_iops_log",
    "log_avg_msec",
];

/// The largest object a job may use (a whole object is held in memory).
pub(crate) const OBJECT_MAX: u64 = 1 << 30;

impl JobSpec {
    /// Build a job from its section, checking every option.
    pub(crate) fn from_section(section: &JobSection) -> Result<JobSpec, String> {
        let mut j = JobSpec {
            name: section.name.clone(),
            description: None,
            workload: Workload::Read,
            random: false,
            norandommap: false,
            rwmixread: 50,
            read_sizes: Sizes(vec![(4096, 100)]),
            write_sizes: Sizes(vec![(4096, 100)]),
            size: 0,
            number_ios: None,
            iodepth: 1,
            numjobs: 1,
            runtime: None,
            time_based: false,
            ramp_time: Duration::ZERO,
            verify: false,
            randseed: 0x89,
            rate_iops: None,
            continue_on_error: false,
            stonewall: false,
            group_reporting: false,
            percentiles: DEFAULT_PERCENTILES.to_vec(),
            engine: Engine::Region,
            filename: None,
            filesize: None,
            config: None,
            bucket: "bench".into(),
            key_prefix: None,
            write_bw_log: None,
            write_lat_log: None,
            write_iops_log: None,
            log_avg: Duration::from_millis(1000),
            given: Vec::new(),
            given_globals: Vec::new(),
        };
        let mut direct: Option<bool> = None;
        for (i, o) in section.options.iter().enumerate() {
            j.set(o, &mut direct).map_err(|e| format!("job [{}], {}: {}: {e}", section.name, o.at, o.key))?;
            let shown = (o.key.clone(), o.value.clone().unwrap_or_default());
            if i < section.globals {
                j.given_globals.push(shown);
            } else {
                j.given.push(shown);
            }
        }
        j.check(direct).map_err(|e| format!("job [{}]: {e}", section.name))?;
        Ok(j)
    }

    fn set(&mut self, o: &Opt, direct: &mut Option<bool>) -> Result<(), String> {
        let v = || o.value.as_deref().ok_or_else(|| "needs a value (key=value)".to_string());
        match o.key.as_str() {
            "name" => self.name = v()?.to_owned(),
            "description" => self.description = Some(v()?.to_owned()),
            "rw" | "readwrite" => {
                let (w, random) = match v()? {
                    "read" | "get" => (Workload::Read, false),
                    "randread" | "randget" => (Workload::Read, true),
                    "write" | "put" => (Workload::Write, false),
                    "randwrite" | "randput" => (Workload::Write, true),
                    "rw" | "readwrite" | "mixed" => (Workload::Mixed, false),
                    "randrw" | "randmixed" => (Workload::Mixed, true),
                    "trim" | "delete" => (Workload::Delete, false),
                    "randtrim" | "randdelete" => (Workload::Delete, true),
                    "list" => (Workload::List, false),
                    other => {
                        return Err(format!(
                            "{other:?} is not a workload (read|get, randread, write|put, randwrite, \
                             rw|readwrite|mixed, randrw, trim|delete, randtrim, list)"
                        ))
                    }
                };
                self.workload = w;
                self.random = random;
            }
            "rwmixread" => self.rwmixread = units::percent(v()?)?,
            "rwmixwrite" => self.rwmixread = 100 - units::percent(v()?)?,
            "bs" | "blocksize" => {
                let (r, w) = read_write(v()?, |s| units::size(s).map(|b| Sizes(vec![(b, 100)])))?;
                self.read_sizes = r;
                self.write_sizes = w;
            }
            "bssplit" => {
                let (r, w) = read_write(v()?, bssplit)?;
                self.read_sizes = r;
                self.write_sizes = w;
            }
            "size" => self.size = units::size(v()?)?,
            "filesize" => self.filesize = Some(units::size(v()?)?),
            "number_ios" => self.number_ios = Some(units::count(v()?)?),
            "iodepth" => self.iodepth = small_count(v()?, 4096)?,
            "numjobs" => self.numjobs = small_count(v()?, 256)?,
            "runtime" => self.runtime = Some(units::time(v()?)?),
            "time_based" => self.time_based = units::boolean(o.value.as_deref())?,
            "ramp_time" => self.ramp_time = units::time(v()?)?,
            "verify" => {
                self.verify = match v()? {
                    "0" | "null" => false,
                    "1" | "crc32c" | "crc32c-intel" | "crc32" | "md5" | "sha1" | "sha256" | "sha512" | "xxhash"
                    | "meta" | "pattern" => true,
                    other => {
                        return Err(format!("{other:?} is not a verify method (0, crc32c, md5, sha256, meta, ...)"))
                    }
                }
            }
            "do_verify" => {
                if !units::boolean(o.value.as_deref())? {
                    self.verify = false;
                }
            }
            "randseed" => self.randseed = v()?.parse().map_err(|_| format!("{:?} is not a whole number", v().ok()))?,
            "norandommap" => self.norandommap = units::boolean(o.value.as_deref())?,
            "rate_iops" => self.rate_iops = Some(units::count(v()?)?),
            "continue_on_error" => {
                self.continue_on_error = match v()? {
                    "0" | "none" => false,
                    "1" | "all" => true,
                    other => return Err(format!("{other:?}: use none (stop the job at the first error) or all")),
                }
            }
            "stonewall" | "wait_for_previous" | "new_group" => self.stonewall = units::boolean(o.value.as_deref())?,
            "group_reporting" => self.group_reporting = units::boolean(o.value.as_deref())?,
            "percentile_list" => {
                let mut list = Vec::new();
                for p in v()?.split(':') {
                    match p.trim().parse::<f64>() {
                        Ok(x) if x > 0.0 && x <= 100.0 => list.push(x),
                        _ => return Err(format!("{p:?} is not a percentile (0 < p <= 100)")),
                    }
                }
                self.percentiles = list;
            }
            "ioengine" => {
                self.engine = match v()? {
                    "tessera" => Engine::Region,
                    "io_uring" => Engine::Local { uring: true },
                    "psync" | "sync" | "pvsync" => Engine::Local { uring: false },
                    other => {
                        return Err(format!(
                        "{other:?}: use tessera (a region), or io_uring or psync (a local storage engine on filename=)"
                    ))
                    }
                }
            }
            "filename" => self.filename = Some(PathBuf::from(v()?)),
            "direct" => *direct = Some(units::boolean(o.value.as_deref())?),
            "config" => self.config = Some(PathBuf::from(v()?)),
            "bucket" => self.bucket = v()?.to_owned(),
            "key_prefix" => self.key_prefix = Some(v()?.to_owned()),
            "write_bw_log" => self.write_bw_log = Some(log_prefix(o, &self.name)),
            "write_lat_log" => self.write_lat_log = Some(log_prefix(o, &self.name)),
            "write_iops_log" => self.write_iops_log = Some(log_prefix(o, &self.name)),
            "log_avg_msec" => {
                let ms = units::count(v()?).map_err(|e| format!("{e} (tessera-bench keeps no per-I/O logs)"))?;
                self.log_avg = Duration::from_millis(ms);
            }
            other => {
                return Err(format!("unknown option {other:?}; tessera-bench knows: {}", KNOWN.join(", ")));
            }
        }
        Ok(())
    }

    /// Checks that need every option.
    fn check(&self, direct: Option<bool>) -> Result<(), String> {
        if self.size == 0 {
            return Err("size= is needed: the job's keys are size / bs objects".into());
        }
        for &(b, _) in self.read_sizes.0.iter().chain(&self.write_sizes.0) {
            if b > OBJECT_MAX {
                return Err(format!("objects of {b} bytes are larger than the {OBJECT_MAX}-byte limit"));
            }
        }
        if self.time_based && self.runtime.is_none() {
            return Err("time_based needs runtime= (every run ends by itself)".into());
        }
        match &self.engine {
            Engine::Region => {
                if direct.is_some() {
                    return Err("direct= applies to engine mode only (a region always writes durably)".into());
                }
                if self.filename.is_some() {
                    return Err("filename= is for engine mode (ioengine=io_uring or psync, or --engine)".into());
                }
            }
            Engine::Local { .. } => {
                if direct == Some(false) {
                    return Err("the engine always uses O_DIRECT: direct=0 cannot be honoured".into());
                }
                if self.filename.is_none() {
                    return Err("engine mode needs filename= (the file the engine formats and uses)".into());
                }
            }
        }
        Ok(())
    }

    /// Keys in the job's key space.
    pub(crate) fn keys(&self) -> u64 {
        let mean = match self.workload {
            Workload::Write => self.write_sizes.mean(),
            _ => self.read_sizes.mean(),
        };
        ((self.size as f64 / mean.max(1.0)).floor() as u64).max(1)
    }
}

fn small_count(s: &str, max: u64) -> Result<u32, String> {
    let n = units::count(s)?;
    if n > max {
        return Err(format!("{n} is more than the {max} allowed"));
    }
    Ok(n as u32)
}

/// fio's `read,write` pairs: one value applies to both.
fn read_write<T: Clone>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<(T, T), String> {
    match s.split_once(',') {
        Some((r, w)) => Ok((parse(r)?, parse(w)?)),
        None => {
            let v = parse(s)?;
            Ok((v.clone(), v))
        }
    }
}

/// `4k/50:64k/30:1m/20`; the percentages must add up to 100.
fn bssplit(s: &str) -> Result<Sizes, String> {
    let mut v = Vec::new();
    for part in s.split(':') {
        let (b, p) = part.split_once('/').ok_or_else(|| format!("{part:?} is not size/percent"))?;
        let bytes = units::size(b)?;
        if bytes == 0 {
            return Err(format!("{part:?}: an object size of 0 cannot be split"));
        }
        v.push((bytes, units::percent(p)?));
    }
    let sum: u32 = v.iter().map(|&(_, p)| p).sum();
    if sum != 100 {
        return Err(format!("{s:?}: the percentages add up to {sum}, not 100"));
    }
    Ok(Sizes(v))
}

/// fio's log options take a file prefix; a bare key uses the job name.
fn log_prefix(o: &Opt, job: &str) -> String {
    o.value.clone().filter(|v| !v.is_empty() && v != "1").unwrap_or_else(|| job.to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::jobfile;
    use super::*;

    fn job(text: &str) -> Result<JobSpec, String> {
        let sections = jobfile::parse(text, "t.fio")?;
        JobSpec::from_section(&sections[0])
    }

    #[test]
    fn fio_defaults_and_names() {
        let j = job("[j]\nsize=1m\n").expect("ok");
        assert_eq!(j.workload, Workload::Read);
        assert_eq!(j.read_sizes, Sizes(vec![(4096, 100)]));
        assert_eq!((j.iodepth, j.numjobs, j.rwmixread, j.randseed), (1, 1, 50, 0x89));
        assert_eq!(j.keys(), 256);
        assert_eq!(j.engine, Engine::Region);

        let j = job("[global]\nbs=64k\nruntime=20\ntime_based\n[mix]\nreadwrite=randrw\nrwmixwrite=30\nsize=64m\n\
             iodepth=16\nnumjobs=2\nramp_time=2s\nverify=crc32c\npercentile_list=50:99:99.99\n")
        .expect("ok");
        assert_eq!((j.workload, j.random, j.rwmixread), (Workload::Mixed, true, 70));
        assert_eq!(j.write_sizes, Sizes(vec![(65536, 100)]));
        assert_eq!(
            (j.runtime, j.time_based, j.ramp_time),
            (Some(Duration::from_secs(20)), true, Duration::from_secs(2))
        );
        assert!(j.verify);
        assert_eq!(j.percentiles, vec![50.0, 99.0, 99.99]);
        assert_eq!(j.given_globals.len(), 3);
        assert_eq!(j.given.len(), 8);
        assert_eq!(j.keys(), 1024);
    }

    #[test]
    fn read_write_pairs_and_splits() {
        let j = job("[j]\nsize=1m\nbs=4k,1m\n").expect("ok");
        assert_eq!(j.read_sizes.0[0].0, 4096);
        assert_eq!(j.write_sizes.0[0].0, 1 << 20);
        let j = job("[j]\nsize=1m\nbssplit=4k/50:64k/30:1m/20\n").expect("ok");
        assert_eq!(j.write_sizes.0.len(), 3);
        assert!((j.read_sizes.mean() - (2048.0 + 19660.8 + 209715.2)).abs() < 1e-6);
        // Stable per key, and the split is honoured over many keys.
        let mut counts = [0u32; 3];
        for k in 0..10_000 {
            let b = j.write_sizes.of(k, 7);
            assert_eq!(b, j.write_sizes.of(k, 7));
            counts[[4096, 65536, 1 << 20].iter().position(|&x| x == b).expect("ok")] += 1;
        }
        for (c, pct) in counts.iter().zip([50.0, 30.0, 20.0]) {
            assert!((f64::from(*c) / 100.0 - pct).abs() < 2.0, "{counts:?}");
        }
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        let e = job("[j]\nsize=1m\niodeph=4\n").expect_err("must be refused");
        assert!(
            e.starts_with("job [j], t.fio:3: iodeph: unknown option \"iodeph\"; tessera-bench knows: name,"),
            "{e}"
        );
        let e = job("[j]\nsize=1m\nrw=sideways\n").expect_err("must be refused");
        assert!(e.contains("rw: \"sideways\" is not a workload"), "{e}");
        assert!(job("[j]\nsize=1m\nbs=4x\n").expect_err("must be refused").contains("bs: \"4x\": unknown size suffix"));
        assert!(job("[j]\nsize=1m\nbssplit=4k/50:8k/40\n")
            .expect_err("must be refused")
            .contains("add up to 90, not 100"));
        assert!(job("[j]\nsize=1m\nrwmixread=120\n").expect_err("must be refused").contains("not a percentage"));
        assert!(job("[j]\nsize=1m\niodepth=0\n").expect_err("must be refused").contains("not a positive whole number"));
        assert!(job("[j]\nsize=1m\nverify=maybe\n").expect_err("must be refused").contains("not a verify method"));
        assert!(job("[j]\nsize=1m\nruntime\n").expect_err("must be refused").contains("needs a value"));
        assert!(job("[j]\nbs=4k\n").expect_err("must be refused").contains("size= is needed"));
        assert!(job("[j]\nsize=1m\ntime_based\n").expect_err("must be refused").contains("time_based needs runtime="));
        assert!(job("[j]\nsize=1m\nbs=2g\n").expect_err("must be refused").contains("larger than"));
        assert!(job("[j]\nsize=1m\nioengine=libaio\n")
            .expect_err("must be refused")
            .contains("\"libaio\": use tessera"));
        assert!(job("[j]\nsize=1m\nioengine=io_uring\n").expect_err("must be refused").contains("needs filename="));
        assert!(job("[j]\nsize=1m\ndirect=1\n").expect_err("must be refused").contains("engine mode only"));
        assert!(job("[j]\nsize=1m\nioengine=psync\nfilename=/tmp/x\ndirect=0\n")
            .expect_err("must be refused")
            .contains("O_DIRECT"));
        assert!(job("[j]\nsize=1m\nioengine=psync\nfilename=/tmp/x\ndirect=1\n").is_ok());
    }
}
