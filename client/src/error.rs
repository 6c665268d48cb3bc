//! Errors of the SDK. Server answers keep their code; transport failures
//! keep their source.

use tessera_wire::{DecodeError, EncodeError, ErrorCode, HeaderError, ValidationError};

/// Everything that can go wrong in a client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Bad or unreadable configuration.
    #[error("client configuration: {detail}")]
    Config {
        /// What was wrong.
        detail: String,
    },
    /// A bucket name or key failed validation before sending.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Could not reach or keep a connection to the node.
    #[error("connection to {addr} failed: {detail}")]
    Connection {
        /// Node address.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The node's reply was malformed.
    #[error("malformed reply from the node: {0}")]
    BadReplyHeader(#[from] HeaderError),
    /// The node's reply body was malformed.
    #[error("malformed reply body from the node: {0}")]
    BadReplyBody(#[from] DecodeError),
    /// A request could not be encoded (too large).
    #[error("request could not be encoded: {0}")]
    Encode(#[from] EncodeError),
    /// The node answered with another message than the request calls for.
    #[error("unexpected reply {got} to {request}")]
    UnexpectedReply {
        /// Request kind.
        request: &'static str,
        /// What came back.
        got: String,
    },
    /// No such bucket.
    #[error("{detail}")]
    NoSuchBucket {
        /// Server detail.
        detail: String,
    },
    /// No such key or version.
    #[error("{detail}")]
    NoSuchKey {
        /// Server detail.
        detail: String,
    },
    /// The version being read was replaced or purged on the nodes while it
    /// was read (an overwrite in an unversioned bucket); a read of the
    /// latest version retries with the new one before any byte is handed
    /// out.
    #[error("version gone while reading: {detail}")]
    VersionGone {
        /// Which version, and what the nodes said.
        detail: String,
    },
    /// The bucket exists with other settings.
    #[error("{detail}")]
    BucketExists {
        /// Server detail.
        detail: String,
    },
    /// The target holding the object has no room.
    #[error("{detail}")]
    TargetFull {
        /// Server detail.
        detail: String,
    },
    /// Stored data failed its checksum on the node.
    #[error("stored data is corrupt: {detail}")]
    Corrupt {
        /// Server detail.
        detail: String,
    },
    /// Data arrived here with a checksum that does not match.
    #[error("integrity check failed for {what}: expected {expected:#010x}, computed {computed:#010x}")]
    Integrity {
        /// Which object or stripe.
        what: String,
        /// Checksum promised.
        expected: u32,
        /// Checksum of what arrived.
        computed: u32,
    },
    /// A byte range that is empty or reaches outside the object.
    #[error("range of {len} bytes at offset {offset} is empty or outside the object of {size_bytes} bytes")]
    InvalidRange {
        /// Start.
        offset: u64,
        /// Length.
        len: u64,
        /// Object size.
        size_bytes: u64,
    },
    /// The node refused the request for the principal this client's
    /// certificate names (the detail says who may make it).
    #[error("access denied: {detail}")]
    AccessDenied {
        /// Server detail.
        detail: String,
    },
    /// An argument the caller gave breaks a rule (a bucket policy over
    /// its limits, for one); nothing was sent.
    #[error("invalid argument: {detail}")]
    InvalidArgument {
        /// What was wrong.
        detail: String,
    },
    /// Any other error the node reported.
    #[error("node error {code:?}: {detail}")]
    Server {
        /// Error kind.
        code: ErrorCode,
        /// Server detail.
        detail: String,
    },
    /// The request did not finish in time.
    #[error("request timed out after {millis} ms")]
    Timeout {
        /// The timeout.
        millis: u64,
    },
    /// The request was made with another cluster map than the node's.
    #[error("cluster map changed: {detail}")]
    StaleMap {
        /// Server detail.
        detail: String,
    },
    /// Too few targets answered to decide (or to write) safely.
    #[error("unavailable: {detail}")]
    Unavailable {
        /// Which targets and why.
        detail: String,
    },
    /// The map cannot be used by this client.
    #[error("cluster map: {0}")]
    Map(#[from] tessera_wire::MapError),
    /// Reading the upload source failed.
    #[error("reading the upload source failed: {0}")]
    Source(std::io::Error),
    /// Writing the downloaded bytes failed.
    #[error("writing the download failed: {0}")]
    Output(std::io::Error),
}

impl ClientError {
    pub(crate) fn from_server(code: ErrorCode, detail: String) -> ClientError {
        match code {
            ErrorCode::NoSuchBucket => ClientError::NoSuchBucket { detail },
            ErrorCode::NoSuchKey => ClientError::NoSuchKey { detail },
            ErrorCode::BucketExists => ClientError::BucketExists { detail },
            ErrorCode::TargetFull => ClientError::TargetFull { detail },
            ErrorCode::ChecksumMismatch => ClientError::Corrupt { detail },
            ErrorCode::StaleEpoch | ErrorCode::NodeBehind => ClientError::StaleMap { detail },
            ErrorCode::AccessDenied => ClientError::AccessDenied { detail },
            code => ClientError::Server { code, detail },
        }
    }
}
