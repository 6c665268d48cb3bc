//! Civil UTC dates without a time-zone database, shared by `tessera` and
//! `tessera-bench`.

/// `2026-11-26 16:00:00 UTC` from Unix seconds (days to civil date after
/// Howard Hinnant's algorithm).
pub(crate) fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// [`utc`] with milliseconds: `2026-11-26 16:00:00.123 UTC` from Unix ms.
pub(crate) fn utc_ms(ms: u64) -> String {
    let s = utc(ms / 1_000);
    let (date_time, zone) = s.rsplit_once(' ').unwrap_or((s.as_str(), "UTC"));
    format!("{date_time}.{:03} {zone}", ms % 1_000)
}
