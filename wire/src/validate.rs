//! Checks on names and keys, applied by both sides so a bad name is refused
//! before it costs a round trip, and again by the node, which trusts nothing.

use crate::limits::{BUCKET_NAME_BYTES_MAX, BUCKET_NAME_BYTES_MIN, KEY_BYTES_MAX};

/// Why a bucket name or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Bucket name length out of range.
    #[error("bucket name {name:?} has {len} bytes; it must have {BUCKET_NAME_BYTES_MIN} to {BUCKET_NAME_BYTES_MAX}")]
    BucketNameLength {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// Bucket name has a character outside `[a-z0-9.-]` or starts/ends badly.
    #[error("bucket name {name:?} may use only a-z, 0-9, '.' and '-', and must start and end with a letter or digit")]
    BucketNameChars {
        /// The name.
        name: String,
    },
    /// A new bucket's name breaks one of S3's naming rules beyond the
    /// character set (names of buckets made before the rule still work).
    #[error("bucket name {name:?} {rule}")]
    BucketNameForm {
        /// The name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Empty key.
    #[error("object key is empty")]
    KeyEmpty,
    /// Key too long.
    #[error("object key has {len} bytes, more than the limit of {KEY_BYTES_MAX}")]
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// Key contains a NUL byte (the index separates fields with NUL).
    #[error("object key contains a NUL byte")]
    KeyHasNul,
}

/// Check a bucket name.
pub fn validate_bucket_name(name: &str) -> Result<(), ValidationError> {
    let len = name.len();
    if !(BUCKET_NAME_BYTES_MIN..=BUCKET_NAME_BYTES_MAX).contains(&len) {
        return Err(ValidationError::BucketNameLength { name: name.chars().take(80).collect(), len });
    }
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-';
    let bytes = name.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !bytes.iter().all(|&c| ok_char(c)) || !edge(bytes[0]) || !edge(bytes[len - 1]) {
        return Err(ValidationError::BucketNameChars { name: name.to_owned() });
    }
    Ok(())
}

/// Check the name of a bucket about to be made: [`validate_bucket_name`]
/// and S3's further rules, so a name valid here is valid for S3 tools and
/// virtual-host addressing (no adjacent dots, not an IPv4 address, none of
/// the prefixes and suffixes S3 reserves). Existing buckets are checked
/// only with [`validate_bucket_name`], so a bucket made before these rules
/// stays reachable.
pub fn validate_new_bucket_name(name: &str) -> Result<(), ValidationError> {
    validate_bucket_name(name)?;
    let form = |rule| Err(ValidationError::BucketNameForm { name: name.to_owned(), rule });
    if name.contains("..") {
        return form("has two adjacent dots");
    }
    if name.contains(".-") || name.contains("-.") {
        return form("has a dot next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return form("is formatted as an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return form(match prefix {
                "xn--" => "starts with xn-- (reserved for internationalised domain names)",
                "sthree-" => "starts with sthree- (reserved by S3)",
                _ => "starts with amzn-s3-demo- (reserved by S3)",
            });
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return form("ends with a suffix S3 reserves (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)");
        }
    }
    Ok(())
}

/// Check an object key.
pub fn validate_key(key: &str) -> Result<(), ValidationError> {
    if key.is_empty() {
        return Err(ValidationError::KeyEmpty);
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(ValidationError::KeyTooLong { len: key.len() });
    }
    if key.as_bytes().contains(&0) {
        return Err(ValidationError::KeyHasNul);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(validate_bucket_name("photos-2026.eu").is_ok());
        assert!(matches!(validate_bucket_name("ab"), Err(ValidationError::BucketNameLength { .. })));
        assert!(matches!(validate_bucket_name("Photos"), Err(ValidationError::BucketNameChars { .. })));
        assert!(matches!(validate_bucket_name("-abc"), Err(ValidationError::BucketNameChars { .. })));
        // New names follow S3's further rules; existing ones stay usable.
        for bad in [
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "sthree-x",
            "amzn-s3-demo-b",
            "b-s3alias",
            "b--ol-s3",
            "b.mrap",
            "a.-b",
            "a-.b",
        ] {
            assert!(validate_bucket_name(bad).is_ok(), "{bad}");
            let e = validate_new_bucket_name(bad).expect_err(bad);
            assert!(matches!(e, ValidationError::BucketNameForm { .. }), "{bad}: {e}");
        }
        for good in ["photos-2026.eu", "a.b.c", "192.168.1.1a", "1.2.3", "xn-abc", "my-s3alias-not"] {
            assert!(validate_new_bucket_name(good).is_ok(), "{good}");
        }
        assert!(validate_new_bucket_name("Photos").is_err());
    }

    #[test]
    fn keys() {
        assert!(validate_key("a/b/c.txt").is_ok());
        assert_eq!(validate_key(""), Err(ValidationError::KeyEmpty));
        assert_eq!(validate_key("a\0b"), Err(ValidationError::KeyHasNul));
        assert!(matches!(validate_key(&"x".repeat(1_025)), Err(ValidationError::KeyTooLong { len: 1_025 })));
    }
}
