//! End to end through the CLI: `tessera dev`, then `tessera put` and
//! `tessera get` of a 1 GiB file; bytes equal, peak RSS of node and client
//! reported and bounded (streaming, not buffering).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SIZE_BYTES: u64 = 1 << 30;
const CLIENT_RSS_MAX_KIB: u64 = 256 * 1_024;
const NODE_RSS_MAX_KIB: u64 = 1_024 * 1_024;

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Run the CLI, sampling its peak RSS until it exits.
fn run_cli(config: &Path, args: &[&str]) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env("TESSERA_CONFIG", config)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(k) = vm_hwm_kib(child.id()) {
            peak = peak.max(k);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "tessera {args:?} failed: {status}");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_big_file(path: &Path) -> u32 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut crc = 0;
    let mut block = vec![0u8; 1 << 20];
    for i in 0..SIZE_BYTES >> 20 {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i as usize * 31 + j * 7 + (j >> 9)) as u8;
        }
        crc = crc32c::crc32c_append(crc, &block);
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    crc
}

fn file_crc(path: &Path) -> u32 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return crc;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
}

#[test]
fn one_gib_put_and_get_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("tessera-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = 41_000 + (std::process::id() % 900) as u16 * 10;
    let mut dev = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["dev", "--no-demo", "--cores", "2", "--target-mib", "1536"])
        .arg("--dir")
        .arg(&dir)
        .args(["--base-port", &port.to_string(), "--metrics-port", &(port + 5).to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(dev.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "tessera dev did not start");
        let line = lines.next().expect("tessera dev exited").unwrap();
        if line.contains("Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let config = dir.join("client.toml");
    let src = dir.join("big.bin");
    let want = write_big_file(&src);
    assert!(run_cli(&config, &["mb", "big"]) > 0);
    let t = Instant::now();
    let put_rss = run_cli(&config, &["put", src.to_str().unwrap(), "big/one-gib"]);
    let put_s = t.elapsed().as_secs_f64();
    std::fs::remove_file(&src).unwrap();
    let out = dir.join("back.bin");
    let t = Instant::now();
    let get_rss = run_cli(&config, &["get", "big/one-gib", out.to_str().unwrap()]);
    let get_s = t.elapsed().as_secs_f64();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), SIZE_BYTES);
    assert_eq!(file_crc(&out), want, "downloaded bytes differ");
    // The largest node process of the region (each has its pid file).
    let node_rss = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("pid")).ok())
        .filter_map(|p| vm_hwm_kib(p.trim().parse().ok()?))
        .max()
        .unwrap_or(0);
    println!(
        "1 GiB: put {:.1} s ({:.0} MiB/s), get {:.1} s ({:.0} MiB/s); peak RSS: put client {} MiB, get client {} MiB, node {} MiB",
        put_s,
        1_024.0 / put_s,
        get_s,
        1_024.0 / get_s,
        put_rss / 1_024,
        get_rss / 1_024,
        node_rss / 1_024
    );
    // A FIFO (as /dev/null, a device) is written in place, never replaced
    // by a renamed file.
    let small = dir.join("small.bin");
    std::fs::write(&small, vec![7u8; 100_001]).unwrap();
    run_cli(&config, &["put", small.to_str().unwrap(), "big/small"]);
    let fifo = dir.join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            std::fs::File::open(&fifo).unwrap().read_to_end(&mut got).unwrap();
            got
        })
    };
    run_cli(&config, &["get", "big/small", fifo.to_str().unwrap()]);
    assert_eq!(reader.join().unwrap(), vec![7u8; 100_001], "bytes read from the FIFO");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    let _ = Command::new("kill").arg("-INT").arg(dev.id().to_string()).status();
    let status = dev.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "tessera dev did not stop cleanly: {status}");
    assert!(put_rss < CLIENT_RSS_MAX_KIB && get_rss < CLIENT_RSS_MAX_KIB, "client RSS {put_rss}/{get_rss} KiB");
    assert!(node_rss < NODE_RSS_MAX_KIB, "node RSS {node_rss} KiB");
}
