//! The core crate's error type: only parse errors of its own vocabulary.

/// What kind of failure an [`Error`] is; drives whether a caller retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Input (configuration, a stored checkpoint) could not be understood. Not retryable.
    InvalidInput,
}

/// An error from the core vocabulary (e.g. a malformed LSN string).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An invalid-input error with a message that says what to fix.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}
