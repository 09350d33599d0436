//! The trivia game deployed by `deploy`.
//!
//! Placeholder: the game itself arrives with its own issue. The crate exists now so
//! the workspace, the build step and the function specs have a real target to name.

/// Version string reported by both binaries.
pub fn build_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
