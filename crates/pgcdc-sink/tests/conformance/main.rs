//! The conformance suite of the `Destination` contract (`pgcdc_sink`'s crate docs), in
//! process: every destination runs the same cases ([`cases`]) through one line of
//! [`conformance!`] at the bottom of this file.
//!
//! A case builds changelog batches ([`changes`]), drives fresh destination instances of a
//! [`fixtures::Fixture`] through `open`, `initialize`, `write`, `commit` and `rollback`
//! (dropping an instance without a commit is a crash), and checks what is committed with
//! a reader independent of pgcdc-sink. Servers come from `pgcdc-testkit`: PostgreSQL for
//! the PostgreSQL mirror, s3s-fs for the destinations on S3.
//!
//! Adding a destination: a fixture function in [`fixtures`] (a fresh place, the
//! constructor, a reader), then one line here naming its kind: `changelog` (rows kept as
//! written) or `mirror` (tables equal to the source's).

mod cases;
mod changes;
mod fixtures;

/// Calls `$m!(case)` for every case of a kind of destination.
macro_rules! cases_of {
    (changelog, $m:ident) => {
        cases_of!(@every $m);
        $m!(rows_exactly_once);
    };
    (mirror, $m:ident) => {
        cases_of!(@every $m);
        $m!(last_change_wins);
        $m!(unchanged_toast);
        $m!(key_move);
        $m!(keyless_multiset);
    };
    (@every $m:ident) => {
        $m!(commit_survives_reopen);
        $m!(rollback_discards);
        $m!(crash_before_commit_is_undone);
        $m!(initialize_keeps_or_replaces);
        $m!(schema_change_mid_batch);
        $m!(truncate_empties);
    };
}

/// The [`cases::Kind`] named `changelog` or `mirror`.
macro_rules! kind {
    (changelog) => {
        crate::cases::Kind::Changelog
    };
    (mirror) => {
        crate::cases::Kind::Mirror
    };
}

/// One test: case `$case` on a fresh `$fixture`, with extra attributes (`#[ignore]`).
macro_rules! test_case {
    ($name:ident, $kind:ident, $fixture:path, $case:ident $(, #[$attr:meta])*) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let fixture = $fixture(concat!(stringify!($name), "_", stringify!($case))).await;
            crate::cases::$case(&fixture, kind!($kind)).await;
        }
    };
}

/// `conformance!(name, kind, fixture)`: a module `name` with one test per case of `kind`
/// (`changelog` or `mirror`), each on a fresh `fixture(case name)` (an async function
/// returning a [`fixtures::Fixture`]). `ignore { case: "why", … }` after the fixture marks
/// cases this destination is known to fail, for this destination only.
macro_rules! conformance {
    ($name:ident, $kind:ident, $fixture:path $(, ignore { $($case:ident : $why:literal),* $(,)? })?) => {
        conformance!(@module $name, $kind, $fixture, [$($($case : $why),*)?], $);
    };
    (@module $name:ident, $kind:ident, $fixture:path, [$($case:ident : $why:literal),*], $d:tt) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            macro_rules! case {
                $(($case) => { test_case!($name, $kind, $fixture, $case, #[ignore = $why]); };)*
                ($d c:ident) => { test_case!($name, $kind, $fixture, $d c); };
            }
            cases_of!($kind, case);
        }
    };
}

conformance!(files_local, changelog, fixtures::files_local);
conformance!(files_s3, changelog, fixtures::files_s3);
#[cfg(feature = "duckdb")]
conformance!(duckdb, mirror, fixtures::duckdb);
conformance!(postgres, mirror, fixtures::postgres);
#[cfg(feature = "delta")]
conformance!(delta_local, mirror, fixtures::delta_local);
#[cfg(feature = "delta")]
conformance!(delta_s3, mirror, fixtures::delta_s3);
