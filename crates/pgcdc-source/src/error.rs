//! The source crate's error type: one struct with a [`ErrorKind`] that drives retries.

/// The broad cause of an [`Error`], which decides the retry rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server could not be reached or the connection broke: retry with backoff.
    Connection,
    /// Login failed: fix credentials.
    Auth,
    /// The server is not set up for logical replication (wal_level, slots, senders): fix settings.
    ServerConfig,
    /// The role lacks a privilege: grant it.
    Privilege,
    /// A table, schema, slot or publication is missing or unusable: fix configuration or run init.
    Setup,
    /// The slot is lost or was consumed elsewhere: needs the documented recovery.
    Slot,
    /// The server sent something we cannot decode: a bug or an unsupported server.
    Protocol,
    /// A value could not be converted by the configured policy.
    Value,
    /// Any other error the server reported.
    Server,
}

impl ErrorKind {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Connection)
    }
}

/// An error talking to PostgreSQL. The message says what to fix; the cause is `source`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The server's SQLSTATE, when the server reported the error.
    code: Option<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias for source operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message that names what to fix.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            code: None,
            source: None,
        }
    }

    /// Attaches the cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The SQLSTATE the server reported, if the server reported this error.
    pub fn sqlstate(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Wraps a tokio-postgres error from `what` (e.g. "reading pg_replication_slots").
    pub fn from_pg(what: &str, e: tokio_postgres::Error) -> Self {
        let (kind, detail) = match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let kind = match code {
                    "42501" => ErrorKind::Privilege,
                    "28000" | "28P01" => ErrorKind::Auth,
                    // Shutting down, crashed, starting up, too many connections, and
                    // the whole connection-exception class: the server will be back.
                    "57P01" | "57P02" | "57P03" | "53300" => ErrorKind::Connection,
                    c if c.starts_with("08") => ErrorKind::Connection,
                    "55000" | "42704" | "42P01" | "3F000" | "3D000" => ErrorKind::Setup,
                    _ => ErrorKind::Server,
                };
                let mut d = format!("{} ({code})", db.message());
                if let Some(h) = db.hint() {
                    d.push_str(&format!("; hint: {h}"));
                }
                (kind, d)
            }
            None if e.is_closed() => (
                ErrorKind::Connection,
                "the connection was closed".to_string(),
            ),
            None => (ErrorKind::Connection, e.to_string()),
        };
        let code = e.as_db_error().map(|db| db.code().code().to_string());
        let mut err = Error::new(kind, format!("{what}: {detail}")).with_source(e);
        err.code = code;
        err
    }
}

impl From<crate::wire::WireError> for Error {
    fn from(e: crate::wire::WireError) -> Self {
        let kind = match &e {
            crate::wire::WireError::Io(_) => ErrorKind::Connection,
            crate::wire::WireError::Auth(_) => ErrorKind::Auth,
            crate::wire::WireError::Tls(_) => ErrorKind::Setup,
            crate::wire::WireError::Server { code, .. } => match code.as_str() {
                "42501" => ErrorKind::Privilege,
                "28000" | "28P01" => ErrorKind::Auth,
                "55000" | "42704" => ErrorKind::Slot,
                "57P01" | "57P02" | "57P03" | "53300" => ErrorKind::Connection,
                c if c.starts_with("08") => ErrorKind::Connection,
                _ => ErrorKind::Server,
            },
            _ => ErrorKind::Protocol,
        };
        let code = match &e {
            crate::wire::WireError::Server { code, .. } => Some(code.clone()),
            _ => None,
        };
        let mut err = Error::new(kind, format!("replication connection: {e}")).with_source(e);
        err.code = code;
        err
    }
}
