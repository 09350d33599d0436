//! Integration tests, compiled into one binary.

mod aws;
mod cli;
mod lifecycle;
mod render;
mod ship;
