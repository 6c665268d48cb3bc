//! `tessera ls`: buckets, keys and versions, for people (a header, sizes
//! people read, times in the local zone, control characters escaped so a
//! hostile key cannot drive the terminal) and for scripts (`--json`, one
//! object per line, raw names, Unix milliseconds).

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::json;
use tessera_client::{BucketInfo, Client, ClientError, ListEntry, ListRequest, StorageClass};

/// How to print.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Header, human sizes, local times.
    Short,
    /// Also exact bytes, class, checksum, version (and owner for buckets).
    Long,
    /// JSON Lines.
    Json,
}

/// List the region's buckets.
pub(crate) async fn buckets(c: &Client, format: Format) -> Result<(), ClientError> {
    let list = c.list_buckets().await?;
    let zone = local_offset();
    match format {
        Format::Short => println!("{:<19}  {:<10}  {:<8}  BUCKET", format!("CREATED ({zone})"), "VERSIONING", "CLASS"),
        Format::Long => {
            println!(
                "{:<19}  {:<10}  {:<8}  {:<16}  BUCKET",
                format!("CREATED ({zone})"),
                "VERSIONING",
                "CLASS",
                "OWNER"
            )
        }
        Format::Json => {}
    }
    for b in &list {
        println!("{}", bucket_line(b, format));
    }
    if list.is_empty() && format != Format::Json {
        eprintln!("no buckets yet: make one with `tessera mb NAME`");
    }
    Ok(())
}

fn bucket_line(b: &BucketInfo, format: Format) -> String {
    let versioning = if b.versioned { "enabled" } else { "off" };
    match format {
        Format::Short => {
            format!("{:<19}  {versioning:<10}  {:<8}  {}", local(b.created_ms), class(b.storage_class), escape(&b.name))
        }
        Format::Long => format!(
            "{:<19}  {versioning:<10}  {:<8}  {:<16}  {}",
            local(b.created_ms),
            class(b.storage_class),
            escape(&b.owner),
            escape(&b.name)
        ),
        Format::Json => json!({
            "bucket": b.name,
            "created_ms": b.created_ms,
            "created": rfc3339(b.created_ms),
            "versioned": b.versioned,
            "storage_class": class(b.storage_class),
            "owner": b.owner,
        })
        .to_string(),
    }
}

/// List keys under BUCKET[/PREFIX], rolled up at '/' unless `recursive`.
pub(crate) async fn keys(
    c: &Client,
    bucket: &str,
    prefix: &str,
    recursive: bool,
    format: Format,
) -> Result<(), ClientError> {
    let mut req = ListRequest {
        prefix: prefix.to_owned(),
        delimiter: (!recursive).then(|| "/".to_string()),
        ..Default::default()
    };
    let mut first = true;
    loop {
        let page = c.list(bucket, req.clone()).await?;
        if std::mem::take(&mut first) {
            header(format, false);
        }
        for p in &page.common_prefixes {
            println!("{}", prefix_line(p, format));
        }
        for e in &page.entries {
            println!("{}", entry_line(e, format));
        }
        match page.next {
            Some(n) => req.continuation = Some(n),
            None => return Ok(()),
        }
    }
}

/// List every version and delete marker under BUCKET[/PREFIX].
pub(crate) async fn versions(c: &Client, bucket: &str, prefix: &str, format: Format) -> Result<(), ClientError> {
    let mut after = None;
    let mut first = true;
    loop {
        let page = c.list_versions(bucket, prefix, after, 1_000).await?;
        if std::mem::take(&mut first) {
            header(format, true);
        }
        for e in &page.entries {
            println!("{}", entry_line(e, if format == Format::Short { Format::Long } else { format }));
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(()),
        }
    }
}

fn header(format: Format, versions: bool) {
    let when = format!("MODIFIED ({})", local_offset());
    match format {
        Format::Short if !versions => println!("{when:<19}  {:>10}  KEY", "SIZE"),
        Format::Short | Format::Long => {
            println!("{when:<19}  {:>13}  {:<8}  {:<10}  {:<32}  KEY", "BYTES", "CLASS", "CRC32C", "VERSION")
        }
        Format::Json => {}
    }
}

fn prefix_line(p: &str, format: Format) -> String {
    match format {
        Format::Short => format!("{:<19}  {:>10}  {}", "", "PRE", escape(p)),
        Format::Long => format!("{:<19}  {:>13}  {:<8}  {:<10}  {:<32}  {}", "", "PRE", "", "", "", escape(p)),
        Format::Json => json!({ "prefix": p }).to_string(),
    }
}

fn entry_line(e: &ListEntry, format: Format) -> String {
    let size = if e.delete_marker { "DELETE-MARKER".to_string() } else { e.size_bytes.to_string() };
    match format {
        Format::Short => format!("{:<19}  {:>10}  {}", local(e.created_ms), human(e.size_bytes), escape(&e.key)),
        Format::Long => format!(
            "{:<19}  {size:>13}  {:<8}  {:<10}  {:<32}  {}",
            local(e.created_ms),
            class(e.storage_class),
            format!("{:08x}", e.content_crc32c),
            e.version.to_string(),
            escape(&e.key)
        ),
        Format::Json => json!({
            "key": e.key,
            "size": e.size_bytes,
            "modified_ms": e.created_ms,
            "modified": rfc3339(e.created_ms),
            "version": e.version.to_string(),
            "storage_class": class(e.storage_class),
            "crc32c": format!("{:08x}", e.content_crc32c),
            "delete_marker": e.delete_marker,
        })
        .to_string(),
    }
}

fn class(c: StorageClass) -> &'static str {
    match c {
        StorageClass::Standard => "STANDARD",
        StorageClass::InfrequentAccess => "IA",
    }
}

/// A name as the terminal may show it: control characters (escape,
/// carriage return, newline, C1 controls) and backslashes written as
/// escapes, everything else as is. Unchanged names are not copied.
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Sizes as `ls -h` and `aws s3 ls --human-readable` print them.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1_024.0 && u + 1 < UNITS.len() {
        v /= 1_024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[allow(unsafe_code)]
fn local_tm(secs: i64) -> Option<libc::tm> {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value; localtime_r only reads `t`
    // and writes into `tm` (the zone is read once per process from TZ or
    // /etc/localtime).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above; both pointers are to live locals.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    ok.then_some(tm)
}

/// `2026-12-07 07:40:12` in the local zone, from Unix milliseconds.
pub(crate) fn local(ms: u64) -> String {
    match local_tm((ms / 1_000) as i64) {
        Some(tm) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1_900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        ),
        None => crate::civil::utc(ms / 1_000),
    }
}

/// The local zone's current offset from UTC, `+01:00`.
fn local_offset() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let off = local_tm(now as i64).map(|tm| tm.tm_gmtoff).unwrap_or(0);
    let sign = if off < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", off.abs() / 3_600, off.abs() % 3_600 / 60)
}

/// `2026-12-07T06:40:12.123Z`, for JSON.
pub(crate) fn rfc3339(ms: u64) -> String {
    let s = crate::civil::utc_ms(ms);
    let s = s.trim_end_matches(" UTC");
    format!("{}Z", s.replacen(' ', "T", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_cannot_reach_the_terminal_raw() {
        assert!(matches!(escape("photos/cat.jpg"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\ry\nz\t"), "x\\ry\\nz\\t");
        assert_eq!(escape("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("ünïcødé/猫"), "ünïcødé/猫");
        for s in ["a\x07b", "\u{7f}", "k\u{85}"] {
            assert!(!escape(s).chars().any(char::is_control), "{s:?}");
        }
    }

    #[test]
    fn sizes_and_times_read_as_people_write_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1_023), "1023 B");
        assert_eq!(human(300_000), "293.0 KiB");
        assert_eq!(human(5 << 40), "5.0 TiB");
        assert_eq!(rfc3339(1_796_613_630_354), "2026-12-07T03:20:30.354Z");
        // The local rendering agrees with UTC plus the zone's offset at that
        // time (whatever zone the test runs in).
        let ms = 1_796_613_630_354u64;
        let tm = local_tm((ms / 1_000) as i64).expect("localtime");
        let shifted = crate::civil::utc((ms / 1_000).saturating_add_signed(tm.tm_gmtoff));
        assert_eq!(format!("{} UTC", local(ms)), shifted);
    }
}
