//! TLS to PostgreSQL with a CA the test makes (openssl), and the pipeline run by a
//! least-privilege role that may only log in over TLS with SCRAM: `verify-full` works,
//! a wrong CA or host name and plain connections are refused, and the password never
//! appears in any output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::replication::source_rows;
use crate::support::{is_root, start_cluster_with_hba, TestEnv};

const PASSWORD: &str = "Tls-S3cret-pw-4711";
const ROLE: &str = "pgcdc_tls";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost/127.0.0.1 signed by it, and a second,
/// unrelated CA. Readable by the postgres OS user (the key only by it).
fn make_certs() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("pgcdc-test-tls-")
        .tempdir_in("/tmp")
        .expect("tempdir")
        .keep();
    for (name, cn) in [("ca", "pgcdc test CA"), ("other", "unrelated CA")] {
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
    }
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write san.ext");
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod key");
    dir
}

/// pgcdc.toml connecting as the test role with the TLS query parameters `tls`.
fn write_config(env: &TestEnv, port: u16, host: &str, tls: &str) {
    write_config_as(env, &format!("{ROLE}:{PASSWORD}"), port, host, tls);
}

fn write_config_as(env: &TestEnv, user: &str, port: u16, host: &str, tls: &str) {
    env.write_file(
        "pgcdc.toml",
        &format!(
            "[source]\nurl = \"postgresql://{user}@{host}:{port}/postgres?{tls}\"\nslot = \"{slot}\"\npublication = \"{slot}\"\nschema = \"{schema}\"\ntables = [\"t\"]\n\n[destination]\nurl = \"{lake}\"\ndataset = \"ds\"\n",
            slot = env.slot,
            schema = env.schema,
            lake = env.lake_dir().display(),
        ),
    );
}

#[test]
fn a_least_privilege_role_replicates_over_verified_tls_and_the_password_never_shows() {
    // Some server builds (the PostgreSQL 18 wheel) have no TLS at all.
    let probe = TestEnv::new("tls_probe");
    if probe.sql("SHOW ssl_library").trim().is_empty() {
        eprintln!("skipped: this PostgreSQL build has no TLS support (ssl_library is empty)");
        return;
    }
    drop(probe);
    let certs = make_certs();
    let cluster = start_cluster_with_hba(
        &[
            ("ssl", "on"),
            ("ssl_cert_file", &format!("'{}'", certs.join("server.crt").display())),
            ("ssl_key_file", &format!("'{}'", certs.join("server.key").display())),
        ],
        &format!(
            "hostssl all {ROLE} 127.0.0.1/32 scram-sha-256\nhostssl replication {ROLE} 127.0.0.1/32 scram-sha-256\nhost all {ROLE} 127.0.0.1/32 reject\nhost replication {ROLE} 127.0.0.1/32 reject"
        ),
    );
    let env = TestEnv::on(cluster.url(), "tls");
    // The documented least-privilege role: LOGIN REPLICATION, owner of its tables (so it
    // may publish them), CREATE on the database (for the publication). No superuser.
    env.sql(&format!(
        "CREATE ROLE {ROLE} LOGIN REPLICATION PASSWORD '{PASSWORD}';
         GRANT CREATE ON DATABASE postgres TO {ROLE};
         GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO {ROLE};
         CREATE TABLE t (id int PRIMARY KEY, v text);
         ALTER TABLE t OWNER TO {ROLE};
         INSERT INTO t SELECT g, 'before ' || g FROM generate_series(1, 500) g;",
        schema = env.schema
    ));
    let ca = certs.join("ca.crt").display().to_string();
    let mut outputs = String::new();
    let mut ok = |env: &TestEnv, args: &[&str]| {
        let out = env.pgcdc_with_env(args, &[("RUST_LOG", "debug")]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push_str(&text);
        (out.status.success(), text)
    };
    write_config(
        &env,
        cluster.port,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let (good, text) = ok(&env, &["init"]);
    assert!(good, "init over verify-full failed:\n{text}");
    env.sql("INSERT INTO t VALUES (1000, 'after'); UPDATE t SET v = 'changed' WHERE id <= 10; DELETE FROM t WHERE id = 20;");
    let (good, text) = ok(&env, &["run"]);
    assert!(good, "run over verify-full failed:\n{text}");
    let (good, text) = ok(&env, &["status", "--json"]);
    assert!(good, "{text}");
    let src = source_rows(&env, "t", &["id", "v"]);
    let mut dst =
        crate::support::lake_replay(&env.lake_dir().join("ds").join("t"), &["id"], &["id", "v"]);
    dst.sort();
    assert_eq!(dst, src);

    // verify-ca accepts the certificate on 127.0.0.1 too; verify-full checks the name too
    // (the certificate names both, so a wrong CA is what fails it).
    write_config(
        &env,
        cluster.port,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    let (good, text) = ok(&env, &["status"]);
    assert!(good, "verify-ca: {text}");
    let other = certs.join("other.crt").display().to_string();
    write_config(
        &env,
        cluster.port,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let (good, text) = ok(&env, &["status"]);
    assert!(
        !good && text.to_lowercase().contains("certificate"),
        "a wrong CA was accepted:\n{text}"
    );
    let (good, text) = ok(&env, &["run"]);
    assert!(!good, "run with a wrong CA succeeded:\n{text}");
    // Without TLS the role is rejected by pg_hba (hostssl only), with a clear message.
    write_config(&env, cluster.port, "localhost", "sslmode=disable");
    let (good, text) = ok(&env, &["status"]);
    assert!(!good && text.contains("pg_hba"), "{text}");
    // require: encrypted without checks, as libpq.
    write_config(&env, cluster.port, "localhost", "sslmode=require");
    let (good, text) = ok(&env, &["run"]);
    assert!(good, "sslmode=require: {text}");
    // The password from libpq's password file (0600), or from PGPASSWORD, not the URL.
    let pgpass = env.dir().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("localhost:{}:postgres:{ROLE}:{PASSWORD}\n", cluster.port),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_config_as(
        &env,
        ROLE,
        cluster.port,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    env.sql("INSERT INTO t VALUES (1001, 'password file');");
    let pgpass = pgpass.display().to_string();
    for vars in [
        [("PGPASSFILE", pgpass.as_str())],
        [("PGPASSWORD", PASSWORD)],
    ] {
        let out = env.pgcdc_with_env(&["run"], &vars);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push_str(&text);
        assert!(out.status.success(), "{vars:?}: {text}");
    }
    let mut dst =
        crate::support::lake_replay(&env.lake_dir().join("ds").join("t"), &["id"], &["id", "v"]);
    dst.sort();
    assert_eq!(dst, source_rows(&env, "t", &["id", "v"]));

    assert!(
        !outputs.contains(PASSWORD),
        "the password appears in pgcdc's output"
    );
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn sslmode_require_against_a_server_without_tls_is_a_clear_error() {
    let env = TestEnv::new("tls_refused");
    env.sql("CREATE TABLE t (id int PRIMARY KEY);");
    let url = url::Url::parse(&env.url()).expect("url");
    write_config_as(
        &env,
        "postgres",
        url.port().unwrap_or(5432),
        "127.0.0.1",
        "sslmode=require",
    );
    let out = env.pgcdc(&["init", "--no-snapshot"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.to_lowercase().contains("tls") || err.to_lowercase().contains("ssl"),
        "{err}"
    );
}
