//! Integration tests for varpulis-windows (one binary, a module per behaviour).

mod differential;
mod edges;
mod oracle;
mod restore;
mod state_size;
