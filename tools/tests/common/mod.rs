//! Helpers shared by the multi-process tests: a region started with the
//! `tessera dev` CLI exactly as a user would, deterministic object bytes,
//! and a small seeded random generator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tessera_client::{BucketOptions, Client, ClientConfig, ClientError};

pub(crate) fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

/// `len` bytes determined by `seed` (a prefix of one stream per seed).
pub(crate) fn content(seed: &str, len: usize) -> Vec<u8> {
    let mut s = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// xorshift64*: reproducible choices from a printed seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seed from TESSERA_SEED, or from the clock; printed so a run can be replayed.
pub(crate) fn seed(test: &str) -> u64 {
    let seed = std::env::var("TESSERA_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    }) | 1;
    println!("{test}: seed {seed} (replay with TESSERA_SEED={seed})");
    seed
}

pub(crate) struct Region {
    pub(crate) dir: PathBuf,
    pub(crate) zones: Vec<String>,
}

impl Region {
    /// Create a 3 x 2 x 2 region with `tessera dev` (which runs its demo
    /// and stops), then start every zone again. `extra` adds dev options.
    pub(crate) fn new(name: &str, base_port: u16, extra: &[&str]) -> Region {
        let dir = std::env::temp_dir().join(format!("tessera-region-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = tessera()
            .args(["dev", "--exit-after-demo", "--target-mib", "384", "--dir"])
            .arg(&dir)
            .args(["--base-port", &base_port.to_string(), "--metrics-port", &(base_port + 5).to_string()])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "tessera dev failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("read back byte-identical"), "the demo did not run: {text}");
        let r = Region { dir, zones: vec!["z1".into(), "z2".into(), "z3".into()] };
        for z in r.zones.clone() {
            r.start_zone(&z);
        }
        r
    }

    /// Run `tessera dev WHAT --dir DIR ARGS...` and require success.
    pub(crate) fn dev(&self, what: &str, args: &[&str]) {
        let out = tessera().args(["dev", what, "--dir"]).arg(&self.dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tessera dev {what} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn stop_zone(&self, zone: &str) {
        self.dev("stop-zone", &[zone]);
    }

    pub(crate) fn start_zone(&self, zone: &str) {
        self.dev("start-zone", &[zone]);
    }

    /// Run a `tessera` data or admin command against this region.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = tessera().arg("--config").arg(self.dir.join("client.toml")).args(args).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// Run a `tessera` operator command (repair, replication rules, maps)
    /// as the region's admin.
    pub(crate) fn admin_cli(&self, args: &[&str]) -> String {
        let out = tessera().arg("--config").arg(self.dir.join("admin.toml")).args(args).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        ClientConfig::load(&self.dir.join("client.toml")).unwrap()
    }

    /// A client acting as the region's admin.
    pub(crate) async fn admin(&self) -> Client {
        Client::connect(ClientConfig::load(&self.dir.join("admin.toml")).unwrap()).await.unwrap()
    }

    /// Connect once every node answers (bucket creation reaches all targets).
    pub(crate) async fn client(&self, bucket: &str, versioned: bool) -> Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = async {
                let c = Client::connect(self.client_config()).await?;
                c.create_bucket(bucket, BucketOptions { versioned, ..Default::default() }).await?;
                Ok::<_, ClientError>(c)
            }
            .await;
            match r {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("region not ready: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let _ = tessera().args(["dev", "down", "--dir"]).arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn port_base(offset: u16) -> u16 {
    30_000 + (std::process::id() % 250) as u16 * 40 + offset
}

/// Is every member of the object's group holding `version` committed?
pub(crate) async fn fully_redundant(c: &Client, bucket: &str, key: &str, version: tessera_client::VersionId) -> bool {
    match tessera_client::group_view(c, bucket, key, version).await {
        Ok(answers) => answers
            .iter()
            .all(|a| a.as_ref().is_some_and(|h| h.committed && h.meta.as_ref().is_some_and(|m| m.version == version))),
        Err(_) => false,
    }
}
