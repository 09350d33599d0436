//! Integration tests, compiled into one binary.

mod aws;
mod cli;
mod ephemeral;
mod lifecycle;
mod local_cloud;
mod previews;
mod render;
mod runtime;
mod ship;
mod team;
