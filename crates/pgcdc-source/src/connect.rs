//! Ordinary SQL connections (catalog queries, setup, status): tokio-postgres, with errors
//! that say what to fix, over TLS as [`crate::tls`] decides. Replication connections are
//! in [`crate::wire`].

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Client, NoTls};

use crate::error::{Error, ErrorKind, Result};
use crate::tls::{SslMode, TlsOptions};

/// Opens a SQL connection and drives it on a background task.
pub async fn connect_sql(config: &tokio_postgres::Config, tls: &TlsOptions) -> Result<Client> {
    let mut config = config.clone();
    config.ssl_mode(match tls.mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    let connected = match tls.client_config()? {
        None => config.connect(NoTls).await.map(drive),
        Some(rustls) => {
            let make = tokio_postgres_rustls::MakeRustlsConnect::new(rustls);
            config.connect(make).await.map(drive)
        }
    };
    connected.map_err(|e| explain_connect_error(&config, e))
}

/// Drives a connection on a background task; hands back its client.
fn drive<S, T>((client, conn): (Client, tokio_postgres::Connection<S, T>)) -> Client
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio_postgres::tls::TlsStream + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "SQL connection ended");
        }
    });
    client
}

/// A clear message for a failed connection: where, and what to check.
fn explain_connect_error(config: &tokio_postgres::Config, e: tokio_postgres::Error) -> Error {
    let target = describe(config);
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let (kind, hint) = match code {
            "28P01" | "28000" => (
                ErrorKind::Auth,
                "check the user and password in source.url (or PGPASSWORD) and pg_hba.conf",
            ),
            "3D000" => (
                ErrorKind::Setup,
                "the database does not exist; check the database name in source.url",
            ),
            "53300" => (
                ErrorKind::Connection,
                "the server has no free connection slots; raise max_connections",
            ),
            _ => (ErrorKind::Server, ""),
        };
        let msg = format!(
            "cannot connect to PostgreSQL at {target}: {} ({code}){}{hint}",
            db.message(),
            if hint.is_empty() { "" } else { "; " }
        );
        return Error::new(kind, msg).with_source(e);
    }
    Error::new(
        ErrorKind::Connection,
        format!("cannot connect to PostgreSQL at {target}: {e}; is the server running, and are host and port in source.url right?"),
    )
    .with_source(e)
}

/// `user@host:port/db`, without the password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// Opens a replication connection and identifies the server (system id, timeline).
pub async fn connect_replication(
    config: &tokio_postgres::Config,
    tls: &TlsOptions,
) -> Result<(crate::wire::ReplicationConnection, crate::wire::SystemInfo)> {
    let mut repl = crate::wire::ReplicationConnection::connect(config, tls).await?;
    let system = repl.identify_system().await?;
    Ok((repl, system))
}
