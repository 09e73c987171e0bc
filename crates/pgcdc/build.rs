//! With the `duckdb` feature, lets the binary find libduckdb.so at run time (an rpath to
//! DUCKDB_LIB_DIR, the folder it was linked from; copy the library beside a shipped
//! binary, or set LD_LIBRARY_PATH, when moving it).
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_DUCKDB").is_some() {
        if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
