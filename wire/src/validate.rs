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
    }

    #[test]
    fn keys() {
        assert!(validate_key("a/b/c.txt").is_ok());
        assert_eq!(validate_key(""), Err(ValidationError::KeyEmpty));
        assert_eq!(validate_key("a\0b"), Err(ValidationError::KeyHasNul));
        assert!(matches!(validate_key(&"x".repeat(1_025)), Err(ValidationError::KeyTooLong { len: 1_025 })));
    }
}
