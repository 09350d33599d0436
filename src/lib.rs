//! `deploy`: a declarative provisioner and deployer for a serverless application with a
//! Valkey cache on AWS. The binary is a thin CLI over this library.

pub mod artifact;
pub mod aws;
pub mod cli;
pub mod cost;
pub mod engine;
pub mod graph;
pub mod kinds;
pub mod local;
pub mod model;
pub mod ops;
pub mod plan;
pub mod provider;
pub mod render;
pub mod smoke;
pub mod spec;
pub mod state;
