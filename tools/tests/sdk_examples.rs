//! The SDK's examples (`client/examples/`), built by the workspace's test
//! build like every target, run as an application developer runs them:
//! against a `tessera dev` region, config path as the first argument. Each
//! example checks its own results and exits non-zero when one is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{port_base, Region};

/// `target/<profile>/examples/NAME`, next to this test's own `deps/`.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the workspace's tests (`cargo nextest run --workspace` builds every example) or `cargo build --examples -p tessera-client`",
        path.display()
    );
    Command::new(path)
}

fn run(region: &Region, name: &str, args: &[&str]) -> String {
    let out = example(name).arg(region.dir.join("client.toml")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_sdk_example_runs_against_a_dev_region() {
    let region = Region::new("examples", port_base(34), &[]);
    let file = region.dir.join("photo.bin");
    std::fs::write(&file, common::content("photo", 3_000_000)).unwrap();

    let out = run(&region, "put_get_file", &[file.to_str().unwrap()]);
    assert!(out.contains("stored examples/files/photo.bin: 3000000 bytes") && out.contains("identical"), "{out}");
    assert_eq!(std::fs::read(file.with_extension("copy")).unwrap(), std::fs::read(&file).unwrap());
    assert!(out.contains("a missing key is NoSuchKey"), "{out}");

    let out = run(&region, "streaming_upload", &["20"]);
    assert!(out.contains("read back 20971520 bytes") && out.contains("crc32c matches the receipt"), "{out}");

    let out = run(&region, "listing", &[]);
    assert!(out.contains("bucket examples-listing") && out.contains("folder 2026/"), "{out}");
    assert!(out.contains("page 2: readme.txt"), "continuation reached the second page: {out}");

    let out = run(&region, "versioned_bucket", &[]);
    assert!(out.contains("the key is gone") && out.contains("latest is \"second draft\" again"), "{out}");
    // What the examples wrote is what the CLI sees.
    let ls = region.cli(&["ls", "--json", "examples/files/"]);
    assert!(ls.contains("\"key\":\"files/photo.bin\"") && ls.contains("\"size\":3000000"), "{ls}");
}
