//! Integration tests, compiled into one binary.

mod cli;
mod lifecycle;
mod render;
