//! tessera-bench against a real `tessera dev` region: a ~20 s run of
//! write, mixed, delete and list jobs with verify on, its JSON checked
//! against docs/tessera-bench.schema.json; and verify shown to catch an
//! object whose bytes are not what the job wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{port_base, Region};
use serde_json::Value;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
}

/// The subset of JSON Schema the documented schema uses: $ref into
/// $defs, type (incl. integer and unions), required, properties,
/// additionalProperties (false or a schema), items.
fn validate(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return validate(root, &root["$defs"][name], v, path, errors);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{path}: {v} is not {types:?}"));
            return;
        }
    }
    if let (Some(obj), Some(req)) = (v.as_object(), schema.get("required").and_then(Value::as_array)) {
        for r in req.iter().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                errors.push(format!("{path}: missing {r:?}"));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(root, s, x, &format!("{path}.{k}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{path}: unexpected key {k:?}")),
                    Some(s @ Value::Object(_)) => validate(root, s, x, &format!("{path}.{k}"), errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(root, items, x, &format!("{path}[{i}]"), errors);
        }
    }
}

fn schema_errors(v: &Value) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tessera-bench.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut errors = Vec::new();
    validate(&schema, &schema, v, "$", &mut errors);
    errors
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let good = serde_json::json!({"fio version": "x", "timestamp": 1, "timestamp_ms": 1, "time": "t",
        "global options": {}, "jobs": [], "tessera": {"version": "0", "target": "t", "usr_cpu_seconds": 0.0,
        "sys_cpu_seconds": 0.0, "errors": {}, "verified": 0, "total": {"read": {}, "write": {}, "trim": {}, "list": {}, "runtime": 0}}});
    let errors = schema_errors(&good);
    // Empty directions lack their fields: reported, one per missing key.
    assert!(errors.iter().any(|e| e == "$.tessera.total.read: missing \"bw\""), "{errors:?}");
    let mut bad = good.clone();
    bad["jobs"] = serde_json::json!([{"jobname": 3}]);
    bad["extra"] = Value::Null;
    let errors = schema_errors(&bad);
    assert!(errors.iter().any(|e| e.starts_with("$.jobs[0].jobname: 3 is not")), "{errors:?}");
    assert!(errors.iter().any(|e| e == "$: unexpected key \"extra\""), "{errors:?}");
}

const JOBS: &str = "\
; The CI run: about 20 s against a local region, verify on throughout.
[global]
bucket=benchci
iodepth=4
verify=crc32c
continue_on_error=none

[put]
rw=write
bssplit=4k/40:64k/40:1m/20
size=24m
write_lat_log=LOGDIR/put

[mixed]
stonewall
rw=randrw
rwmixread=70
bs=64k
size=8m
runtime=12
time_based
ramp_time=1

[list]
stonewall
rw=list
bs=4k
size=4m
number_ios=20

[delete]
stonewall
rw=delete
bs=64k
key_prefix=put.0/
size=2m
";

#[test]
fn a_short_run_against_a_dev_region_verifies_and_reports_fio_json() {
    let region = Region::new("bench", port_base(30), &[]);
    let dir = region.dir.join("bench-out");
    std::fs::create_dir_all(&dir).unwrap();
    let jobfile = dir.join("ci.fio");
    std::fs::write(&jobfile, JOBS.replace("LOGDIR", &dir.to_string_lossy())).unwrap();
    let out = bench()
        .arg(format!("--config={}", region.dir.join("client.toml").display()))
        .arg("--output-format=json")
        .arg(format!("--chart={}", dir.join("chart.svg").display()))
        .arg("--eta=always")
        .arg(&jobfile)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The status lines would bury the error: show the rest.
    let said: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("Jobs: ")).collect();
    assert!(out.status.success(), "tessera-bench failed ({}): {}\n{stdout}", out.status, said.join("\n"));
    // The live status line ran (every second, --eta=always).
    assert!(stderr.lines().any(|l| l.starts_with("Jobs: ") && l.contains("ops/s][err=0][eta")), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let errors = schema_errors(&v);
    assert!(errors.is_empty(), "JSON does not match docs/tessera-bench.schema.json: {errors:#?}");
    let jobs = v["jobs"].as_array().unwrap();
    let job = |name: &str| jobs.iter().find(|j| j["jobname"] == name).unwrap();
    assert_eq!(v["tessera"]["errors"], serde_json::json!({}));

    // put: every key of the 24 MiB key space written once, then read back.
    let put = job("put");
    let keys = put["write"]["total_ios"].as_u64().unwrap();
    assert!(keys > 50, "{keys}");
    assert_eq!(put["tessera"]["verified"].as_u64(), Some(keys));
    let bytes = put["write"]["io_bytes"].as_u64().unwrap();
    assert!(bytes > 16 << 20 && bytes < 40 << 20, "{bytes}");
    let clat = &put["write"]["clat_ns"];
    let p = |q: &str| clat["percentile"][q].as_u64().unwrap();
    assert!(clat["min"].as_u64() <= Some(p("50.000000")));
    assert!(p("50.000000") <= p("90.000000") && p("90.000000") <= p("99.000000"));
    assert!(p("99.000000") <= p("99.990000") && Some(p("99.990000")) <= clat["max"].as_u64());
    // bw is KiB/s of io_bytes over the runtime, as fio's is.
    let runtime_ms = put["write"]["runtime"].as_f64().unwrap();
    let bw = put["write"]["bw"].as_f64().unwrap();
    assert!((bw - bytes as f64 / 1024.0 / (runtime_ms / 1e3)).abs() <= 1.0 + bw * 0.01, "{bw}");

    // mixed: ~70% reads, every read verified, ran for its 12 s.
    let mixed = job("mixed");
    let (r, w) = (mixed["read"]["total_ios"].as_u64().unwrap(), mixed["write"]["total_ios"].as_u64().unwrap());
    assert!(r > 20 && w > 5, "reads {r}, writes {w}");
    let share = r as f64 / (r + w) as f64;
    assert!((0.55..0.85).contains(&share), "read share {share}");
    // Every read was checked, the ramp's (not in the figures) too.
    assert!(mixed["tessera"]["verified"].as_u64().unwrap() >= r);
    assert!(mixed["job_runtime"].as_u64().unwrap() >= 11_000, "{}", mixed["job_runtime"]);

    // list: 20 pages; delete: each of its keys once.
    assert_eq!(job("list")["tessera"]["list"]["total_ios"].as_u64(), Some(20));
    assert_eq!(job("delete")["trim"]["total_ios"].as_u64(), Some(32));
    let left = region.cli(&["ls", "benchci/put.0/"]);
    assert!(!left.contains("put.0/0000000000") && !left.contains("put.0/0000000031"), "{left}");

    // The latency log (fio's format) and the chart.
    let log = std::fs::read_to_string(dir.join("put_lat.1.log")).unwrap();
    let first = log.lines().next().unwrap_or_default();
    let fields: Vec<&str> = first.split(", ").collect();
    assert_eq!(fields.len(), 5, "{first}");
    assert_eq!(fields[2], "1", "{first}");
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("polyline"));

    // Verify catches bytes the job did not write: replace one object with
    // random bytes of the same size, then read it back with verify.
    let victim = dir.join("victim");
    std::fs::write(&victim, vec![7u8; 65_536]).unwrap();
    region.cli(&["put", &victim.to_string_lossy(), "benchci/mixed.0/0000000003"]);
    let out = bench()
        .arg(format!("--config={}", region.dir.join("client.toml").display()))
        .args(["--output-format=json", "--name=check", "--bucket=benchci", "--rw=read", "--bs=64k", "--size=512k"])
        .args(["--key_prefix=mixed.0/", "--verify=crc32c", "--continue_on_error=all"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a verify failure must fail the run");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = &v["jobs"][0];
    assert_eq!(check["tessera"]["errors"], serde_json::json!({"verify": 1}), "{check}");
    let first = check["tessera"]["first_error"].as_str().unwrap();
    assert!(first.contains("mixed.0/0000000003: no verify header"), "{first}");
    assert_eq!(check["read"]["total_ios"].as_u64(), Some(7));
}

#[test]
fn bad_jobs_are_refused_before_anything_runs() {
    let cases: [(&[&str], &str); 4] = [
        (&["--name=a", "--size=1m", "--iodeph=4"], "job [a], argument 3: iodeph: unknown option \"iodeph\""),
        (&["--name=a", "--size=1m", "--bs=4q"], "unknown size suffix"),
        (&["--name=a", "--rw=write"], "size= is needed"),
        (&["--name=a", "--size=1m", "--config=/nonexistent/client.toml"], "client config /nonexistent/client.toml"),
    ];
    for (args, want) in cases {
        let out = bench().args(args).env_remove("TESSERA_CONFIG").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let out = bench().args(["--name=a", "--size=1m"]).env_remove("TESSERA_CONFIG").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("region mode needs config="));
}

/// A loop device attached for a test, detached (and its file removed) on drop.
struct Loop {
    dev: String,
    file: std::path::PathBuf,
}

impl Loop {
    /// None when this process cannot attach loop devices (not root, no
    /// losetup): the test then says so and checks nothing else.
    fn attach(mib: u64) -> Option<Loop> {
        let file = std::env::temp_dir().join(format!("tessera-bench-loop-{}", std::process::id()));
        std::fs::File::create(&file).ok()?.set_len(mib << 20).ok()?;
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&file).output().ok()?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&file);
            return None;
        }
        Some(Loop { dev: String::from_utf8_lossy(&out.stdout).trim().to_owned(), file })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
        let _ = std::fs::remove_file(&self.file);
        let name = self.dev.rsplit('/').next().unwrap_or_default();
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("tessera-bench-{name}.index.redb")));
    }
}

/// Engine mode on a block device: a zeroed device is formatted and used,
/// a second run reuses the objects the first laid out (fio reuses a laid-
/// out file), and a device holding anything else is refused untouched.
#[test]
fn engine_mode_on_a_device_formats_zeroes_reuses_its_own_and_refuses_other_data() {
    let Some(dev) = Loop::attach(512) else {
        eprintln!("skipped: cannot attach a loop device here (needs root and losetup)");
        return;
    };
    let run = |args: &[&str]| {
        bench()
            .args(["--engine", &format!("--filename={}", dev.dev), "--output-format=json"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--name=w", "--rw=write", "--bs=64k", "--size=16m", "--iodepth=8", "--verify=crc32c"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"][0]["tessera"]["verified"].as_u64(), Some(256));
    let out = run(&["--name=r", "--rw=randread", "--bs=64k", "--size=16m", "--key_prefix=w.0/", "--verify=crc32c"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"][0]["read"]["total_ios"].as_u64(), Some(256));
    // Other data on the device: refused, and the data is still there.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dev.dev)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(&garbage)?;
            f.sync_all()
        })
        .unwrap();
    let _ = std::fs::remove_file(
        std::env::temp_dir().join(format!("tessera-bench-{}.index.redb", dev.dev.rsplit('/').next().unwrap())),
    );
    let out = run(&["--name=w", "--rw=write", "--bs=64k", "--size=1m"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to format a device that holds other data"), "{err}");
    let mut head = vec![0u8; 4096];
    std::io::Read::read_exact(&mut std::fs::File::open(&dev.dev).unwrap(), &mut head).unwrap();
    assert_eq!(head, garbage, "the device's data was touched");
}
