//! fio's value syntax: sizes with binary suffixes (`4k` is 4096, as with
//! fio's default `kb_base=1024`), times with unit suffixes (plain numbers
//! are seconds), booleans, percentages. Every error names the value.

use std::time::Duration;

/// `4096`, `4k`, `4KiB`, `64m`, `1g`, `2t` (all powers of 1024).
pub(crate) fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("{s:?} is not a size (a number with an optional k/m/g/t suffix)"));
    }
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown size suffix {unit:?} (use k, m, g or t)")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// `30` (seconds), `500ms`, `250us`, `2m`, `1h`, `1d`.
pub(crate) fn time(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("{s:?} is not a time (a number with an optional us/ms/s/m/h/d suffix)"));
    }
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large"))?;
    let micros = match unit.to_ascii_lowercase().as_str() {
        "us" | "usec" => 1,
        "ms" | "msec" => 1_000,
        "" | "s" | "sec" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return Err(format!("{s:?}: unknown time suffix {unit:?} (use us, ms, s, m, h or d)")),
    };
    n.checked_mul(micros).map(Duration::from_micros).ok_or_else(|| format!("{s:?} is too large"))
}

/// fio booleans; a bare key (no `=`) means true.
pub(crate) fn boolean(s: Option<&str>) -> Result<bool, String> {
    match s.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(format!("{other:?} is not a boolean (use 1 or 0)")),
    }
}

/// A whole percentage, 0 to 100.
pub(crate) fn percent(s: &str) -> Result<u32, String> {
    match s.trim().trim_end_matches('%').parse::<u32>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}

/// A positive whole number.
pub(crate) fn count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a positive whole number")),
    }
}

/// Bytes in fio's human form: `12.3MiB`.
pub(crate) fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0}{}", units[i])
    } else {
        format!("{v:.1}{}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_fio() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("4k"), Ok(4096));
        assert_eq!(size("4KiB"), Ok(4096));
        assert_eq!(size("64M"), Ok(64 << 20));
        assert_eq!(size("1g"), Ok(1 << 30));
        assert_eq!(size(" 2t "), Ok(2 << 40));
        assert!(size("4q").expect_err("must be refused").contains("unknown size suffix"));
        assert!(size("k").expect_err("must be refused").contains("not a size"));
        assert!(size("-1").expect_err("must be refused").contains("not a size"));
        assert!(size("99999999999999t").expect_err("must be refused").contains("too large"));
    }

    #[test]
    fn times_default_to_seconds() {
        assert_eq!(time("30"), Ok(Duration::from_secs(30)));
        assert_eq!(time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(time("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(time("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(time("1h"), Ok(Duration::from_secs(3600)));
        assert!(time("3 weeks").expect_err("must be refused").contains("unknown time suffix"));
        assert!(time("").expect_err("must be refused").contains("not a time"));
    }

    #[test]
    fn booleans_and_percentages() {
        assert_eq!(boolean(None), Ok(true));
        assert_eq!(boolean(Some("0")), Ok(false));
        assert_eq!(boolean(Some("Yes")), Ok(true));
        assert!(boolean(Some("maybe")).is_err());
        assert_eq!(percent("70"), Ok(70));
        assert_eq!(percent("70%"), Ok(70));
        assert!(percent("101").is_err());
        assert!(count("0").is_err());
        assert_eq!(human_bytes(1536.0), "1.5KiB");
        assert_eq!(human_bytes(12.0), "12B");
    }
}
