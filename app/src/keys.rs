//! Key names. Each family shares a hash tag (`{…}`) so the keys a command or script
//! touches together live in one cluster slot: a category's questions, locks and the
//! per-player "seen" sets; a game; a week's leaderboard and its names; a player.

pub fn question_ids(category: &str) -> String {
    format!("trivia:{{c:{category}}}:ids")
}

/// Prefix of a category's question keys (scripts append the id).
pub fn question_prefix(category: &str) -> String {
    format!("trivia:{{c:{category}}}:q:")
}

pub fn question(category: &str, id: &str) -> String {
    format!("{}{id}", question_prefix(category))
}

/// The questions of `category` a player has been served.
pub fn seen(category: &str, user: &str) -> String {
    format!("trivia:{{c:{category}}}:seen:{user}")
}

pub fn loader_lock(category: &str) -> String {
    format!("trivia:{{c:{category}}}:lock")
}

pub fn game(id: &str) -> String {
    format!("trivia:{{g:{id}}}")
}

/// `week` is ISO `YYYY-Www`.
pub fn leaderboard(week: &str) -> String {
    format!("trivia:{{lb:{week}}}:scores")
}

pub fn leaderboard_names(week: &str) -> String {
    format!("trivia:{{lb:{week}}}:names")
}

pub fn profile(user: &str) -> String {
    format!("trivia:{{u:{user}}}:profile")
}

pub fn stats() -> String {
    "trivia:{stats}:global".into()
}
