//! Integration tests, compiled into one binary.

mod lifecycle;
