//! Plans: the desired state from a spec, diffed against recorded and actual state.

pub mod desired;
