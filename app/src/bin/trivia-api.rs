//! API function entry point (placeholder until the app issue lands).
fn main() {
    std::process::exit(if trivia::build_version().is_empty() {
        1
    } else {
        0
    });
}
