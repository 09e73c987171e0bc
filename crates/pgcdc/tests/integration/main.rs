//! Integration tests: one binary, one throwaway PostgreSQL cluster for all of them.

mod harness;
mod replication;
mod support;
