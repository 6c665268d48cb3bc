//! Encoding and decoding of frame bodies, with every decoded field checked
//! against its named limit. Decoding never panics on any input.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::frame::{FrameHeader, Opcode, FRAME_HEADER_LEN};
use crate::limits::*;
use crate::message::*;
use crate::validate::{validate_bucket_name, validate_key, ValidationError};

/// Why a body was refused. One variant per reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// postcard could not read the body as the opcode's message.
    #[error("body of {opcode:?} is malformed: {source}")]
    Malformed {
        /// The opcode.
        opcode: Opcode,
        /// postcard's reason.
        source: postcard::Error,
    },
    /// Bytes left after the message.
    #[error("body of {opcode:?} has {extra_bytes} trailing bytes")]
    TrailingBytes {
        /// The opcode.
        opcode: Opcode,
        /// How many.
        extra_bytes: usize,
    },
    /// A response opcode where a request was expected, or the reverse.
    #[error("opcode {opcode:?} is not a {expected}")]
    WrongDirection {
        /// The opcode.
        opcode: Opcode,
        /// "request" or "response".
        expected: &'static str,
    },
    /// A bucket name or key failed validation.
    #[error("invalid field in {opcode:?}: {source}")]
    Invalid {
        /// The opcode.
        opcode: Opcode,
        /// What was wrong.
        source: ValidationError,
    },
    /// A string field is longer than its limit.
    #[error("field {field} has {len_bytes} bytes, more than the limit of {max_bytes}")]
    FieldTooLong {
        /// Field name.
        field: &'static str,
        /// Its length.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A bucket policy breaks a rule of the policy language or a limit.
    #[error("bucket policy in {opcode:?} refused: {detail}")]
    BadPolicy {
        /// The opcode.
        opcode: Opcode,
        /// What was wrong.
        detail: String,
    },
    /// A list field has more entries than its limit.
    #[error("field {field} has {count} entries, more than the limit of {max}")]
    TooManyEntries {
        /// Field name.
        field: &'static str,
        /// Entries found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A numeric field is out of its range.
    #[error("field {field} is {value}, outside {allowed}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body would exceed [`BODY_BYTES_MAX`].
    #[error("encoded body of {len_bytes} bytes exceeds the limit of {BODY_BYTES_MAX}")]
    BodyTooLong {
        /// Its length.
        len_bytes: usize,
    },
    /// The payload would exceed its opcode's limit.
    #[error("payload of {len_bytes} bytes exceeds the limit of {max} for its opcode")]
    PayloadTooLong {
        /// Its length.
        len_bytes: u64,
        /// The limit.
        max: u64,
    },
    /// postcard failed (cannot happen for these types; kept typed anyway).
    #[error("postcard encoding failed: {0}")]
    Postcard(postcard::Error),
}

/// A message that can be the body of a frame.
pub trait FrameBody {
    /// Its opcode.
    fn opcode(&self) -> Opcode;
    /// Its postcard bytes.
    fn to_body(&self) -> Result<Vec<u8>, postcard::Error>;
}

impl FrameBody for Request {
    fn opcode(&self) -> Opcode {
        match self {
            Request::PutShard(_) => Opcode::PutShard,
            Request::GetShard(_) => Opcode::GetShard,
            Request::Head(_) => Opcode::Head,
            Request::Delete(_) => Opcode::Delete,
            Request::List(_) => Opcode::List,
            Request::CreateBucket(_) => Opcode::CreateBucket,
            Request::GetBucket(_) => Opcode::GetBucket,
            Request::NodeStatus(_) => Opcode::NodeStatus,
            Request::Commit(_) => Opcode::Commit,
            Request::ListVersions(_) => Opcode::ListVersions,
            Request::GetMap(_) => Opcode::GetMap,
            Request::SetMap(_) => Opcode::SetMap,
            Request::PgDigest(_) => Opcode::PgDigest,
            Request::PgList(_) => Opcode::PgList,
            Request::RepairStatus(_) => Opcode::RepairStatus,
            Request::SetRepairRate(_) => Opcode::SetRepairRate,
            Request::ChangeLog(_) => Opcode::ChangeLog,
            Request::CrrCursor(_) => Opcode::CrrCursor,
            Request::CrrForget(_) => Opcode::CrrForget,
            Request::CrrStatus(_) => Opcode::CrrStatus,
            Request::CrrHave(_) => Opcode::CrrHave,
            Request::CrrApply(_) => Opcode::CrrApply,
            Request::ChangeSummary(_) => Opcode::ChangeSummary,
            Request::ListBuckets(_) => Opcode::ListBuckets,
            Request::SetBucketAccess(_) => Opcode::SetBucketAccess,
            Request::GetBucketAccess(_) => Opcode::GetBucketAccess,
            Request::GetRegistry(_) => Opcode::GetRegistry,
            Request::SetRegistry(_) => Opcode::SetRegistry,
        }
    }
    fn to_body(&self) -> Result<Vec<u8>, postcard::Error> {
        match self {
            Request::PutShard(m) => postcard::to_stdvec(m),
            Request::GetShard(m) => postcard::to_stdvec(m),
            Request::Head(m) => postcard::to_stdvec(m),
            Request::Delete(m) => postcard::to_stdvec(m),
            Request::List(m) => postcard::to_stdvec(m),
            Request::CreateBucket(m) => postcard::to_stdvec(m),
            Request::GetBucket(m) => postcard::to_stdvec(m),
            Request::NodeStatus(m) => postcard::to_stdvec(m),
            Request::Commit(m) => postcard::to_stdvec(m),
            Request::ListVersions(m) => postcard::to_stdvec(m),
            Request::GetMap(m) => postcard::to_stdvec(m),
            Request::SetMap(m) => postcard::to_stdvec(m),
            Request::PgDigest(m) => postcard::to_stdvec(m),
            Request::PgList(m) => postcard::to_stdvec(m),
            Request::RepairStatus(m) => postcard::to_stdvec(m),
            Request::SetRepairRate(m) => postcard::to_stdvec(m),
            Request::ChangeLog(m) => postcard::to_stdvec(m),
            Request::CrrCursor(m) => postcard::to_stdvec(m),
            Request::CrrForget(m) => postcard::to_stdvec(m),
            Request::CrrStatus(m) => postcard::to_stdvec(m),
            Request::CrrHave(m) => postcard::to_stdvec(m),
            Request::CrrApply(m) => postcard::to_stdvec(m),
            Request::ChangeSummary(m) => postcard::to_stdvec(m),
            Request::ListBuckets(m) => postcard::to_stdvec(m),
            Request::SetBucketAccess(m) => postcard::to_stdvec(m),
            Request::GetBucketAccess(m) => postcard::to_stdvec(m),
            Request::GetRegistry(m) => postcard::to_stdvec(m),
            Request::SetRegistry(m) => postcard::to_stdvec(m),
        }
    }
}

impl FrameBody for Response {
    fn opcode(&self) -> Opcode {
        match self {
            Response::PutShardOk(_) => Opcode::PutShardOk,
            Response::GetShardOk(_) => Opcode::GetShardOk,
            Response::HeadOk(_) => Opcode::HeadOk,
            Response::DeleteOk(_) => Opcode::DeleteOk,
            Response::ListOk(_) => Opcode::ListOk,
            Response::CreateBucketOk(_) => Opcode::CreateBucketOk,
            Response::GetBucketOk(_) => Opcode::GetBucketOk,
            Response::NodeStatusOk(_) => Opcode::NodeStatusOk,
            Response::CommitOk(_) => Opcode::CommitOk,
            Response::ListVersionsOk(_) => Opcode::ListVersionsOk,
            Response::MapOk(_) => Opcode::MapOk,
            Response::PgDigestOk(_) => Opcode::PgDigestOk,
            Response::PgListOk(_) => Opcode::PgListOk,
            Response::RepairStatusOk(_) => Opcode::RepairStatusOk,
            Response::ChangeLogOk(_) => Opcode::ChangeLogOk,
            Response::CrrOk(_) => Opcode::CrrOk,
            Response::CrrStatusOk(_) => Opcode::CrrStatusOk,
            Response::CrrHaveOk(_) => Opcode::CrrHaveOk,
            Response::CrrApplyOk(_) => Opcode::CrrApplyOk,
            Response::ChangeSummaryOk(_) => Opcode::ChangeSummaryOk,
            Response::ListBucketsOk(_) => Opcode::ListBucketsOk,
            Response::BucketAccessOk(_) => Opcode::BucketAccessOk,
            Response::RegistryOk(_) => Opcode::RegistryOk,
            Response::Error(_) => Opcode::Error,
        }
    }
    fn to_body(&self) -> Result<Vec<u8>, postcard::Error> {
        match self {
            Response::PutShardOk(m) => postcard::to_stdvec(m),
            Response::GetShardOk(m) => postcard::to_stdvec(m),
            Response::HeadOk(m) => postcard::to_stdvec(m),
            Response::DeleteOk(m) => postcard::to_stdvec(m),
            Response::ListOk(m) => postcard::to_stdvec(m),
            Response::CreateBucketOk(m) => postcard::to_stdvec(m),
            Response::GetBucketOk(m) => postcard::to_stdvec(m),
            Response::NodeStatusOk(m) => postcard::to_stdvec(m),
            Response::CommitOk(m) => postcard::to_stdvec(m),
            Response::ListVersionsOk(m) => postcard::to_stdvec(m),
            Response::MapOk(m) => postcard::to_stdvec(m),
            Response::PgDigestOk(m) => postcard::to_stdvec(m),
            Response::PgListOk(m) => postcard::to_stdvec(m),
            Response::RepairStatusOk(m) => postcard::to_stdvec(m),
            Response::ChangeLogOk(m) => postcard::to_stdvec(m),
            Response::CrrOk(m) => postcard::to_stdvec(m),
            Response::CrrStatusOk(m) => postcard::to_stdvec(m),
            Response::CrrHaveOk(m) => postcard::to_stdvec(m),
            Response::CrrApplyOk(m) => postcard::to_stdvec(m),
            Response::ChangeSummaryOk(m) => postcard::to_stdvec(m),
            Response::ListBucketsOk(m) => postcard::to_stdvec(m),
            Response::BucketAccessOk(m) => postcard::to_stdvec(m),
            Response::RegistryOk(m) => postcard::to_stdvec(m),
            Response::Error(m) => postcard::to_stdvec(m),
        }
    }
}

/// Header plus body of a frame carrying `msg`; the caller sends
/// `payload_len` raw bytes after it.
pub fn encode_frame(
    request_id: u64,
    msg: &impl FrameBody,
    payload_len: u64,
    map_epoch: u64,
) -> Result<Vec<u8>, EncodeError> {
    let max = msg.opcode().payload_max();
    if payload_len > max {
        return Err(EncodeError::PayloadTooLong { len_bytes: payload_len, max });
    }
    let body = msg.to_body().map_err(EncodeError::Postcard)?;
    let body_len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= BODY_BYTES_MAX)
        .ok_or(EncodeError::BodyTooLong { len_bytes: body.len() })?;
    let header = FrameHeader::new(msg.opcode(), request_id, body_len, payload_len, map_epoch);
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn take<T: DeserializeOwned>(opcode: Opcode, body: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|source| DecodeError::Malformed { opcode, source })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { opcode, extra_bytes: rest.len() });
    }
    Ok(value)
}

/// A decoded body: a request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Decoded {
    Request(Request),
    Response(Response),
}

/// Decode and validate the body of a frame whose header said `opcode`.
pub fn decode_body(opcode: Opcode, body: &[u8]) -> Result<Decoded, DecodeError> {
    use Opcode as O;
    let decoded = match opcode {
        O::PutShard => Decoded::Request(Request::PutShard(take(opcode, body)?)),
        O::GetShard => Decoded::Request(Request::GetShard(take(opcode, body)?)),
        O::Head => Decoded::Request(Request::Head(take(opcode, body)?)),
        O::Delete => Decoded::Request(Request::Delete(take(opcode, body)?)),
        O::List => Decoded::Request(Request::List(take(opcode, body)?)),
        O::CreateBucket => Decoded::Request(Request::CreateBucket(take(opcode, body)?)),
        O::GetBucket => Decoded::Request(Request::GetBucket(take(opcode, body)?)),
        O::NodeStatus => Decoded::Request(Request::NodeStatus(take(opcode, body)?)),
        O::Commit => Decoded::Request(Request::Commit(take(opcode, body)?)),
        O::ListVersions => Decoded::Request(Request::ListVersions(take(opcode, body)?)),
        O::GetMap => Decoded::Request(Request::GetMap(take(opcode, body)?)),
        O::SetMap => Decoded::Request(Request::SetMap(take(opcode, body)?)),
        O::PgDigest => Decoded::Request(Request::PgDigest(take(opcode, body)?)),
        O::PgList => Decoded::Request(Request::PgList(take(opcode, body)?)),
        O::RepairStatus => Decoded::Request(Request::RepairStatus(take(opcode, body)?)),
        O::SetRepairRate => Decoded::Request(Request::SetRepairRate(take(opcode, body)?)),
        O::ChangeLog => Decoded::Request(Request::ChangeLog(take(opcode, body)?)),
        O::CrrCursor => Decoded::Request(Request::CrrCursor(take(opcode, body)?)),
        O::CrrForget => Decoded::Request(Request::CrrForget(take(opcode, body)?)),
        O::CrrStatus => Decoded::Request(Request::CrrStatus(take(opcode, body)?)),
        O::CrrHave => Decoded::Request(Request::CrrHave(take(opcode, body)?)),
        O::CrrApply => Decoded::Request(Request::CrrApply(take(opcode, body)?)),
        O::ChangeSummary => Decoded::Request(Request::ChangeSummary(take(opcode, body)?)),
        O::ListBuckets => Decoded::Request(Request::ListBuckets(take(opcode, body)?)),
        O::SetBucketAccess => Decoded::Request(Request::SetBucketAccess(take(opcode, body)?)),
        O::GetBucketAccess => Decoded::Request(Request::GetBucketAccess(take(opcode, body)?)),
        O::GetRegistry => Decoded::Request(Request::GetRegistry(take(opcode, body)?)),
        O::SetRegistry => Decoded::Request(Request::SetRegistry(take(opcode, body)?)),
        O::PutShardOk => Decoded::Response(Response::PutShardOk(take(opcode, body)?)),
        O::GetShardOk => Decoded::Response(Response::GetShardOk(take(opcode, body)?)),
        O::HeadOk => Decoded::Response(Response::HeadOk(take(opcode, body)?)),
        O::DeleteOk => Decoded::Response(Response::DeleteOk(take(opcode, body)?)),
        O::ListOk => Decoded::Response(Response::ListOk(take(opcode, body)?)),
        O::CreateBucketOk => Decoded::Response(Response::CreateBucketOk(take(opcode, body)?)),
        O::GetBucketOk => Decoded::Response(Response::GetBucketOk(take(opcode, body)?)),
        O::NodeStatusOk => Decoded::Response(Response::NodeStatusOk(take(opcode, body)?)),
        O::CommitOk => Decoded::Response(Response::CommitOk(take(opcode, body)?)),
        O::ListVersionsOk => Decoded::Response(Response::ListVersionsOk(take(opcode, body)?)),
        O::MapOk => Decoded::Response(Response::MapOk(take(opcode, body)?)),
        O::PgDigestOk => Decoded::Response(Response::PgDigestOk(take(opcode, body)?)),
        O::PgListOk => Decoded::Response(Response::PgListOk(take(opcode, body)?)),
        O::RepairStatusOk => Decoded::Response(Response::RepairStatusOk(take(opcode, body)?)),
        O::ChangeLogOk => Decoded::Response(Response::ChangeLogOk(take(opcode, body)?)),
        O::CrrOk => Decoded::Response(Response::CrrOk(take(opcode, body)?)),
        O::CrrStatusOk => Decoded::Response(Response::CrrStatusOk(take(opcode, body)?)),
        O::CrrHaveOk => Decoded::Response(Response::CrrHaveOk(take(opcode, body)?)),
        O::CrrApplyOk => Decoded::Response(Response::CrrApplyOk(take(opcode, body)?)),
        O::ChangeSummaryOk => Decoded::Response(Response::ChangeSummaryOk(take(opcode, body)?)),
        O::ListBucketsOk => Decoded::Response(Response::ListBucketsOk(take(opcode, body)?)),
        O::BucketAccessOk => Decoded::Response(Response::BucketAccessOk(take(opcode, body)?)),
        O::RegistryOk => Decoded::Response(Response::RegistryOk(take(opcode, body)?)),
        O::Error => Decoded::Response(Response::Error(take(opcode, body)?)),
    };
    check(opcode, &decoded)?;
    Ok(decoded)
}

/// Decode a body that must be a request.
pub fn decode_request(opcode: Opcode, body: &[u8]) -> Result<Request, DecodeError> {
    if opcode as u8 & 0x80 != 0 {
        return Err(DecodeError::WrongDirection { opcode, expected: "request" });
    }
    match decode_body(opcode, body)? {
        Decoded::Request(r) => Ok(r),
        Decoded::Response(_) => Err(DecodeError::WrongDirection { opcode, expected: "request" }),
    }
}

/// Decode a body that must be a response.
pub fn decode_response(opcode: Opcode, body: &[u8]) -> Result<Response, DecodeError> {
    if opcode as u8 & 0x80 == 0 {
        return Err(DecodeError::WrongDirection { opcode, expected: "response" });
    }
    match decode_body(opcode, body)? {
        Decoded::Response(r) => Ok(r),
        Decoded::Request(_) => Err(DecodeError::WrongDirection { opcode, expected: "response" }),
    }
}

fn max_len(field: &'static str, s: &str, max_bytes: usize) -> Result<(), DecodeError> {
    if s.len() > max_bytes {
        return Err(DecodeError::FieldTooLong { field, len_bytes: s.len(), max_bytes });
    }
    Ok(())
}

fn bucket(opcode: Opcode, name: &str) -> Result<(), DecodeError> {
    validate_bucket_name(name).map_err(|source| DecodeError::Invalid { opcode, source })
}

fn key(opcode: Opcode, k: &str) -> Result<(), DecodeError> {
    validate_key(k).map_err(|source| DecodeError::Invalid { opcode, source })
}

fn count(field: &'static str, n: usize, max: usize) -> Result<(), DecodeError> {
    if n > max {
        return Err(DecodeError::TooManyEntries { field, count: n, max });
    }
    Ok(())
}

/// Check an object metadata record against the limits.
pub fn check_meta(opcode: Opcode, meta: &ObjectMeta) -> Result<(), DecodeError> {
    key(opcode, &meta.key)?;
    if let Some(ct) = &meta.content_type {
        max_len("content_type", ct, CONTENT_TYPE_BYTES_MAX)?;
    }
    max_len("owner", &meta.owner, OWNER_BYTES_MAX)?;
    if let Some(o) = &meta.origin {
        max_len("origin", o, crate::crr::CRR_NAME_BYTES_MAX)?;
    }
    if meta.user_meta.len() > USER_META_ENTRIES_MAX {
        return Err(DecodeError::TooManyEntries {
            field: "user_meta",
            count: meta.user_meta.len(),
            max: USER_META_ENTRIES_MAX,
        });
    }
    let total: usize = meta.user_meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > USER_META_BYTES_MAX {
        return Err(DecodeError::FieldTooLong { field: "user_meta", len_bytes: total, max_bytes: USER_META_BYTES_MAX });
    }
    if meta.stripe_count > STRIPES_PER_OBJECT_MAX {
        return Err(DecodeError::OutOfRange {
            field: "stripe_count",
            value: u64::from(meta.stripe_count),
            allowed: "0..=STRIPES_PER_OBJECT_MAX",
        });
    }
    let (k, m) = (meta.ec.data, meta.ec.parity);
    if k == 0 || meta.ec.total() > 64 {
        return Err(DecodeError::OutOfRange {
            field: "ec",
            value: u64::from(k) << 8 | u64::from(m),
            allowed: "k >= 1, k + m <= 64",
        });
    }
    if u64::from(meta.shard_bytes) > SHARD_BYTES_MAX || !meta.shard_bytes.is_multiple_of(2) {
        return Err(DecodeError::OutOfRange {
            field: "shard_bytes",
            value: u64::from(meta.shard_bytes),
            allowed: "even, 0..=SHARD_BYTES_MAX",
        });
    }
    if meta.stripe_count > 0 && u64::from(meta.stripe_bytes) != u64::from(k) * u64::from(meta.shard_bytes) {
        return Err(DecodeError::OutOfRange {
            field: "stripe_bytes",
            value: u64::from(meta.stripe_bytes),
            allowed: "k * shard_bytes",
        });
    }
    let needed = u64::from(meta.stripe_count) * u64::from(meta.stripe_bytes);
    let fits = meta.size_bytes <= needed
        && (meta.stripe_count == 0 || meta.size_bytes > needed - u64::from(meta.stripe_bytes));
    if !fits {
        return Err(DecodeError::OutOfRange {
            field: "size_bytes",
            value: meta.size_bytes,
            allowed: "(stripe_count - 1) * stripe_bytes < size <= stripe_count * stripe_bytes",
        });
    }
    Ok(())
}

fn check(opcode: Opcode, decoded: &Decoded) -> Result<(), DecodeError> {
    match decoded {
        Decoded::Request(Request::PutShard(m)) => {
            bucket(opcode, &m.bucket)?;
            key(opcode, &m.key)?;
            if m.stripe.0 >= STRIPES_PER_OBJECT_MAX {
                return Err(DecodeError::OutOfRange {
                    field: "stripe",
                    value: u64::from(m.stripe.0),
                    allowed: "0..STRIPES_PER_OBJECT_MAX",
                });
            }
            if let Some(meta) = &m.meta {
                check_meta(opcode, meta)?;
            }
        }
        Decoded::Request(Request::GetShard(m)) => {
            bucket(opcode, &m.bucket)?;
            key(opcode, &m.key)?;
        }
        Decoded::Request(Request::Head(m)) => {
            bucket(opcode, &m.bucket)?;
            key(opcode, &m.key)?;
            if m.exclude.len() > VERSION_LIST_MAX {
                return Err(DecodeError::TooManyEntries {
                    field: "exclude",
                    count: m.exclude.len(),
                    max: VERSION_LIST_MAX,
                });
            }
        }
        Decoded::Request(Request::Commit(m)) => {
            bucket(opcode, &m.bucket)?;
            key(opcode, &m.key)?;
        }
        Decoded::Request(Request::ListVersions(m)) => {
            bucket(opcode, &m.bucket)?;
            max_len("prefix", &m.prefix, LIST_ARG_BYTES_MAX)?;
            if let Some((k, _)) = &m.after {
                max_len("after", k, LIST_ARG_BYTES_MAX)?;
            }
            if m.limit == 0 || m.limit > LIST_LIMIT_MAX {
                return Err(DecodeError::OutOfRange {
                    field: "limit",
                    value: u64::from(m.limit),
                    allowed: "1..=LIST_LIMIT_MAX",
                });
            }
        }
        Decoded::Request(Request::GetMap(_) | Request::SetMap(_)) => {}
        Decoded::Request(Request::GetRegistry(_) | Request::SetRegistry(_)) => {}
        Decoded::Response(Response::RegistryOk(_)) => {}
        Decoded::Request(Request::CrrStatus(_) | Request::ChangeSummary(_)) => {}
        Decoded::Response(Response::ChangeSummaryOk(m)) => {
            count("groups", m.groups.len(), crate::crr::SUMMARY_GROUPS_MAX)?
        }
        Decoded::Request(Request::ChangeLog(m)) => {
            if m.limit == 0 || m.limit as usize > crate::crr::CHANGES_PER_PAGE_MAX {
                return Err(DecodeError::OutOfRange {
                    field: "limit",
                    value: u64::from(m.limit),
                    allowed: "1..=CHANGES_PER_PAGE_MAX",
                });
            }
        }
        Decoded::Request(Request::CrrCursor(m)) => {
            max_len("rule", &m.rule, crate::crr::CRR_NAME_BYTES_MAX)?;
            if let Some(at) = &m.cursor.backfill_after {
                bucket(opcode, &at.bucket)?;
                key(opcode, &at.key)?;
            }
        }
        Decoded::Request(Request::CrrForget(m)) => {
            count("changes", m.changes.len(), crate::crr::CHANGES_PER_PAGE_MAX)?;
            for c in &m.changes {
                bucket(opcode, &c.bucket)?;
                key(opcode, &c.key)?;
            }
        }
        Decoded::Request(Request::CrrHave(m)) => {
            max_len("rule", &m.rule, crate::crr::CRR_NAME_BYTES_MAX)?;
            bucket(opcode, &m.dest_bucket)?;
            count("items", m.items.len(), crate::crr::HAVE_ITEMS_MAX)?;
            for (k, _, _) in &m.items {
                key(opcode, k)?;
            }
        }
        Decoded::Request(Request::CrrApply(m)) => {
            max_len("rule", &m.rule, crate::crr::CRR_NAME_BYTES_MAX)?;
            max_len("origin", &m.origin, crate::crr::CRR_NAME_BYTES_MAX)?;
            bucket(opcode, &m.dest_bucket)?;
            match &m.op {
                crate::crr::CrrOp::Put(meta) => check_meta(opcode, meta)?,
                crate::crr::CrrOp::Purge { key: k, .. } => key(opcode, k)?,
            }
        }
        Decoded::Response(Response::ChangeLogOk(m)) => {
            count("entries", m.entries.len(), crate::crr::CHANGES_PER_PAGE_MAX)?;
            for (_, c) in &m.entries {
                bucket(opcode, &c.bucket)?;
                key(opcode, &c.key)?;
            }
        }
        Decoded::Response(Response::CrrHaveOk(m)) => count("done", m.done.len(), crate::crr::HAVE_ITEMS_MAX)?,
        Decoded::Response(Response::CrrStatusOk(m)) => {
            for r in &m.rules {
                count("lag_counts", r.lag_counts.len(), crate::crr::LAG_BUCKETS)?;
            }
        }
        Decoded::Response(Response::CrrOk(_) | Response::CrrApplyOk(_)) => {}
        Decoded::Request(Request::RepairStatus(_) | Request::SetRepairRate(_)) => {}
        Decoded::Request(Request::PgDigest(m)) => {
            if m.pgs.len() > crate::repair::PG_DIGEST_MAX {
                return Err(DecodeError::TooManyEntries {
                    field: "pgs",
                    count: m.pgs.len(),
                    max: crate::repair::PG_DIGEST_MAX,
                });
            }
        }
        Decoded::Request(Request::PgList(m)) => {
            if let Some(a) = &m.after {
                bucket(opcode, &a.bucket)?;
                key(opcode, &a.key)?;
            }
            if m.limit == 0 || m.limit > crate::repair::PG_LIST_MAX {
                return Err(DecodeError::OutOfRange {
                    field: "limit",
                    value: u64::from(m.limit),
                    allowed: "1..=PG_LIST_MAX",
                });
            }
        }
        Decoded::Response(Response::PgDigestOk(m)) => {
            if m.sums.len() > crate::repair::PG_DIGEST_MAX {
                return Err(DecodeError::TooManyEntries {
                    field: "sums",
                    count: m.sums.len(),
                    max: crate::repair::PG_DIGEST_MAX,
                });
            }
        }
        Decoded::Response(Response::PgListOk(m)) => {
            if m.entries.len() > crate::repair::PG_LIST_MAX as usize {
                return Err(DecodeError::TooManyEntries {
                    field: "entries",
                    count: m.entries.len(),
                    max: crate::repair::PG_LIST_MAX as usize,
                });
            }
            for e in &m.entries {
                bucket(opcode, &e.at.bucket)?;
                key(opcode, &e.at.key)?;
            }
        }
        Decoded::Request(Request::Delete(m)) => {
            bucket(opcode, &m.bucket)?;
            key(opcode, &m.key)?;
        }
        Decoded::Request(Request::List(m)) => {
            bucket(opcode, &m.bucket)?;
            max_len("prefix", &m.prefix, LIST_ARG_BYTES_MAX)?;
            if let Some(d) = &m.delimiter {
                max_len("delimiter", d, LIST_ARG_BYTES_MAX)?;
            }
            if let Some(s) = &m.start_after {
                max_len("start_after", s, LIST_ARG_BYTES_MAX)?;
            }
            if m.limit == 0 || m.limit > LIST_LIMIT_MAX {
                return Err(DecodeError::OutOfRange {
                    field: "limit",
                    value: u64::from(m.limit),
                    allowed: "1..=LIST_LIMIT_MAX",
                });
            }
        }
        Decoded::Request(Request::CreateBucket(m)) => {
            crate::validate::validate_new_bucket_name(&m.info.name)
                .map_err(|source| DecodeError::Invalid { opcode, source })?;
            max_len("owner", &m.info.owner, OWNER_BYTES_MAX)?;
        }
        Decoded::Request(Request::GetBucket(m)) => bucket(opcode, &m.name)?,
        Decoded::Request(Request::GetBucketAccess(m)) => bucket(opcode, &m.bucket)?,
        Decoded::Request(Request::SetBucketAccess(m)) => {
            bucket(opcode, &m.bucket)?;
            if let Some(p) = &m.access.policy {
                p.check(&m.bucket).map_err(|detail| DecodeError::BadPolicy { opcode, detail })?;
            }
        }
        Decoded::Response(Response::BucketAccessOk(m)) => {
            max_len("owner", &m.owner, OWNER_BYTES_MAX)?;
            if let Some(p) = &m.access.policy {
                count("statements", p.statements.len(), crate::access::POLICY_STATEMENTS_MAX)?;
            }
        }
        Decoded::Request(Request::ListBuckets(m)) => {
            if let Some(after) = &m.after {
                max_len("after", after, BUCKET_NAME_BYTES_MAX)?;
            }
            if m.limit == 0 || m.limit > BUCKET_LIST_MAX {
                return Err(DecodeError::OutOfRange {
                    field: "limit",
                    value: u64::from(m.limit),
                    allowed: "1..=BUCKET_LIST_MAX",
                });
            }
        }
        Decoded::Response(Response::ListBucketsOk(m)) => {
            count("buckets", m.buckets.len(), BUCKET_LIST_MAX as usize)?;
            for b in &m.buckets {
                max_len("bucket name", &b.name, BUCKET_NAME_BYTES_MAX)?;
                max_len("owner", &b.owner, OWNER_BYTES_MAX)?;
            }
        }
        Decoded::Request(Request::NodeStatus(_)) => {}
        Decoded::Response(Response::GetShardOk(m)) => check_meta(opcode, &m.meta)?,
        Decoded::Response(Response::HeadOk(m)) => {
            if let Some(meta) = &m.meta {
                check_meta(opcode, meta)?;
            }
            if m.purged.len() > VERSION_LIST_MAX {
                return Err(DecodeError::TooManyEntries {
                    field: "purged",
                    count: m.purged.len(),
                    max: VERSION_LIST_MAX,
                });
            }
        }
        Decoded::Response(Response::ListVersionsOk(m)) => {
            if m.entries.len() > LIST_LIMIT_MAX as usize {
                return Err(DecodeError::TooManyEntries {
                    field: "entries",
                    count: m.entries.len(),
                    max: LIST_LIMIT_MAX as usize,
                });
            }
        }
        Decoded::Response(Response::ListOk(m)) => {
            let count = m.entries.len() + m.common_prefixes.len();
            if count > LIST_LIMIT_MAX as usize {
                return Err(DecodeError::TooManyEntries { field: "entries", count, max: LIST_LIMIT_MAX as usize });
            }
        }
        Decoded::Response(Response::NodeStatusOk(m)) => {
            if m.cores.len() > CORES_PER_NODE_MAX {
                return Err(DecodeError::TooManyEntries {
                    field: "cores",
                    count: m.cores.len(),
                    max: CORES_PER_NODE_MAX,
                });
            }
            let targets: usize = m.cores.iter().map(|c| c.targets.len()).sum();
            if targets > TARGETS_PER_NODE_MAX {
                return Err(DecodeError::TooManyEntries {
                    field: "targets",
                    count: targets,
                    max: TARGETS_PER_NODE_MAX,
                });
            }
        }
        Decoded::Response(Response::Error(m)) => max_len("detail", &m.detail, ERROR_DETAIL_BYTES_MAX)?,
        Decoded::Response(
            Response::PutShardOk(_)
            | Response::DeleteOk(_)
            | Response::CreateBucketOk(_)
            | Response::GetBucketOk(_)
            | Response::CommitOk(_)
            | Response::MapOk(_)
            | Response::RepairStatusOk(_),
        ) => {}
    }
    Ok(())
}

/// Serialize any serde value with postcard; for records stored on disk
/// by the node, which share these types.
pub fn to_postcard<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}
