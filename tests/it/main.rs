//! Integration tests, compiled into one binary.

mod aws;
mod cli;
mod ephemeral;
mod lifecycle;
mod render;
mod ship;
