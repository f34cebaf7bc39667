//! Integration tests for the `varpulis-runtime` facade: the re-exports are the defining crates'
//! types, and the production stack (encryption over RocksDB) passes the store conformance suite.

#![allow(clippy::disallowed_methods)] // crash tests time real processes

mod facade;

#[cfg(all(feature = "persistence", feature = "encryption"))]
mod encrypted_rocks;

#[cfg(feature = "persistence")]
mod crash;

#[cfg(all(feature = "persistence", feature = "encryption"))]
mod checkpoints;
