//! Civil UTC dates without a time-zone database, shared by `tessera` and
//! `tessera-bench`.

/// `2026-11-26 16:00:00 UTC` from Unix seconds.
pub(crate) fn utc(secs: u64) -> String {
    let (y, m, d) = tessera_wire::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// [`utc`] with milliseconds: `2026-11-26 16:00:00.123 UTC` from Unix ms.
pub(crate) fn utc_ms(ms: u64) -> String {
    let s = utc(ms / 1_000);
    let (date_time, zone) = s.rsplit_once(' ').unwrap_or((s.as_str(), "UTC"));
    format!("{date_time}.{:03} {zone}", ms % 1_000)
}
