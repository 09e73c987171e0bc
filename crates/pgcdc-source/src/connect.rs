//! Ordinary SQL connections (catalog queries, setup, status): tokio-postgres, with errors
//! that say what to fix and whether a retry can help, over TLS as [`crate::tls`] decides.
//! Also the connection settings themselves: a connection URL (or key=value string) read
//! as libpq reads it ([`connection_config`]: `PG*` variables for what it leaves out, the
//! password file), and the redaction of its password from messages. Replication
//! connections are in [`crate::wire`].
//!
//! A failed connection is classified from its SQLSTATE or the failure's type, never from
//! message text: bad credentials (28000, 28P01), a missing privilege (42501), a missing
//! database (3D000) and TLS failures are permanent; a refused, reset or timed-out
//! connection, a server shutting down or starting up (57P01-57P03), out of connection
//! slots (53300) or any connection exception (08xxx) is [`ErrorKind::Connection`],
//! worth a retry.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

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
            "42501" => (ErrorKind::Privilege, ""),
            // Shutting down, crashed, starting up; connection exceptions.
            "57P01" | "57P02" | "57P03" => (ErrorKind::Connection, ""),
            c if c.starts_with("08") => (ErrorKind::Connection, ""),
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
        network_failure_kind(&e),
        format!("cannot connect to PostgreSQL at {target}: {e}; is the server running, and are host and port in source.url right?"),
    )
    .with_source(e)
}

/// The kind of a connection failure the server did not report itself: an I/O failure
/// (refused, reset, timed out, a name lookup) or a connection closed early is transient;
/// a TLS failure (a certificate rustls refused, a server without TLS when sslmode
/// requires it) and every other failure (settings, authentication exchange) are not.
fn network_failure_kind(e: &tokio_postgres::Error) -> ErrorKind {
    if e.is_closed() {
        return ErrorKind::Connection;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            let tls = io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            let misuse = matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            );
            return if tls || misuse {
                ErrorKind::Setup
            } else {
                ErrorKind::Connection
            };
        }
        cause = c.source();
    }
    ErrorKind::Setup
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

/// Parses a connection URL (or key=value string) given as `option` (for messages) and
/// fills what it leaves out from libpq's variables in `env` (`PGHOST`, `PGPORT`, `PGUSER`,
/// `PGPASSWORD`, `PGDATABASE`, `PGSSL*`, and the password file `PGPASSFILE`, else
/// `$HOME/.pgpass`), then libpq's defaults. No message holds the URL's password.
pub fn connection_config(
    option: &str,
    url: Option<&str>,
    env: &[(String, String)],
) -> Result<(tokio_postgres::Config, TlsOptions)> {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let secrets: Vec<String> = url.and_then(password_of).into_iter().collect();
    // libpq's TLS parameters tokio-postgres does not know are taken out first.
    let (url, mut tls) = match url {
        Some(u) => {
            let (rest, tls) = crate::tls::split_tls_params(u).map_err(|e| {
                config_error(format!("{option}: {}", redact(&e.to_string(), &secrets)))
            })?;
            (Some(rest), tls)
        }
        None => (None, TlsOptions::default()),
    };
    let url = url.as_deref();
    tls_from_env(&mut tls, url.is_some_and(|u| u.contains("sslmode")), &get)?;
    let mut cfg = match url {
        Some(u) => tokio_postgres::Config::from_str(u).map_err(|e| {
            // tokio-postgres says which option is wrong only in the error's source.
            let why = std::error::Error::source(&e)
                .map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
            config_error(format!(
                "{option} is not a valid PostgreSQL URL (postgresql://user:password@host:port/db) or key=value string: {}",
                redact(&why, &secrets)
            ))
        })?,
        None => tokio_postgres::Config::new(),
    };
    fill_from_env(&mut cfg, &get)?;
    Ok((cfg, tls))
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Setup, message)
}

/// `PGSSLMODE` (unless the URL has an sslmode) and the certificate files the URL leaves out.
fn tls_from_env<'a>(
    tls: &mut TlsOptions,
    mode_in_url: bool,
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<()> {
    if !mode_in_url {
        if let Some(m) = get("PGSSLMODE") {
            tls.mode = SslMode::parse(m).ok_or_else(|| {
                config_error(format!("PGSSLMODE '{m}' is not one of disable, allow, prefer, require, verify-ca, verify-full"))
            })?;
        }
    }
    for (var, slot) in [
        ("PGSSLROOTCERT", &mut tls.root_cert),
        ("PGSSLCERT", &mut tls.client_cert),
        ("PGSSLKEY", &mut tls.client_key),
    ] {
        if slot.is_none() {
            *slot = get(var).map(PathBuf::from);
        }
    }
    Ok(())
}

/// Host, port, user, password, database from `PG*` (else libpq's defaults), the password
/// file, and pgcdc's application name and connect timeout, where `cfg` has none.
fn fill_from_env<'a>(
    cfg: &mut tokio_postgres::Config,
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<()> {
    if cfg.get_hosts().is_empty() {
        cfg.host(get("PGHOST").unwrap_or("localhost"));
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = get("PGPORT") {
            cfg.port(
                p.parse()
                    .map_err(|_| config_error(format!("PGPORT '{p}' is not a port number")))?,
            );
        }
    }
    if cfg.get_user().is_none() {
        let user = get("PGUSER").or_else(|| get("USER"));
        cfg.user(user.unwrap_or("postgres"));
    }
    if cfg.get_password().is_none() {
        if let Some(p) = get("PGPASSWORD") {
            cfg.password(p);
        }
    }
    if cfg.get_dbname().is_none() {
        let db = get("PGDATABASE")
            .map(str::to_string)
            .or_else(|| cfg.get_user().map(str::to_string));
        if let Some(db) = db {
            cfg.dbname(db);
        }
    }
    if cfg.get_password().is_none() {
        // libpq's password file: PGPASSFILE, else ~/.pgpass.
        let file = get("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|h| Path::new(h).join(".pgpass")));
        if let Some(p) = file.and_then(|f| pgpass_password(&f, cfg)) {
            cfg.password(p);
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("pgcdc");
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    Ok(())
}

/// The password for `cfg`'s first host, port, database and user in a libpq password file
/// (`host:port:database:user:password` lines, `*` matching anything, `\` escaping `:`).
/// As libpq does, a file that others can read is ignored, with a warning.
fn pgpass_password(file: &Path, cfg: &tokio_postgres::Config) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "password file {} has group or world access; it is ignored (chmod 0600 it)",
                file.display()
            );
            return None;
        }
    }
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let want = [
        host.as_str(),
        port.as_str(),
        cfg.get_dbname().unwrap_or_default(),
        cfg.get_user().unwrap_or_default(),
    ];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(pgpass_fields)
        .find(|f| {
            f.len() == 5
                && f.iter()
                    .zip(want)
                    .all(|(field, w)| field == "*" || field == w)
        })
        .and_then(|mut f| f.pop())
}

/// The `:`-separated fields of a password-file line (`\:` and `\\` are escapes).
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

/// The password embedded in a URL, if any (to redact it from messages).
pub fn password_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let p = parsed.password()?;
    let decoded = percent_encoding::percent_decode_str(p)
        .decode_utf8()
        .ok()?
        .to_string();
    Some(decoded)
}

/// Replaces every occurrence of each secret (of 3 characters or more) in `text` with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\ndb\\:host:6543:*:alice:first\n*:*:app:*:pa\\:ss\\\\word\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = |url: &str| {
            vec![
                ("PGPASSFILE".to_string(), file.display().to_string()),
                ("X".to_string(), url.to_string()),
            ]
        };
        let pw = |url: &str| {
            let (cfg, _) = connection_config("source.url", Some(url), &env(url)).unwrap();
            cfg.get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
        };
        assert_eq!(
            pw("postgresql://alice@db%3Ahost:6543/x").as_deref(),
            Some("first")
        );
        assert_eq!(pw("postgresql://bob@h/app").as_deref(), Some("pa:ss\\word"));
        assert_eq!(pw("postgresql://bob:given@h/app").as_deref(), Some("given"));
        assert_eq!(pw("postgresql://bob@h/elsewhere"), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            pw("postgresql://bob@h/app"),
            None,
            "a world-readable file is ignored"
        );
    }

    /// What a one-shot fake server does with the first message it reads.
    #[derive(Clone, Copy)]
    enum Reply {
        /// Refuses the login with this SQLSTATE, as a real server's ErrorResponse.
        Error(&'static str),
        /// Answers an SSLRequest with 'N' (no TLS here).
        NoTls,
    }

    /// A server on a free local port that reads one message, replies, and hangs up.
    async fn fake_server(reply: Reply) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let len = socket.read_i32().await.unwrap();
            let mut body = vec![0; usize::try_from(len - 4).unwrap()];
            socket.read_exact(&mut body).await.unwrap();
            let bytes = match reply {
                Reply::NoTls => b"N".to_vec(),
                Reply::Error(code) => {
                    let mut fields = Vec::new();
                    for (tag, value) in [(b'S', "FATAL"), (b'C', code), (b'M', "refused")] {
                        fields.push(tag);
                        fields.extend_from_slice(value.as_bytes());
                        fields.push(0);
                    }
                    fields.push(0);
                    let mut msg = vec![b'E'];
                    msg.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
                    msg.extend_from_slice(&fields);
                    msg
                }
            };
            socket.write_all(&bytes).await.unwrap();
        });
        port
    }

    async fn connect_kind(port: u16, mode: SslMode) -> ErrorKind {
        let (cfg, _) = connection_config(
            "source.url",
            Some(&format!("postgresql://u:pw@127.0.0.1:{port}/db")),
            &[],
        )
        .unwrap();
        let tls = TlsOptions {
            mode,
            ..TlsOptions::default()
        };
        connect_sql(&cfg, &tls).await.unwrap_err().kind()
    }

    #[tokio::test]
    async fn connection_failures_are_classified_by_sqlstate_and_type() {
        for (code, kind) in [
            ("28P01", ErrorKind::Auth),
            ("28000", ErrorKind::Auth),
            ("42501", ErrorKind::Privilege),
            ("3D000", ErrorKind::Setup),
            ("53300", ErrorKind::Connection),
            ("57P01", ErrorKind::Connection),
            ("57P03", ErrorKind::Connection),
            ("08006", ErrorKind::Connection),
            ("XX000", ErrorKind::Server),
        ] {
            let port = fake_server(Reply::Error(code)).await;
            assert_eq!(connect_kind(port, SslMode::Disable).await, kind, "{code}");
        }
        // sslmode=require against a server without TLS is a setting to fix.
        let port = fake_server(Reply::NoTls).await;
        let kind = connect_kind(port, SslMode::Require).await;
        assert_eq!(kind, ErrorKind::Setup);
        assert!(!kind.is_transient());
        // Nobody listening: worth a retry.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let kind = connect_kind(port, SslMode::Disable).await;
        assert_eq!(kind, ErrorKind::Connection);
        assert!(kind.is_transient());
    }

    #[test]
    fn redact_hides_each_secret() {
        assert_eq!(
            redact("a s3cr@t b s3cr@t", &["s3cr@t".into(), "x".into()]),
            "a *** b ***"
        );
        assert_eq!(
            password_of("postgresql://u:s3cr%40t@h/db").as_deref(),
            Some("s3cr@t")
        );
        assert_eq!(password_of("host=h"), None);
    }
}
