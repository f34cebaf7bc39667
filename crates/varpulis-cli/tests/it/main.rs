//! Integration tests of the varpulis binary.
