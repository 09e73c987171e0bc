//! The sink crate's error type, with a kind that tells the caller whether to retry.

/// The broad cause of an [`Error`], which decides the retry rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The storage could not be reached or failed transiently: retry with backoff.
    Unavailable,
    /// Configuration is wrong (bad URL, unsupported format): fix and rerun.
    InvalidConfig,
    /// Stored state could not be understood or contradicts this run: needs a person.
    Corrupt,
    /// Data could not be encoded (a bug or an unsupported value): needs a person.
    Encode,
}

/// An error from a destination. The cause is kept as `source`, not formatted into the message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias for sink operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message saying what happened and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        let (kind, hint) = match &e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => (
                ErrorKind::InvalidConfig,
                "; check destination.credentials (aws_access_key_id, aws_secret_access_key, …) and the bucket's permissions",
            ),
            object_store::Error::NotFound { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. } => (ErrorKind::InvalidConfig, ""),
            _ => (ErrorKind::Unavailable, ""),
        };
        Error::new(kind, format!("object storage: {e}{hint}")).with_source(e)
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::new(ErrorKind::Encode, "writing Parquet failed").with_source(e)
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error::new(ErrorKind::Encode, "encoding Arrow data failed").with_source(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Unavailable, format!("I/O: {e}")).with_source(e)
    }
}
