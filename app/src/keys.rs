//! Key names. Each family shares a hash tag (`{…}`) so the keys a command or script
//! touches together live in one cluster slot: a category's questions, its games, the
//! loader's lock and the per-player "seen" sets; a week's leaderboard and its names;
//! a player.
//!
//! Games live in their category's slot because serving the next question reads the
//! game, the category's questions and the player's "seen" set and writes the game, all
//! in one script (one round trip). The price is that a category's traffic is one slot;
//! the questions already were.

/// A category's questions: one hash, field = question id, value = the question's JSON.
pub fn questions(category: &str) -> String {
    format!("trivia:{{c:{category}}}:questions")
}

/// The questions of `category` a player has been served.
pub fn seen(category: &str, user: &str) -> String {
    format!("trivia:{{c:{category}}}:seen:{user}")
}

pub fn loader_lock(category: &str) -> String {
    format!("trivia:{{c:{category}}}:lock")
}

/// A game of `category`; `nonce` is the random part of its public id.
pub fn game(category: &str, nonce: &str) -> String {
    format!("trivia:{{c:{category}}}:game:{nonce}")
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
