//! Integration tests of `varpulis-checkpoint`: codec and golden files, the commit protocol and
//! the seed API, every failure point, corruption, retention, incremental and size targets.

mod codec;
mod commit;
mod common;
mod corruption;
mod failures;
mod golden;
mod incremental;
mod retention;
