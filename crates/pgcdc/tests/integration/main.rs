//! Integration tests: one binary, one throwaway PostgreSQL cluster for all of them.

mod errors;
mod harness;
mod lake_reader;
mod mirror;
mod objectstore;
mod operations;
mod replication;
mod snapshot;
mod support;
mod tls;
mod types;
