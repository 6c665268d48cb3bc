//! Runs one job (one clone of it): lays out the objects a read, mixed,
//! delete or list job needs, keeps `iodepth` operations in flight until
//! the job's size, `number_ios` or `runtime` is reached, records what
//! completed after `ramp_time`, and for write jobs with verify reads every
//! written object back.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::job::{mix, JobSpec, Workload};
use super::pattern;
use super::stats::{Dir, Stats};
use super::target::{OpError, Target};

/// Keys per LIST page.
const LIST_PAGE: u32 = 1_000;

/// What the status line reads while jobs run.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) ops: [AtomicU64; 4],
    pub(crate) bytes: [AtomicU64; 4],
    pub(crate) errors: AtomicU64,
    pub(crate) phase: AtomicU8,
    /// Measured operations done and planned (0: bounded by time only).
    pub(crate) done: AtomicU64,
    pub(crate) planned: AtomicU64,
    /// When the measured phase must end, ms after the live clock started
    /// (0: no deadline).
    pub(crate) deadline_ms: AtomicU64,
    /// Objects laid out so far, and to lay out.
    pub(crate) layout_done: AtomicU64,
    pub(crate) layout_total: AtomicU64,
}

/// Phases shown on the status line.
pub(crate) mod phase {
    pub(crate) const WAITING: u8 = 0;
    pub(crate) const LAYOUT: u8 = 1;
    pub(crate) const RUNNING: u8 = 2;
    pub(crate) const VERIFY: u8 = 3;
    pub(crate) const DONE: u8 = 4;
}

struct Plan {
    spec: Arc<JobSpec>,
    prefix: String,
    keys: u64,
    seed: u64,
}

impl Plan {
    fn key(&self, i: u64) -> String {
        format!("{}{i:010}", self.prefix)
    }
    fn read_size(&self, i: u64) -> u64 {
        self.spec.read_sizes.of(i, self.spec.randseed)
    }
    fn write_size(&self, i: u64) -> u64 {
        self.spec.write_sizes.of(i, self.spec.randseed)
    }
}

/// Which key and direction comes next; shared by a job's workers.
struct Picker {
    rng: Cell<u64>,
    seq: Cell<u64>,
    perm: RefCell<Vec<u32>>,
    perm_pos: Cell<usize>,
    claimed: Cell<u64>,
    paced: Cell<u64>,
    budget: Option<u64>,
    gens: RefCell<Vec<u32>>,
    written: RefCell<Vec<bool>>,
}

impl Picker {
    fn next_rand(&self) -> u64 {
        let mut s = self.rng.get();
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.rng.set(s);
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next key index: in order, or random covering every key once
    /// per pass (fio's random map), or uniformly random (`norandommap`).
    fn index(&self, p: &Plan) -> u64 {
        if !p.spec.random {
            let i = self.seq.get();
            self.seq.set(i + 1);
            return i % p.keys;
        }
        if p.spec.norandommap {
            return self.next_rand() % p.keys;
        }
        let mut perm = self.perm.borrow_mut();
        if self.perm_pos.get() >= perm.len() {
            if perm.is_empty() {
                *perm = (0..p.keys.min(u64::from(u32::MAX)) as u32).collect();
            }
            for i in (1..perm.len()).rev() {
                let j = (self.next_rand() % (i as u64 + 1)) as usize;
                perm.swap(i, j);
            }
            self.perm_pos.set(0);
        }
        let i = perm[self.perm_pos.get()];
        self.perm_pos.set(self.perm_pos.get() + 1);
        u64::from(i)
    }

    /// Claim the next operation, or None once the budget is spent.
    fn claim(&self, p: &Plan, measured: bool) -> Option<(Dir, u64)> {
        if measured {
            if self.budget.is_some_and(|b| self.claimed.get() >= b) {
                return None;
            }
            self.claimed.set(self.claimed.get() + 1);
        }
        let dir = match p.spec.workload {
            Workload::Read => Dir::Read,
            Workload::Write => Dir::Write,
            Workload::Delete => Dir::Trim,
            Workload::List => Dir::List,
            Workload::Mixed => {
                if self.next_rand() % 100 < u64::from(p.spec.rwmixread) {
                    Dir::Read
                } else {
                    Dir::Write
                }
            }
        };
        Some((dir, self.index(p)))
    }
}

/// Run one clone of a job against `target`; `t0` is the live clock.
pub(crate) async fn run<T: Target + Clone + 'static>(
    target: T,
    spec: Arc<JobSpec>,
    clone: u32,
    live: Arc<Live>,
    t0: Instant,
) -> Stats {
    let prefix = spec.key_prefix.clone().unwrap_or_else(|| format!("{}.{clone}/", spec.name));
    let plan = Rc::new(Plan { keys: spec.keys(), seed: spec.randseed ^ mix(u64::from(clone) + 1), prefix, spec });
    let stats = Rc::new(RefCell::new(Stats::default()));
    if matches!(plan.spec.workload, Workload::Read | Workload::Mixed | Workload::Delete | Workload::List) {
        live.phase.store(phase::LAYOUT, Ordering::Relaxed);
        if let Err(e) = layout(&target, &plan, &live).await {
            stats.borrow_mut().error(e.kind, &format!("laying out {} objects: {}", plan.keys, e.detail));
            live.errors.fetch_add(1, Ordering::Relaxed);
            live.phase.store(phase::DONE, Ordering::Relaxed);
            return stats.take();
        }
    }
    let spec = &plan.spec;
    let budget = match spec.workload {
        // Each key can be deleted once.
        Workload::Delete => Some(spec.number_ios.unwrap_or(plan.keys).min(plan.keys)),
        _ if spec.time_based => spec.number_ios,
        Workload::List => Some(spec.number_ios.unwrap_or(plan.keys.div_ceil(u64::from(LIST_PAGE)))),
        _ => Some(spec.number_ios.unwrap_or(plan.keys)),
    };
    let picker = Rc::new(Picker {
        rng: Cell::new(plan.seed | 1),
        seq: Cell::new(0),
        perm: RefCell::new(Vec::new()),
        perm_pos: Cell::new(0),
        claimed: Cell::new(0),
        paced: Cell::new(0),
        budget,
        gens: RefCell::new(vec![0; if spec.workload == Workload::Read { 0 } else { plan.keys as usize }]),
        written: RefCell::new(vec![false; if spec.verify { plan.keys as usize } else { 0 }]),
    });
    let start = Instant::now();
    let ramp_end = start + spec.ramp_time;
    let deadline = spec.runtime.map(|r| ramp_end + r);
    live.planned.store(budget.unwrap_or(0), Ordering::Relaxed);
    live.deadline_ms.store(deadline.map_or(0, |d| d.duration_since(t0).as_millis() as u64), Ordering::Relaxed);
    live.phase.store(phase::RUNNING, Ordering::Relaxed);
    let stop = Rc::new(Cell::new(false));
    let last_done = Rc::new(Cell::new(ramp_end));
    let mut workers = Vec::new();
    for w in 0..spec.iodepth {
        let ctx = Worker {
            target: target.clone(),
            plan: plan.clone(),
            picker: picker.clone(),
            stats: stats.clone(),
            live: live.clone(),
            stop: stop.clone(),
            last_done: last_done.clone(),
            start,
            ramp_end,
            deadline,
        };
        workers.push(tokio::task::spawn_local(ctx.run(w)));
    }
    for w in workers {
        let _ = w.await;
    }
    stats.borrow_mut().runtime = last_done.get().saturating_duration_since(ramp_end);
    if spec.verify && spec.workload == Workload::Write {
        live.phase.store(phase::VERIFY, Ordering::Relaxed);
        verify_written(&target, &plan, &picker, &stats, &live).await;
    }
    live.phase.store(phase::DONE, Ordering::Relaxed);
    stats.take()
}

struct Worker<T> {
    target: T,
    plan: Rc<Plan>,
    picker: Rc<Picker>,
    stats: Rc<RefCell<Stats>>,
    live: Arc<Live>,
    stop: Rc<Cell<bool>>,
    last_done: Rc<Cell<Instant>>,
    start: Instant,
    ramp_end: Instant,
    deadline: Option<Instant>,
}

impl<T: Target> Worker<T> {
    async fn run(self, w: u32) {
        let spec = &self.plan.spec;
        // LIST workers each page from their own place in the key space.
        let mut cursor: Option<String> = (w > 0)
            .then(|| self.plan.key(u64::from(w) * self.plan.keys / u64::from(spec.iodepth)))
            .filter(|_| spec.workload == Workload::List);
        loop {
            let now = Instant::now();
            if self.stop.get() || self.deadline.is_some_and(|d| now >= d) {
                return;
            }
            let measured = now >= self.ramp_end;
            let Some((dir, i)) = self.picker.claim(&self.plan, measured) else { return };
            if let Some(rate) = spec.rate_iops {
                // Shared pacing: the n-th operation of the job starts no
                // earlier than n / rate after the start.
                let n = self.picker.paced.get();
                self.picker.paced.set(n + 1);
                let at = self.start + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(at.into()).await;
            }
            let began = Instant::now();
            let result = self.one(dir, i, &mut cursor).await;
            let done = Instant::now();
            match result {
                Ok(bytes) if began >= self.ramp_end => {
                    self.stats.borrow_mut().record(dir, done - self.ramp_end, done - began, bytes);
                    self.live.ops[dir as usize].fetch_add(1, Ordering::Relaxed);
                    self.live.bytes[dir as usize].fetch_add(bytes, Ordering::Relaxed);
                    self.live.done.fetch_add(1, Ordering::Relaxed);
                    if done > self.last_done.get() {
                        self.last_done.set(done);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.stats.borrow_mut().error(e.kind, &e.detail);
                    self.live.errors.fetch_add(1, Ordering::Relaxed);
                    if !spec.continue_on_error {
                        self.stop.set(true);
                    }
                }
            }
        }
    }

    /// One operation; returns the bytes moved.
    async fn one(&self, dir: Dir, i: u64, cursor: &mut Option<String>) -> Result<u64, OpError> {
        let p = &self.plan;
        let key = p.key(i);
        match dir {
            Dir::Read => {
                let got = self.target.get(&key).await?;
                if p.spec.verify {
                    let want = (p.spec.workload == Workload::Read).then(|| p.read_size(i) as usize);
                    pattern::check(&key, &got, want).map_err(|detail| OpError { kind: "verify", detail })?;
                    self.stats.borrow_mut().verified += 1;
                }
                Ok(got.len() as u64)
            }
            Dir::Write => {
                let gen = {
                    let mut g = self.picker.gens.borrow_mut();
                    g[i as usize] = g[i as usize].wrapping_add(1);
                    g[i as usize]
                };
                let len = p.write_size(i);
                self.target.put(&key, pattern::make(&key, gen, len as usize)).await?;
                if let Some(w) = self.picker.written.borrow_mut().get_mut(i as usize) {
                    *w = true;
                }
                Ok(len)
            }
            Dir::Trim => self.target.delete(&key).await.map(|()| 0),
            Dir::List => {
                // A listing moves no object bytes: LIST reports operations.
                let (_, next) = self.target.list(&p.prefix, cursor.take(), LIST_PAGE).await?;
                *cursor = next;
                Ok(0)
            }
        }
    }
}

/// Write every key the job reads that is missing or has the wrong size,
/// `iodepth` at a time (fio lays out files a read job needs the same way).
async fn layout<T: Target + Clone + 'static>(target: &T, plan: &Rc<Plan>, live: &Arc<Live>) -> Result<(), OpError> {
    let mut have = std::collections::HashMap::new();
    let mut after = None;
    loop {
        let (entries, next) = target.list(&plan.prefix, after, LIST_PAGE).await?;
        have.extend(entries);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let missing: Vec<u64> =
        (0..plan.keys).filter(|&i| have.get(&plan.key(i)).is_none_or(|&s| s != plan.read_size(i))).collect();
    live.layout_total.store(missing.len() as u64, Ordering::Relaxed);
    let next = Rc::new(Cell::new(0usize));
    let missing = Rc::new(missing);
    let mut tasks = Vec::new();
    for _ in 0..plan.spec.iodepth {
        let (t, plan, next, missing, live) =
            (target.clone(), plan.clone(), next.clone(), missing.clone(), live.clone());
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let n = next.get();
                let Some(&i) = missing.get(n) else { return Ok(()) };
                next.set(n + 1);
                let key = plan.key(i);
                t.put(&key, pattern::make(&key, 0, plan.read_size(i) as usize)).await?;
                live.layout_done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        match t.await {
            Ok(r) => r?,
            Err(e) => return Err(OpError { kind: "other", detail: format!("layout task: {e}") }),
        }
    }
    Ok(())
}

/// fio's verify phase: read back every object this job wrote.
async fn verify_written<T: Target + Clone + 'static>(
    target: &T,
    plan: &Rc<Plan>,
    picker: &Rc<Picker>,
    stats: &Rc<RefCell<Stats>>,
    live: &Arc<Live>,
) {
    let keys: Vec<u64> =
        picker.written.borrow().iter().enumerate().filter(|(_, w)| **w).map(|(i, _)| i as u64).collect();
    let keys = Rc::new(keys);
    let next = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..plan.spec.iodepth {
        let (t, plan, keys, next, stats, live) =
            (target.clone(), plan.clone(), keys.clone(), next.clone(), stats.clone(), live.clone());
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let n = next.get();
                let Some(&i) = keys.get(n) else { return };
                next.set(n + 1);
                let key = plan.key(i);
                let r = match t.get(&key).await {
                    Ok(got) => pattern::check(&key, &got, Some(plan.write_size(i) as usize))
                        .map_err(|detail| OpError { kind: "verify", detail }),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => stats.borrow_mut().verified += 1,
                    Err(e) => {
                        stats.borrow_mut().error(e.kind, &format!("verify: {}", e.detail));
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
