//! The sink crate's error type, with a kind that tells the caller whether to retry.
//! Each destination classifies its failures where they arise, from typed errors and
//! codes (SQLSTATEs, object-store variants), never from message text.

/// The broad cause of an [`Error`], which decides the retry rule. Only
/// [`ErrorKind::Unavailable`] is retried; every other kind stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The storage could not be reached or failed transiently (a lost connection, a
    /// server restarting, too many connections, a deadlock or serialization failure, a
    /// file locked by another process): retried with backoff.
    Unavailable,
    /// Configuration is wrong (bad URL, unsupported format, a statement the destination
    /// cannot run): not retried; fix and rerun.
    InvalidConfig,
    /// The destination refused the credentials, or its role lacks a privilege: not
    /// retried; fix the role or the credentials and rerun.
    Denied,
    /// Stored state could not be understood or contradicts this run: not retried; needs
    /// a person.
    Corrupt,
    /// Data could not be encoded (a bug or an unsupported value): not retried; needs a
    /// person.
    Encode,
}

impl ErrorKind {
    /// Whether an error of this kind may go away by itself, so the run retries it.
    pub fn is_transient(self) -> bool {
        self == ErrorKind::Unavailable
    }
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

/// How an object-store failure is retried: a request the store refused for what it is
/// (credentials, a missing object, a bad path, an unsupported operation) is a
/// configuration problem; every other failure (connection refused or reset, timeouts,
/// 5xx, throttling) is transient. With a hint for the user.
fn object_store_kind(e: &object_store::Error) -> (ErrorKind, &'static str) {
    match e {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => (
            ErrorKind::InvalidConfig,
            "; check destination.credentials (aws_access_key_id, aws_secret_access_key, …) and the bucket's permissions",
        ),
        object_store::Error::NotFound { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. } => (ErrorKind::InvalidConfig, ""),
        _ => (ErrorKind::Unavailable, ""),
    }
}

/// The kind the first object-store or I/O error in `e`'s chain of causes implies (see
/// [`object_store_kind`]; I/O errors are transient), if there is one. Libraries above
/// object_store (parquet, deltalake) wrap its errors, often several layers deep: a lost
/// connection under a Parquet write or a Delta commit is as transient as a direct one.
pub(crate) fn cause_kind(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(os) = c.downcast_ref::<object_store::Error>() {
            return Some(object_store_kind(os).0);
        }
        if c.downcast_ref::<std::io::Error>().is_some() {
            return Some(ErrorKind::Unavailable);
        }
        cause = c.source();
    }
    None
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        let (kind, hint) = object_store_kind(&e);
        Error::new(kind, format!("object storage: {e}{hint}")).with_source(e)
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        // The Parquet reader and writer reach object storage through object_store; its
        // errors come back as `ParquetError::External`.
        match cause_kind(&e) {
            Some(kind) => {
                Error::new(kind, format!("object storage, under Parquet: {e}")).with_source(e)
            }
            None => Error::new(ErrorKind::Encode, "writing Parquet failed").with_source(e),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "error sending request: connection refused".into(),
        }
    }

    #[test]
    fn object_store_failures_under_parquet_are_transient() {
        let e = Error::from(parquet::errors::ParquetError::External(Box::new(refused())));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = Error::from(parquet::errors::ParquetError::External(Box::new(io)));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        // A missing object is no outage; a bad file is no store failure at all.
        let missing = object_store::Error::NotFound {
            path: "x".into(),
            source: "404".into(),
        };
        let e = Error::from(parquet::errors::ParquetError::External(Box::new(missing)));
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        let e = Error::from(parquet::errors::ParquetError::General("bad footer".into()));
        assert_eq!(e.kind(), ErrorKind::Encode);
    }

    #[test]
    fn the_cause_chain_is_searched() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] object_store::Error);
        assert_eq!(cause_kind(&Outer(refused())), Some(ErrorKind::Unavailable));
        assert_eq!(cause_kind(&std::fmt::Error), None);
    }
}
