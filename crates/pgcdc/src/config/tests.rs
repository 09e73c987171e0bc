//! The loader end to end on text: layers, validation, redaction.

use anyhow::{anyhow, Result};
use toml::{Table, Value};

use super::layers::{apply_env, parse_value};
use super::raw::RawConfig;
use super::validate::validate;
use super::Config;

fn load_str(toml_text: &str, env: &[(&str, &str)]) -> Result<Config> {
    let mut doc: Table = toml::from_str(toml_text)?;
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    apply_env(&mut doc, &env)?;
    let raw: RawConfig = Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow!("{}", e.message()))?;
    validate(raw, &env, "test".into())
}

#[test]
fn delta_mirror_urls_take_object_storage_credentials() {
    let c = load_str(
        "[destination]\nmode = 'mirror'\nurl = 'delta:s3://demo/lake'\n[destination.credentials]\naws_access_key_id = 'k'\naws_secret_access_key = 'delta-secret'\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.destination.location(),
        "Delta tables at s3://demo/lake (dataset pgcdc)"
    );
    assert!(c
        .destination
        .secrets()
        .contains(&"delta-secret".to_string()));
    assert!(c.secrets().contains(&"delta-secret".to_string()));
    assert!(!c.destination.location().contains("delta-secret"));
    let err = load_str("[destination]\nmode = 'mirror'\nurl = 'delta:'\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("names no folder"), "{err}");
    // Database mirrors still refuse object-storage credentials.
    let err = load_str(
        "[destination]\nmode = 'mirror'\nurl = 'm.duckdb'\n[destination.credentials]\naws_access_key_id = 'k'\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("destination.credentials"), "{err}");
}

#[test]
fn unknown_keys_are_named() {
    let err = load_str("[source]\nslott = 'x'\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("slott"), "{err}");
    let err = load_str("[sauce]\n", &[]).unwrap_err().to_string();
    assert!(err.contains("sauce"), "{err}");
}

#[test]
fn env_overrides_file_and_password_never_shows() {
    let c = load_str(
        "[source]\nurl = 'postgresql://u:filepw@h:1/db'\n",
        &[
            (
                "PGCDC__SOURCE__URL",
                "postgresql://u:s3cr%40t@envhost:5433/db2",
            ),
            ("PGCDC__BATCH__MAX_ROWS", "7"),
        ],
    )
    .unwrap();
    assert_eq!(
        pgcdc_source::connect::describe(&c.source.pg),
        "u@envhost:5433/db2"
    );
    assert_eq!(c.batch.max_rows, 7);
    assert_eq!(c.source.pg.get_password(), Some(&b"s3cr@t"[..]));
    assert!(!format!("{c:?}").contains("s3cr@t"));
}

#[test]
fn a_bad_url_names_the_option_and_not_the_password() {
    for (url, option) in [
        ("postgresql://u:pw-4711@h:notaport/db", "port"),
        ("host=h password='pw-4711' bogus=1", "bogus"),
    ] {
        let err = load_str(&format!("[source]\nurl = \"{url}\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(option) && !err.contains("pw-4711"), "{err}");
    }
}

#[test]
fn dlt_credentials_env_sets_the_url() {
    let c = load_str(
        "",
        &[(
            "SOURCES__PG_REPLICATION__CREDENTIALS",
            "postgresql://a@b:7/c",
        )],
    )
    .unwrap();
    assert_eq!(pgcdc_source::connect::describe(&c.source.pg), "a@b:7/c");
}

#[test]
fn bad_names_and_ops_are_explained() {
    let e = load_str("[source]\nslot = 'My-Slot'\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("lowercase"), "{e}");
    let e = load_str("[source]\npublish = 'insert, upsert'\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("upsert"), "{e}");
    let e = load_str(
        "[source]\nurl = 'postgresql://u:hunter22@h:notaport/db'\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains("hunter22"), "{e}");
}

#[test]
fn env_values_parse_as_toml_when_they_can() {
    assert_eq!(
        parse_value("[\"a\", \"b\"]").as_array().map(|a| a.len()),
        Some(2)
    );
    assert_eq!(
        parse_value("postgresql://x").as_str(),
        Some("postgresql://x")
    );
    assert_eq!(parse_value("true").as_bool(), Some(true));
}

#[test]
fn the_destination_table_is_the_sink_crates() {
    let err = load_str("[destination]\nurll = 'x'\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("urll"), "{err}");
    let err = load_str(
        "[source]\nurl = 'postgresql://u@h:1/db'\n[destination]\nmode = 'mirror'\nurl = 'postgresql://v:mirror-pw@h:1/db'\ndataset = 'public'\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("would overwrite the source tables"), "{err}");
    let c = load_str(
        "[source]\nurl = 'postgresql://u:source-pw@h:1/db'\n[destination]\nmode = 'mirror'\nurl = 'postgresql://v:mirror-pw@h:1/db'\nnaming = 'dlt'\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.destination.location(), "v@h:1/db (schema pgcdc)");
    assert_eq!(c.secrets(), ["source-pw", "mirror-pw"]);
    assert_eq!(&c.meta, c.destination.meta());
    assert!(!format!("{c:?}").contains("-pw"));
}
