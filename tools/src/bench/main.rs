//! tessera-bench: fio for Tessera. Jobs come from fio-style job files and
//! `--key=value` options; they run against a region (the client SDK) or,
//! in engine mode, against one storage engine on a local file, so the
//! numbers can be set beside fio's on the same disk. See
//! docs/tessera-bench.md.

#[path = "../civil.rs"]
#[allow(dead_code)] // utc_ms is the tessera CLI's
mod civil;
mod job;
mod jobfile;
mod live;
mod logs;
mod pattern;
mod report;
mod runner;
mod stats;
mod target;
mod units;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use job::{Engine, JobSpec};
use jobfile::{JobSection, Opt};
use runner::Live;
use stats::Stats;

const USAGE: &str = "\
usage: tessera-bench [OPTIONS] [JOBFILE ...] [--KEY=VALUE ...]

Runs fio-style jobs against a Tessera region (client config as for the
`tessera` CLI: --config=DIR/client.toml or TESSERA_CONFIG) or, with
--engine --filename=PATH, against one storage engine on a local file.

Program options:
  --output-format=normal|json   report format (json follows fio's layout)
  --output=FILE                 write the report to FILE instead of stdout
  --eta=auto|always|never       live status line (auto: when stderr is a tty)
  --chart=FILE.svg              SVG chart of throughput and p99 over time
  --engine                      engine mode for every job (ioengine=io_uring)
  --parse-only                  check the jobs and print them, run nothing
  --help, --version

Job options (in job files or after --name=JOB; before any --name they are
global): rw, bs, bssplit, size, number_ios, iodepth, numjobs, runtime,
time_based, ramp_time, rwmixread, rwmixwrite, verify, randseed,
norandommap, rate_iops, continue_on_error, stonewall, group_reporting,
percentile_list, ioengine, filename, filesize, direct, config, bucket,
key_prefix, write_bw_log, write_lat_log, write_iops_log, log_avg_msec,
description. rw is read|randread|write|randwrite|rw|randrw|trim|randtrim
(also get, put, mixed, delete) or list.

Example:
  tessera-bench --config=/tmp/tessera/client.toml --name=put --rw=write \\
      --bs=64k --size=64m --iodepth=8 --verify=crc32c
";

/// Program options (not job options).
struct Program {
    format_json: bool,
    output: Option<PathBuf>,
    eta: live::Eta,
    chart: Option<PathBuf>,
    engine: bool,
    parse_only: bool,
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("tessera-bench: {e}");
            std::process::exit(2);
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Option<(Program, Vec<JobSection>)>, String> {
    let mut p = Program {
        format_json: false,
        output: None,
        eta: live::Eta::Auto,
        chart: None,
        engine: false,
        parse_only: false,
    };
    let mut files = Vec::new();
    let mut job_args = Vec::new();
    for a in args {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        match (k.as_str(), v) {
            ("--help" | "-h", _) => {
                print!("{USAGE}");
                return Ok(None);
            }
            ("--version", _) => {
                println!("tessera-bench {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            ("--output-format", Some(v)) => {
                p.format_json = match v.as_str() {
                    "normal" => false,
                    "json" | "json+" => true,
                    other => return Err(format!("--output-format={other}: use normal or json")),
                }
            }
            ("--output", Some(v)) => p.output = Some(v.into()),
            ("--eta", Some(v)) => {
                p.eta = match v.as_str() {
                    "auto" => live::Eta::Auto,
                    "always" => live::Eta::Always,
                    "never" => live::Eta::Never,
                    other => return Err(format!("--eta={other}: use auto, always or never")),
                }
            }
            ("--chart", Some(v)) => p.chart = Some(v.into()),
            ("--engine", None) => p.engine = true,
            ("--parse-only", None) => p.parse_only = true,
            (k, _) if k.starts_with("--") => job_args.push(a),
            _ => files.push(a),
        }
    }
    let (globals, mut cli_jobs) = jobfile::from_args(&job_args)?;
    let mut sections = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("job file {f}: {e}"))?;
        for mut s in jobfile::parse(&text, f)? {
            // Command-line globals come first: the file's own options win.
            s.options.splice(0..0, globals.iter().cloned());
            s.globals += globals.len();
            sections.push(s);
        }
    }
    sections.append(&mut cli_jobs);
    if sections.is_empty() {
        return Err(format!("no jobs: give a job file or --name=JOB options\n\n{USAGE}"));
    }
    if p.engine {
        for s in &mut sections {
            s.options.insert(0, Opt { key: "ioengine".into(), value: Some("io_uring".into()), at: "--engine".into() });
            s.globals += 1;
        }
    }
    Ok(Some((p, sections)))
}

/// One clone of a job, as it runs and as it is reported.
struct Clone {
    spec: Arc<JobSpec>,
    index: u32,
    group: usize,
    live: Arc<Live>,
}

fn run() -> Result<i32, String> {
    let Some((program, sections)) = parse_args(std::env::args().skip(1).collect())? else { return Ok(0) };
    let mut specs = Vec::new();
    for s in &sections {
        let mut spec = JobSpec::from_section(s)?;
        if spec.engine == Engine::Region && spec.config.is_none() {
            spec.config = std::env::var_os("TESSERA_CONFIG").map(PathBuf::from);
            if spec.config.is_none() {
                return Err(format!(
                    "job [{}]: region mode needs config= (--config=DIR/client.toml from `tessera dev`, or \
                     TESSERA_CONFIG), or use --engine --filename=PATH",
                    spec.name
                ));
            }
        }
        if let (Engine::Region, Some(c)) = (&spec.engine, &spec.config) {
            // Fail before anything runs, not once per clone.
            tessera_client::ClientConfig::load(c)
                .map_err(|e| format!("job [{}]: client config {}: {e}", spec.name, c.display()))?;
        }
        specs.push(Arc::new(spec));
    }
    if program.parse_only {
        for s in &specs {
            println!(
                "[{}] rw={} keys={} bs={:?} iodepth={} numjobs={} runtime={:?} time_based={} verify={} engine={:?}",
                s.name,
                report::workload_name(s),
                s.keys(),
                s.write_sizes.0,
                s.iodepth,
                s.numjobs,
                s.runtime,
                s.time_based,
                s.verify,
                s.engine
            );
        }
        return Ok(0);
    }
    // Groups: a job with stonewall waits for every job before it.
    let mut clones = Vec::new();
    let mut group = 0;
    for (i, s) in specs.iter().enumerate() {
        if s.stonewall && i > 0 {
            group += 1;
        }
        for c in 0..s.numjobs {
            clones.push(Clone { spec: s.clone(), index: c, group, live: Arc::default() });
        }
    }
    let t0 = Instant::now();
    let started_unix_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let done = Arc::new(AtomicBool::new(false));
    let status =
        live::spawn(clones.iter().map(|c| (c.spec.clone(), c.live.clone())).collect(), t0, program.eta, done.clone());
    let engine = EngineThread::start(&specs)?;
    let mut results: Vec<(usize, Stats, Duration)> = Vec::new();
    for g in 0..=group {
        let members: Vec<usize> = (0..clones.len()).filter(|&i| clones[i].group == g).collect();
        let mut threads = Vec::new();
        let mut local = Vec::new();
        for &i in &members {
            let c = &clones[i];
            match &c.spec.engine {
                Engine::Region => {
                    let (spec, index, live) = (c.spec.clone(), c.index, c.live.clone());
                    threads.push((i, std::thread::spawn(move || region_clone(spec, index, live, t0))));
                }
                Engine::Local { .. } => local.push((i, c.spec.clone(), c.index, c.live.clone())),
            }
        }
        let local_rx = engine.as_ref().filter(|_| !local.is_empty()).map(|e| e.submit(local, t0));
        for (i, t) in threads {
            let stats = t.join().unwrap_or_else(|_| {
                let mut s = Stats::default();
                s.error("other", "the job's thread panicked");
                (s, Duration::ZERO)
            });
            results.push((i, stats.0, stats.1));
        }
        if let Some(rx) = local_rx {
            for (i, stats, started) in rx.recv().map_err(|_| "the engine thread stopped".to_string())? {
                results.push((i, stats, started));
            }
        }
    }
    if let Some(e) = engine {
        e.finish();
    }
    done.store(true, Ordering::Relaxed);
    let _ = status.join();
    results.sort_by_key(|r| r.0);
    finish(&program, &clones, results, started_unix_ms)
}

/// A region job's clone on its own thread and runtime (like fio's
/// processes): its own connections, its own client.
fn region_clone(spec: Arc<JobSpec>, index: u32, live: Arc<Live>, t0: Instant) -> (Stats, Duration) {
    let fail = |live: &Live, e: String| {
        let mut s = Stats::default();
        s.error("connect", &e);
        live.errors.fetch_add(1, Ordering::Relaxed);
        live.phase.store(runner::phase::DONE, Ordering::Relaxed);
        (s, Duration::ZERO)
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&live, format!("starting a runtime: {e}")),
    };
    let set = tokio::task::LocalSet::new();
    set.block_on(&rt, async move {
        let config = spec.config.clone().unwrap_or_default();
        let region = match target::Region::connect(&config, &spec.bucket).await {
            Ok(r) => Rc::new(target::Any::Region(r)),
            Err(e) => return fail(&live, e),
        };
        let started = t0.elapsed() + spec.ramp_time;
        (runner::run(region, spec, index, live, t0).await, started)
    })
}

type Work = Vec<(usize, Arc<JobSpec>, u32, Arc<Live>)>;
type Done = Vec<(usize, Stats, Duration)>;

/// Engine-mode jobs all run on one thread, one engine per file, kept
/// open across groups (a read job after a stonewall sees what an earlier
/// write job stored), as a node core runs its targets.
struct EngineThread {
    tx: mpsc::Sender<(Work, Instant, mpsc::Sender<Done>)>,
    handle: std::thread::JoinHandle<()>,
}

impl EngineThread {
    fn start(specs: &[Arc<JobSpec>]) -> Result<Option<EngineThread>, String> {
        // Capacity per file: the jobs' data three times over (overwrites
        // need room until compaction), or filesize=.
        let mut files: BTreeMap<PathBuf, (u64, bool)> = BTreeMap::new();
        for s in specs {
            if let (Engine::Local { uring }, Some(f)) = (&s.engine, &s.filename) {
                let e = files.entry(f.clone()).or_insert((0, *uring));
                e.0 = match s.filesize {
                    Some(fs) => e.0.max(fs),
                    None => e.0 + s.size.saturating_mul(u64::from(s.numjobs)).saturating_mul(3),
                };
            }
        }
        if files.is_empty() {
            return Ok(None);
        }
        let (tx, rx) = mpsc::channel::<(Work, Instant, mpsc::Sender<Done>)>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let handle = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("starting a runtime: {e}")));
                    return;
                }
            };
            let set = tokio::task::LocalSet::new();
            set.block_on(&rt, async move {
                let mut engines = BTreeMap::new();
                for (path, (capacity, uring)) in files {
                    match target::Local::open(&path, capacity, uring).await {
                        Ok(l) => {
                            engines.insert(path, Rc::new(target::Any::Local(l)));
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                }
                let _ = ready_tx.send(Ok(()));
                while let Ok((work, t0, reply)) = rx.recv() {
                    let mut tasks = Vec::new();
                    for (i, spec, index, live) in work {
                        let Some(t) = spec.filename.as_ref().and_then(|f| engines.get(f)).cloned() else { continue };
                        let started = t0.elapsed() + spec.ramp_time;
                        tasks.push((i, started, tokio::task::spawn_local(runner::run(t, spec, index, live, t0))));
                    }
                    let mut done = Vec::new();
                    for (i, started, t) in tasks {
                        let stats = t.await.unwrap_or_else(|e| {
                            let mut s = Stats::default();
                            s.error("other", &format!("the job panicked: {e}"));
                            s
                        });
                        done.push((i, stats, started));
                    }
                    let _ = reply.send(done);
                }
                for (_, e) in engines {
                    if let Ok(target::Any::Local(l)) = Rc::try_unwrap(e) {
                        l.close().await;
                    }
                }
            });
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Some(EngineThread { tx, handle })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the engine thread stopped while opening".into()),
        }
    }

    fn submit(&self, work: Work, t0: Instant) -> mpsc::Receiver<Done> {
        let (tx, rx) = mpsc::channel();
        let _ = self.tx.send((work, t0, tx));
        rx
    }

    fn finish(self) {
        drop(self.tx);
        let _ = self.handle.join();
    }
}

fn cpu_seconds() -> (f64, f64) {
    // /proc/self/stat fields 14 and 15: user and system time in ticks.
    let ticks = 100.0;
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit(')').next()?.split_whitespace().collect::<Vec<_>>();
            Some((rest.get(11)?.parse::<f64>().ok()? / ticks, rest.get(12)?.parse::<f64>().ok()? / ticks))
        })
        .unwrap_or((0.0, 0.0))
}

fn finish(
    program: &Program,
    clones: &[Clone],
    results: Vec<(usize, Stats, Duration)>,
    started_unix_ms: u64,
) -> Result<i32, String> {
    // Totals on one clock: every sample shifted to the run's start.
    let mut total = Stats::default();
    let first = results.iter().filter(|r| r.1.dirs.iter().any(|d| d.ops > 0)).map(|r| r.2).min().unwrap_or_default();
    let mut end = Duration::ZERO;
    let mut spans = [(Duration::MAX, Duration::ZERO); 4];
    for (_, s, started) in &results {
        for dir in stats::DIRS {
            if s.dirs[dir as usize].ops > 0 {
                let (a, b) = &mut spans[dir as usize];
                *a = (*a).min(*started);
                *b = (*b).max(*started + s.runtime);
            }
        }
        let shift = started.saturating_sub(first).as_micros() as u64;
        let mut shifted = s.clone();
        for x in &mut shifted.samples {
            x.at_us += shift;
        }
        shifted.runtime = Duration::ZERO;
        total.merge(&shifted);
        if s.dirs.iter().any(|d| d.ops > 0) {
            end = end.max(started.saturating_sub(first) + s.runtime);
        }
    }
    total.runtime = end;
    for (i, (a, b)) in spans.into_iter().enumerate() {
        total.spans[i] = b.saturating_sub(a);
    }
    // Entries: a clone each, or one per job with group_reporting.
    let mut entries: Vec<report::Entry> = Vec::new();
    for (i, s, _) in results {
        let c = &clones[i];
        if c.spec.group_reporting {
            if let Some(e) = entries.iter_mut().find(|e| Arc::ptr_eq(&e.spec, &c.spec)) {
                e.stats.merge(&s);
                e.clones += 1;
                continue;
            }
        }
        entries.push(report::Entry { spec: c.spec.clone(), group: c.group, clones: 1, stats: s });
    }
    let mut files = Vec::new();
    for (n, e) in entries.iter().enumerate() {
        let sp = &e.spec;
        if sp.write_bw_log.is_some() || sp.write_lat_log.is_some() || sp.write_iops_log.is_some() {
            files.extend(logs::write_job_logs(
                &e.stats,
                sp.log_avg,
                sp.write_bw_log.as_deref(),
                sp.write_lat_log.as_deref(),
                sp.write_iops_log.as_deref(),
                n + 1,
            )?);
        }
    }
    if let Some(path) = &program.chart {
        let every = entries.first().map_or(Duration::from_secs(1), |e| e.spec.log_avg);
        logs::chart(&total, every, path, "tessera-bench")?;
        files.push(path.display().to_string());
    }
    let target = match entries.first().map(|e| &e.spec) {
        Some(s) if s.engine == Engine::Region => {
            format!("region ({})", s.config.as_ref().map_or(String::new(), |c| c.display().to_string()))
        }
        Some(s) => format!("engine ({})", s.filename.as_ref().map_or(String::new(), |f| f.display().to_string())),
        None => String::new(),
    };
    let body = if program.format_json {
        let v = report::json(&entries, &total, &target, cpu_seconds(), started_unix_ms);
        serde_json::to_string_pretty(&v).map_err(|e| format!("encoding JSON: {e}"))? + "\n"
    } else {
        let mut t = report::text(&entries, &total);
        for f in &files {
            t.push_str(&format!("  wrote {f}\n"));
        }
        t
    };
    match &program.output {
        Some(p) => std::fs::write(p, body).map_err(|e| format!("writing {}: {e}", p.display()))?,
        None => print!("{body}"),
    }
    // fio exits non-zero when a job failed.
    Ok(i32::from(total.error_count() > 0))
}
