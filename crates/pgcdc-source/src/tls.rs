//! TLS to PostgreSQL (rustls with the ring provider), with libpq's `sslmode` semantics,
//! for the SQL connections (tokio-postgres) and the replication connection
//! ([`crate::wire`]) alike.
//!
//! | sslmode | TLS | certificate checks |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | if the server offers it, else plain | none |
//! | `require` | always | none (as libpq: with `sslrootcert` set it verifies like `verify-ca`) |
//! | `verify-ca` | always | chain to a trusted root |
//! | `verify-full` | always | chain, and the host name (or IP) in the certificate |
//!
//! Trusted roots: `sslrootcert` (a PEM file), else `~/.postgresql/root.crt` when it
//! exists, else the system's certificate store. `sslcert` + `sslkey` give a client
//! certificate. Unix-socket connections never use TLS (as libpq).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, ErrorKind, Result};

/// libpq's `sslmode`, all five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it; no certificate checks.
    #[default]
    Prefer,
    /// TLS always; no certificate checks (unless a root certificate is given).
    Require,
    /// TLS, certificate chain checked.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling (`allow` counts as `prefer`).
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a server without TLS is refused.
    pub fn required(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

/// The TLS settings of a source (from `source.url` and `PGSSL*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// sslmode.
    pub mode: SslMode,
    /// sslrootcert: trusted CA certificates (PEM).
    pub root_cert: Option<PathBuf>,
    /// sslcert: client certificate chain (PEM).
    pub client_cert: Option<PathBuf>,
    /// sslkey: the client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

impl TlsOptions {
    /// The rustls configuration, or None for `disable`.
    pub fn client_config(&self) -> Result<Option<ClientConfig>> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // None: no certificate checks; Some(check_name).
        let verify = match self.mode {
            SslMode::Disable | SslMode::Prefer => None,
            SslMode::Require if self.root_cert.is_none() => None,
            SslMode::Require | SslMode::VerifyCa => Some(false),
            SslMode::VerifyFull => Some(true),
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("setting up TLS", e))?;
        let builder = match verify {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
            Some(check_name) => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| tls_error("setting up certificate verification", e))?;
                if check_name {
                    builder.with_webpki_verifier(webpki)
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                }
            }
        };
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| config_error(format!("sslkey {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error("loading the client certificate", e))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(config_error(
                    "sslcert and sslkey go together: set both or neither".into(),
                ))
            }
        };
        Ok(Some(config))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        let default = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
            .filter(|p| p.exists());
        if let Some(path) = self.root_cert.clone().or(default) {
            for cert in read_certs(&path, "sslrootcert")? {
                roots
                    .add(cert)
                    .map_err(|e| tls_error("reading sslrootcert", e))?;
            }
        } else {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
        if roots.is_empty() {
            return Err(config_error(format!(
                "sslmode={} needs trusted root certificates: set sslrootcert=/path/to/ca.pem in source.url (or PGSSLROOTCERT)",
                match self.mode {
                    SslMode::VerifyFull => "verify-full",
                    _ => "verify-ca",
                }
            )));
        }
        Ok(roots)
    }
}

/// The server name rustls checks (and sends as SNI) for `host`.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|_| config_error(format!("'{host}' is not a host name TLS can check")))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| config_error(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn config_error(msg: String) -> Error {
    Error::new(ErrorKind::Setup, msg)
}

fn tls_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Setup, format!("{what}: {e}")).with_source(e)
}

/// `prefer` / `require`: encrypted, not authenticated (libpq's behaviour). Handshake
/// signatures are still checked, so the session is at least bound to the certificate.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must reach a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Splits the TLS parameters libpq knows but tokio-postgres does not (`sslmode` with all
/// five values, `sslrootcert`, `sslcert`, `sslkey`) out of a connection string (URL or
/// key=value), returning the rest for tokio-postgres and the options.
pub fn split_tls_params(url: &str) -> Result<(String, TlsOptions)> {
    let mut opts = TlsOptions::default();
    let mut set = |k: &str, v: &str| -> Result<bool> {
        match k {
            "sslmode" => {
                opts.mode = SslMode::parse(v).ok_or_else(|| {
                    config_error(format!(
                        "sslmode '{v}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ))
                })?
            }
            "sslrootcert" => opts.root_cert = Some(PathBuf::from(v)),
            "sslcert" => opts.client_cert = Some(PathBuf::from(v)),
            "sslkey" => opts.client_key = Some(PathBuf::from(v)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), opts));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            if !set(k, &v)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, opts));
    }
    let mut kept = Vec::new();
    for (k, v, raw) in key_values(url)? {
        if !set(&k, &v)? {
            kept.push(raw);
        }
    }
    Ok((kept.join(" "), opts))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The `key=value` pairs of a libpq key/value string with their raw text (values may be
/// single-quoted with `\'` and `\\` escapes).
fn key_values(s: &str) -> Result<Vec<(String, String, String)>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| *b != b'=' && !b.is_ascii_whitespace())
        {
            i += 1;
        }
        let key = s.get(start..i).unwrap_or_default().to_string();
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return Err(config_error(format!(
                "source.url: '{key}' has no value (expected key=value)"
            )));
        }
        i += 1;
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let mut value = Vec::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    Some(b'\\') => {
                        if let Some(c) = bytes.get(i + 1) {
                            value.push(*c);
                        }
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                    None => {
                        return Err(config_error(format!(
                            "source.url: the value of '{key}' has no closing quote"
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = bytes.get(i).filter(|b| !b.is_ascii_whitespace()) {
                value.push(*c);
                i += 1;
            }
        }
        let raw = s.get(start..i).unwrap_or_default().to_string();
        out.push((key, String::from_utf8_lossy(&value).into_owned(), raw));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_split_from_urls_and_key_values() {
        let (rest, o) = split_tls_params(
            "postgresql://u:p%40ss@h:5432/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:p%40ss@h:5432/db?application_name=x");
        assert_eq!(o.mode, SslMode::VerifyFull);
        assert_eq!(o.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        let (rest, o) = split_tls_params(
            r"host=h password='it\'s x' sslmode=verify-ca sslrootcert = '/a b/ca.pem' dbname=d",
        )
        .unwrap();
        assert_eq!(rest, r"host=h password='it\'s x' dbname=d");
        assert_eq!(o.mode, SslMode::VerifyCa);
        assert_eq!(o.root_cert, Some(PathBuf::from("/a b/ca.pem")));
        let (rest, o) = split_tls_params("postgresql://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), o.mode),
            ("postgresql://h/db", SslMode::Prefer)
        );
        assert!(split_tls_params("host=h sslmode=sometimes").is_err());
    }

    #[test]
    fn verification_needs_roots_and_cert_and_key_go_together() {
        let o = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..Default::default()
        };
        let e = o
            .client_config()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("sslrootcert") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let o = TlsOptions {
            mode: SslMode::Require,
            client_cert: Some(PathBuf::from("/x.pem")),
            ..Default::default()
        };
        let e = o
            .client_config()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("sslcert and sslkey"), "{e}");
        assert!(TlsOptions::default().client_config().unwrap().is_some());
        let off = TlsOptions {
            mode: SslMode::Disable,
            ..Default::default()
        };
        assert!(off.client_config().unwrap().is_none());
    }
}
