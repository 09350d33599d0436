//! `deploy`: a declarative provisioner and deployer for a serverless application with a
//! Valkey cache on AWS. The binary is a thin CLI over this library.

pub mod spec;
pub mod graph;
pub mod model;
pub mod plan;
pub mod state;
pub mod provider;
pub mod engine;
pub mod ops;
pub mod render;
pub mod cli;
