//! A small PostgreSQL replication-protocol session (`replication=database`).
//!
//! tokio-postgres does not speak the replication protocol, so this module does: TCP or
//! Unix-socket connect, TLS negotiation (SSLRequest, then rustls, per [`crate::tls`]),
//! the startup packet (with the session settings the walsender's
//! output functions use: UTF8, ISO dates, UTC, hex bytea, shortest exact floats),
//! authentication (trust, cleartext, MD5, SCRAM-SHA-256 via `postgres-protocol`), simple
//! queries for replication commands, and the CopyBoth stream of START_REPLICATION.
//!
//! Frames are read into one growing buffer and handed out as zero-copy [`Bytes`]. Nothing
//! here panics on server input, and the password never appears in an error or a log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pgcdc_core::{quote_ident, quote_literal, Lsn};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::config::Host;

use crate::tls::{SslMode, TlsOptions};

/// Errors of a replication session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The connection failed or broke (transient).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server reported an error.
    #[error("{message} ({code}){}{}", detail.as_ref().map(|d| format!("; detail: {d}")).unwrap_or_default(), hint.as_ref().map(|h| format!("; hint: {h}")).unwrap_or_default())]
    Server {
        /// SQLSTATE.
        code: String,
        /// Primary message.
        message: String,
        /// DETAIL, if any.
        detail: Option<String>,
        /// HINT, if any.
        hint: Option<String>,
    },
    /// Authentication could not proceed (what to set is in the message).
    #[error("authentication: {0}")]
    Auth(String),
    /// The server sent something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// TLS could not be set up or was refused (what to fix is in the message).
    #[error("TLS: {0}")]
    Tls(String),
}

type Result<T, E = WireError> = std::result::Result<T, E>;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Facts from IDENTIFY_SYSTEM.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    /// The cluster's unique system identifier.
    pub system_id: String,
    /// Current timeline.
    pub timeline: u32,
    /// Current WAL flush position.
    pub xlogpos: Lsn,
    /// Database of this connection.
    pub dbname: Option<String>,
}

/// The result of CREATE_REPLICATION_SLOT.
#[derive(Debug, Clone)]
pub struct CreatedSlot {
    /// Slot name.
    pub slot_name: String,
    /// The LSN from which the slot streams.
    pub consistent_point: Lsn,
    /// Exported snapshot name (with [`SnapshotAction::Export`]).
    pub snapshot_name: Option<String>,
    /// Output plugin.
    pub output_plugin: String,
}

/// What CREATE_REPLICATION_SLOT does with its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Export it for other sessions (`SET TRANSACTION SNAPSHOT`).
    Export,
    /// No snapshot.
    NoExport,
    /// Use it in this session's transaction.
    Use,
}

/// A connection in replication mode, before streaming.
pub struct ReplicationConnection {
    io: Box<dyn Stream>,
    buf: BytesMut,
    out: BytesMut,
    params: Vec<(String, String)>,
}

/// One frame: tag and body.
struct Frame {
    tag: u8,
    body: Bytes,
}

impl ReplicationConnection {
    /// Connects and authenticates, trying each host of `config` in turn.
    pub async fn connect(config: &tokio_postgres::Config, tls: &TlsOptions) -> Result<Self> {
        let rustls = tls
            .client_config()
            .map_err(|e| WireError::Tls(e.to_string()))?
            .map(std::sync::Arc::new);
        let hosts = config.get_hosts();
        let ports = config.get_ports();
        let timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let mut last = None;
        for (i, host) in hosts.iter().enumerate() {
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            let attempt = open(host, port, tls.mode, rustls.as_ref());
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(io)) => return Self::startup(io, config).await,
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(WireError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connect timed out after {timeout:?}"),
                    )))
                }
            }
        }
        Err(last.unwrap_or_else(|| WireError::Protocol("no host to connect to".into())))
    }

    async fn startup(io: Box<dyn Stream>, config: &tokio_postgres::Config) -> Result<Self> {
        let mut conn = ReplicationConnection {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(1024),
            params: Vec::new(),
        };
        let user = config.get_user().unwrap_or("postgres");
        let db = config.get_dbname().unwrap_or(user);
        let app = config.get_application_name().unwrap_or("pgcdc");
        let params = [
            ("user", user),
            ("database", db),
            ("replication", "database"),
            ("application_name", app),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("IntervalStyle", "postgres"),
            ("extra_float_digits", "3"),
            ("bytea_output", "hex"),
        ];
        frontend::startup_message(params.iter().copied(), &mut conn.out)?;
        conn.flush().await?;
        conn.authenticate(user, config.get_password()).await?;
        loop {
            let f = conn.read_frame().await?;
            match f.tag {
                b'S' => {
                    let mut b = f.body;
                    let name = cstr(&mut b)?;
                    let value = cstr(&mut b)?;
                    conn.params.push((name, value));
                }
                b'K' | b'N' => {}
                b'Z' => return Ok(conn),
                b'E' => return Err(server_error(f.body)),
                t => {
                    return Err(WireError::Protocol(format!(
                        "unexpected message '{}' during startup",
                        t as char
                    )))
                }
            }
        }
    }

    async fn authenticate(&mut self, user: &str, password: Option<&[u8]>) -> Result<()> {
        let need_password = || {
            WireError::Auth(
                "the server asks for a password; set it in source.url or PGPASSWORD".into(),
            )
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let f = self.read_frame().await?;
            if f.tag == b'E' {
                return Err(server_error(f.body));
            }
            if f.tag != b'R' {
                return Err(WireError::Protocol(format!(
                    "expected authentication, got '{}'",
                    f.tag as char
                )));
            }
            let mut b = f.body;
            let code = get_i32(&mut b)?;
            match code {
                0 => return Ok(()),
                3 => {
                    let pw = password.ok_or_else(need_password)?;
                    frontend::password_message(pw, &mut self.out)?;
                }
                5 => {
                    let pw = password.ok_or_else(need_password)?;
                    if b.remaining() < 4 {
                        return Err(WireError::Protocol("short MD5 salt".into()));
                    }
                    let salt = [b.get_u8(), b.get_u8(), b.get_u8(), b.get_u8()];
                    let hash = postgres_protocol::authentication::md5_hash(user.as_bytes(), pw, salt);
                    frontend::password_message(hash.as_bytes(), &mut self.out)?;
                }
                10 => {
                    let pw = password.ok_or_else(need_password)?;
                    let mut mechs = Vec::new();
                    while b.has_remaining() {
                        let m = cstr(&mut b)?;
                        if m.is_empty() {
                            break;
                        }
                        mechs.push(m);
                    }
                    if !mechs.iter().any(|m| m == "SCRAM-SHA-256") {
                        return Err(WireError::Auth(format!("the server offers only {mechs:?}; pgcdc supports SCRAM-SHA-256")));
                    }
                    let s = ScramSha256::new(pw, ChannelBinding::unsupported());
                    frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut self.out)?;
                    scram = Some(s);
                }
                11 => {
                    let s = scram.as_mut().ok_or_else(|| WireError::Protocol("SASL continue without start".into()))?;
                    s.update(&b).map_err(|e| WireError::Auth(format!("SCRAM exchange failed: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.out)?;
                }
                12 => {
                    let s = scram.as_mut().ok_or_else(|| WireError::Protocol("SASL final without start".into()))?;
                    s.finish(&b).map_err(|e| WireError::Auth(format!("SCRAM server signature invalid: {e}")))?;
                    continue;
                }
                other => return Err(WireError::Auth(format!("authentication method {other} is not supported; use scram-sha-256, md5, password or trust"))),
            }
            self.flush().await?;
        }
    }

    /// `server_version_num`-style number from the server_version parameter.
    pub fn server_version_num(&self) -> Option<u32> {
        parse_version(self.parameter("server_version")?)
    }

    /// A parameter the server reported at startup.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    async fn flush(&mut self) -> Result<()> {
        self.io.write_all(&self.out).await?;
        self.io.flush().await?;
        self.out.clear();
        Ok(())
    }

    async fn read_frame(&mut self) -> Result<Frame> {
        read_frame(&mut self.io, &mut self.buf).await
    }

    /// Runs a simple query; returns the data rows of all result sets as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        frontend::query(sql, &mut self.out)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let f = self.read_frame().await?;
            match f.tag {
                b'D' => rows.push(data_row(f.body)?),
                b'E' => error = Some(server_error(f.body)),
                b'Z' => break,
                b'T' | b'C' | b'I' | b'N' | b'S' => {}
                t => {
                    return Err(WireError::Protocol(format!(
                        "unexpected message '{}' after a query",
                        t as char
                    )))
                }
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// IDENTIFY_SYSTEM.
    pub async fn identify_system(&mut self) -> Result<SystemInfo> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| WireError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let col = |i: usize| row.get(i).cloned().flatten();
        Ok(SystemInfo {
            system_id: col(0).ok_or_else(|| WireError::Protocol("no systemid".into()))?,
            timeline: col(1).and_then(|t| t.parse().ok()).unwrap_or(0),
            xlogpos: col(2).and_then(|l| l.parse().ok()).unwrap_or_default(),
            dbname: col(3),
        })
    }

    /// CREATE_REPLICATION_SLOT for pgoutput.
    pub async fn create_logical_slot(
        &mut self,
        slot: &str,
        temporary: bool,
        snapshot: SnapshotAction,
    ) -> Result<CreatedSlot> {
        let new_syntax = self.server_version_num().unwrap_or(0) >= 150000;
        let action = match (snapshot, new_syntax) {
            (SnapshotAction::Export, true) => "(SNAPSHOT 'export')",
            (SnapshotAction::NoExport, true) => "(SNAPSHOT 'nothing')",
            (SnapshotAction::Use, true) => "(SNAPSHOT 'use')",
            (SnapshotAction::Export, false) => "EXPORT_SNAPSHOT",
            (SnapshotAction::NoExport, false) => "NOEXPORT_SNAPSHOT",
            (SnapshotAction::Use, false) => "USE_SNAPSHOT",
        };
        let sql = format!(
            "CREATE_REPLICATION_SLOT {}{} LOGICAL pgoutput {action}",
            quote_ident(slot),
            if temporary { " TEMPORARY" } else { "" }
        );
        let rows = self.simple_query(&sql).await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| WireError::Protocol("CREATE_REPLICATION_SLOT returned no row".into()))?;
        let col = |i: usize| row.get(i).cloned().flatten();
        Ok(CreatedSlot {
            slot_name: col(0).unwrap_or_else(|| slot.to_string()),
            consistent_point: col(1)
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| WireError::Protocol("no consistent point".into()))?,
            snapshot_name: col(2),
            output_plugin: col(3).unwrap_or_else(|| "pgoutput".into()),
        })
    }

    /// START_REPLICATION … LOGICAL; the connection becomes a [`ReplicationStream`].
    pub async fn start_replication(
        mut self,
        slot: &str,
        start: Lsn,
        options: &[(&str, &str)],
    ) -> Result<ReplicationStream> {
        let opts = options
            .iter()
            .map(|(k, v)| format!("{} {}", quote_ident(k), quote_literal(v)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} ({opts})",
            quote_ident(slot)
        );
        frontend::query(&sql, &mut self.out)?;
        self.flush().await?;
        loop {
            let f = self.read_frame().await?;
            match f.tag {
                b'W' => break,
                b'E' => {
                    let e = server_error(f.body);
                    // Drain to ReadyForQuery so the error is the whole story.
                    return Err(e);
                }
                b'N' | b'S' => {}
                t => {
                    return Err(WireError::Protocol(format!(
                        "expected CopyBothResponse, got '{}'",
                        t as char
                    )))
                }
            }
        }
        Ok(ReplicationStream {
            conn: self,
            done: false,
        })
    }

    /// Sends Terminate and closes.
    pub async fn close(mut self) -> Result<()> {
        frontend::terminate(&mut self.out);
        self.flush().await?;
        let _ = self.io.shutdown().await;
        Ok(())
    }
}

/// The CopyBoth stream of a started replication.
pub struct ReplicationStream {
    conn: ReplicationConnection,
    done: bool,
}

impl ReplicationStream {
    /// The next CopyData payload ('w' XLogData or 'k' keepalive), or None once the server ended the copy.
    pub async fn next_message(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        loop {
            let f = self.conn.read_frame().await?;
            match f.tag {
                b'd' => return Ok(Some(f.body)),
                b'c' | b'C' => {
                    self.done = true;
                    return Ok(None);
                }
                b'E' => return Err(server_error(f.body)),
                b'N' => tracing::debug!("notice during replication"),
                b'S' => {}
                t => {
                    return Err(WireError::Protocol(format!(
                        "unexpected message '{}' while streaming",
                        t as char
                    )))
                }
            }
        }
    }

    /// Sends a standby status update.
    pub async fn send_status(
        &mut self,
        write: Lsn,
        flush: Lsn,
        apply: Lsn,
        reply_requested: bool,
    ) -> Result<()> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(write.0);
        body.put_u64(flush.0);
        body.put_u64(apply.0);
        body.put_i64(pg_now_micros());
        body.put_u8(u8::from(reply_requested));
        frontend::CopyData::new(body.freeze())?.write(&mut self.conn.out);
        self.conn.flush().await
    }

    /// Ends streaming: CopyDone, drain to ReadyForQuery, Terminate.
    pub async fn finish(mut self) -> Result<()> {
        frontend::copy_done(&mut self.conn.out);
        self.conn.flush().await?;
        let drain = async {
            loop {
                let f = self.conn.read_frame().await?;
                if f.tag == b'Z' {
                    return Ok::<(), WireError>(());
                }
                if f.tag == b'E' {
                    return Err(server_error(f.body));
                }
            }
        };
        // A server mid-transaction may take a moment; never hang on shutdown.
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        self.conn.close().await
    }
}

async fn open(
    host: &Host,
    port: u16,
    mode: SslMode,
    rustls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Stream>> {
    match host {
        Host::Tcp(h) => {
            let mut s = tokio::net::TcpStream::connect((h.as_str(), port)).await?;
            s.set_nodelay(true)?;
            let Some(rustls) = rustls else {
                return Ok(Box::new(s));
            };
            // SSLRequest: length 8, code 80877103; the server answers one byte.
            s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
            let mut answer = [0u8; 1];
            s.read_exact(&mut answer).await?;
            match answer[0] {
                b'S' => {
                    let name = crate::tls::server_name(h)
                        .map_err(|e| WireError::Tls(e.to_string()))?;
                    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(rustls));
                    let tls = connector.connect(name, s).await.map_err(|e| {
                        WireError::Tls(format!(
                            "handshake with {h}:{port} failed: {e}; check sslmode and sslrootcert in source.url"
                        ))
                    })?;
                    Ok(Box::new(tls))
                }
                b'N' if !mode.required() => Ok(Box::new(s)),
                b'N' => Err(WireError::Tls(format!(
                    "the server at {h}:{port} does not accept TLS connections, and sslmode requires TLS; enable ssl on the server or lower sslmode"
                ))),
                other => Err(WireError::Protocol(format!(
                    "unexpected answer {other:#04x} to the TLS request"
                ))),
            }
        }
        #[cfg(unix)]
        Host::Unix(dir) => {
            // As libpq: no TLS over a Unix socket.
            let _ = (mode, rustls);
            let path = dir.join(format!(".s.PGSQL.{port}"));
            Ok(Box::new(tokio::net::UnixStream::connect(path).await?))
        }
        #[cfg(not(unix))]
        Host::Unix(_) => Err(WireError::Protocol(
            "Unix sockets are not supported on this platform".into(),
        )),
    }
}

async fn read_frame(io: &mut Box<dyn Stream>, buf: &mut BytesMut) -> Result<Frame> {
    loop {
        if buf.len() >= 5 {
            let tag = buf[0];
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len < 4 {
                return Err(WireError::Protocol(format!("invalid frame length {len}")));
            }
            if buf.len() > len {
                let mut frame = buf.split_to(len + 1);
                frame.advance(5);
                return Ok(Frame {
                    tag,
                    body: frame.freeze(),
                });
            }
            buf.reserve(len + 1 - buf.len());
        } else {
            buf.reserve(64 * 1024);
        }
        if buf.capacity() - buf.len() < 8192 {
            buf.reserve(64 * 1024);
        }
        let n = io.read_buf(buf).await?;
        if n == 0 {
            return Err(WireError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
    }
}

fn get_i32(b: &mut Bytes) -> Result<i32> {
    if b.remaining() < 4 {
        return Err(WireError::Protocol("message too short".into()));
    }
    Ok(b.get_i32())
}

fn cstr(b: &mut Bytes) -> Result<String> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| WireError::Protocol("unterminated string".into()))?;
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    b.advance(end + 1);
    Ok(s)
}

fn data_row(mut b: Bytes) -> Result<Vec<Option<String>>> {
    if b.remaining() < 2 {
        return Err(WireError::Protocol("short DataRow".into()));
    }
    let n = b.get_i16().max(0) as usize;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        let len = get_i32(&mut b)?;
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if b.remaining() < len {
            return Err(WireError::Protocol("short DataRow value".into()));
        }
        row.push(Some(String::from_utf8_lossy(&b[..len]).into_owned()));
        b.advance(len);
    }
    Ok(row)
}

fn server_error(mut b: Bytes) -> WireError {
    let (mut code, mut message, mut detail, mut hint) = (String::new(), String::new(), None, None);
    while b.has_remaining() {
        let field = b.get_u8();
        if field == 0 {
            break;
        }
        let Ok(value) = cstr(&mut b) else { break };
        match field {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = Some(value),
            b'H' => hint = Some(value),
            _ => {}
        }
    }
    WireError::Server {
        code,
        message,
        detail,
        hint,
    }
}

fn parse_version(v: &str) -> Option<u32> {
    let digits: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = digits
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    if major >= 10 {
        Some(major * 10000 + minor)
    } else {
        let patch = parts.next().flatten().unwrap_or(0);
        Some(major * 10000 + minor * 100 + patch)
    }
}

/// Microseconds since 2000-01-01 (PostgreSQL's epoch), for status updates.
fn pg_now_micros() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(unix.as_micros()).unwrap_or(i64::MAX) - pgcdc_core::PG_EPOCH_OFFSET_MICROS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_server_version_num() {
        assert_eq!(
            parse_version("15.18 (Debian 15.18-0+deb12u1)"),
            Some(150018)
        );
        assert_eq!(parse_version("16.2"), Some(160002));
        assert_eq!(parse_version("18beta1"), Some(180000));
        assert_eq!(parse_version("9.6.24"), Some(90624));
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn server_errors_keep_code_message_detail_and_hint() {
        let mut b = BytesMut::new();
        for (f, v) in [
            (b'S', "ERROR"),
            (b'C', "42704"),
            (b'M', "replication slot \"x\" does not exist"),
            (b'H', "create it"),
        ] {
            b.put_u8(f);
            b.put_slice(v.as_bytes());
            b.put_u8(0);
        }
        b.put_u8(0);
        let e = server_error(b.freeze());
        assert_eq!(
            e.to_string(),
            "replication slot \"x\" does not exist (42704); hint: create it"
        );
        // Truncated input never panics.
        let _ = server_error(Bytes::from_static(b"C4270"));
        assert!(data_row(Bytes::from_static(&[0, 2, 0, 0, 0, 9, b'a'])).is_err());
    }
}
