//! Games, answers, leaderboards and profiles on Valkey.
//!
//! A game lives in its category's slot and its public id names the category, so
//! serving a question is one script there and nothing else: it checks the game, samples
//! a few ids from the category's question hash, skips those the player has seen, marks
//! the chosen one seen and makes it the game's current question, returning only that
//! question (about one KB). Answers and finishes are scripts on the game's key, so a
//! replayed answer is refused atomically.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;
use serde_json::Value;

use crate::error::AppError;
use crate::identity::Player;
use crate::keys;
use crate::questions::{Category, Loader, Question};
use crate::store::{Conn, Store, StoreError};

pub const GAME_TTL: Duration = Duration::from_secs(3600);
pub const SEEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub const LEADERBOARD_TTL: Duration = Duration::from_secs(8 * 7 * 24 * 3600);
pub const PROFILE_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// How many random ids a pick looks at before scanning for an unseen one.
const SAMPLE: u32 = 5;

/// KEYS: game, questions, seen. ARGV: player id, sample size, seen TTL (s), shuffle
/// seed, and, to start the game, questions per game and game TTL (s).
///
/// Replies `current` (unanswered, shown again), `new`, `complete`, `finished`,
/// `not_found`, or `empty` when the category has no questions to give.
const SERVE: &str = r#"
if ARGV[5] then
  redis.call('HSET', KEYS[1], 'user', ARGV[1], 'status', 'active', 'score', 0, 'answered', 0, 'asked', 0, 'total', ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
elseif redis.call('HGET', KEYS[1], 'user') ~= ARGV[1] then
  return {'not_found'}
end
local g = redis.call('HMGET', KEYS[1], 'status', 'qid', 'asked', 'total')
if g[1] ~= 'active' then return {'finished'} end
if g[2] and redis.call('HEXISTS', KEYS[1], 'answered:' .. g[2]) == 0 then
  local shown = redis.call('HMGET', KEYS[1], 'question', 'seed')
  return {'current', shown[1], shown[2], g[3], g[4]}
end
local asked = tonumber(g[3])
if asked >= tonumber(g[4]) then return {'complete'} end
local function unseen()
  for _, id in ipairs(redis.call('HRANDFIELD', KEYS[2], tonumber(ARGV[2]))) do
    if redis.call('SISMEMBER', KEYS[3], id) == 0 then return id end
  end
  for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
    if redis.call('SISMEMBER', KEYS[3], id) == 0 then return id end
  end
  -- Seen them all: start the cycle again.
  redis.call('DEL', KEYS[3])
  return redis.call('HRANDFIELD', KEYS[2])
end
local id = unseen()
if not id then return {'empty'} end
local q = redis.call('HGET', KEYS[2], id)
redis.call('SADD', KEYS[3], id)
redis.call('EXPIRE', KEYS[3], ARGV[3])
asked = asked + 1
redis.call('HSET', KEYS[1], 'qid', id, 'question', q, 'answer', cjson.decode(q).correct, 'seed', ARGV[4], 'asked', asked)
return {'new', q, ARGV[4], asked, g[4]}
"#;

/// KEYS: game. ARGV: player id, question id, answer.
const ANSWER: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'user') ~= ARGV[1] then return {'not_found'} end
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return {'finished'} end
if redis.call('HEXISTS', KEYS[1], 'answered:' .. ARGV[2]) == 1 then return {'replay'} end
if redis.call('HGET', KEYS[1], 'qid') ~= ARGV[2] then return {'wrong_question'} end
local correct = redis.call('HGET', KEYS[1], 'answer')
local ok = 0
if correct == ARGV[3] then ok = 1 end
redis.call('HSET', KEYS[1], 'answered:' .. ARGV[2], ok)
local score = redis.call('HINCRBY', KEYS[1], 'score', ok)
local answered = redis.call('HINCRBY', KEYS[1], 'answered', 1)
return {'ok', ok, correct, score, answered}
"#;

/// KEYS: game. ARGV: player id.
const FINISH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'user') ~= ARGV[1] then return {'not_found'} end
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return {'finished'} end
redis.call('HSET', KEYS[1], 'status', 'finished')
return {'ok', redis.call('HGET', KEYS[1], 'score'), redis.call('HGET', KEYS[1], 'answered'), redis.call('HGET', KEYS[1], 'total')}
"#;

/// KEYS: profile. ARGV: score, answered, TTL (s), then each global statistic and what
/// this game added to it (kept as `global:<statistic>`).
const RECORD_PROFILE: &str = r#"
redis.call('HINCRBY', KEYS[1], 'games_played', 1)
redis.call('HINCRBY', KEYS[1], 'correct', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'answered', ARGV[2])
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], 'global:' .. ARGV[i], ARGV[i + 1])
end
local best = tonumber(redis.call('HGET', KEYS[1], 'best_score') or '-1')
if tonumber(ARGV[1]) > best then redis.call('HSET', KEYS[1], 'best_score', ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('HGET', KEYS[1], 'best_score')
"#;

/// KEYS: profile. Deletes it and replies how many keys that removed, then each global
/// statistic and the player's contribution to it. Taking and deleting in one step means
/// a repeated forget finds nothing to take back twice.
const TAKE_PROFILE: &str = r#"
local out = {0}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 7) == 'global:' then
    table.insert(out, string.sub(fields[i], 8))
    table.insert(out, fields[i + 1])
  end
end
out[1] = redis.call('DEL', KEYS[1])
return out
"#;

/// KEYS: global statistics. ARGV: pairs of statistic and amount to take back; a
/// statistic never goes below zero (it may have been reset since the player played).
const SUBTRACT_STATS: &str = r#"
for i = 1, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current then
    local left = tonumber(current) - tonumber(ARGV[i + 1])
    if left < 0 then left = 0 end
    redis.call('HSET', KEYS[1], ARGV[i], left)
  end
end
return redis.status_reply('OK')
"#;

/// What a player sees of a question: no answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PublicQuestion {
    pub id: String,
    pub number: u32,
    pub of: u32,
    pub category: String,
    pub difficulty: String,
    pub text: String,
    pub choices: Vec<String>,
}

/// The player's view of `q`, its choices shuffled by `seed`: the game keeps the seed,
/// so showing the same question again shows the same order.
fn public(q: &Question, number: u32, of: u32, seed: u64) -> PublicQuestion {
    let mut choices: Vec<String> = q
        .incorrect
        .iter()
        .cloned()
        .chain(std::iter::once(q.correct.clone()))
        .collect();
    fastrand::Rng::with_seed(seed).shuffle(&mut choices);
    PublicQuestion {
        id: q.id.clone(),
        number,
        of,
        category: q.category.clone(),
        difficulty: q.difficulty.clone(),
        text: q.text.clone(),
        choices,
    }
}

/// The current ISO week, `YYYY-Www`.
pub fn current_week() -> String {
    let (year, week, _) = time::OffsetDateTime::now_utc().to_iso_week_date();
    format!("{year}-W{week:02}")
}

/// Checks `YYYY-Www`.
pub fn parse_week(s: &str) -> Result<String, AppError> {
    let bad = || {
        AppError::bad(
            "invalid_week",
            format!("`{s}` is not an ISO week such as {}", current_week()),
        )
    };
    let (year, week) = s.split_once("-W").ok_or_else(bad)?;
    let (y, w) = (
        year.parse::<i32>().map_err(|_| bad())?,
        week.parse::<u8>().map_err(|_| bad())?,
    );
    if year.len() != 4
        || week.len() != 2
        || time::Date::from_iso_week_date(y, w, time::Weekday::Monday).is_err()
    {
        return Err(bad());
    }
    Ok(s.to_string())
}

#[derive(Clone)]
pub struct Games {
    pub store: Store,
    pub loader: Loader,
    pub questions_per_game: u32,
}

#[derive(Debug, Serialize)]
pub struct Started {
    pub game_id: String,
    pub category: String,
    pub questions: u32,
    pub question: PublicQuestion,
}

#[derive(Debug, Serialize)]
pub struct Answered {
    pub correct: bool,
    pub correct_answer: String,
    pub score: u32,
    pub answered: u32,
}

#[derive(Debug, Serialize)]
pub struct Finished {
    pub score: u32,
    pub answered: u32,
    pub questions: u32,
    pub week: String,
    pub rank: u64,
    pub weekly_best: u32,
    pub best_score: u32,
}

#[derive(Debug, Serialize)]
pub struct Standing {
    pub rank: u64,
    pub player: String,
    pub score: u32,
}

/// A game as its public id names it, `CATEGORY-NONCE`: the category says which slot
/// the game lives in, so no lookup comes before the script that does the work.
struct GameRef {
    category: &'static Category,
    nonce: String,
}

impl GameRef {
    fn new(category: &'static Category) -> Self {
        Self {
            category,
            nonce: format!("{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..)),
        }
    }

    fn parse(raw: &str) -> Result<Self, AppError> {
        raw.split_once('-')
            .and_then(|(cat, nonce)| {
                let category = crate::questions::category(cat)?;
                (nonce.len() == 24 && nonce.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Self {
                    category,
                    nonce: nonce.to_ascii_lowercase(),
                })
            })
            .ok_or_else(|| AppError::not_found("game_not_found", format!("no game `{raw}`")))
    }

    fn id(&self) -> String {
        format!("{}-{}", self.category.id, self.nonce)
    }

    fn key(&self) -> String {
        keys::game(self.category.id, &self.nonce)
    }

    fn gone(&self) -> AppError {
        AppError::not_found(
            "game_not_found",
            format!("no game `{}` (games expire after an hour)", self.id()),
        )
    }
}

/// What one finished game adds to each global statistic. The player's profile records
/// the same amounts, so forgetting the player can take them back.
fn contributions(answered: u32) -> [(&'static str, u64); 2] {
    [("games", 1), ("answers", answered.into())]
}

impl Games {
    pub async fn start(
        &self,
        player: &Player,
        category: &'static Category,
    ) -> Result<Started, AppError> {
        let game = GameRef::new(category);
        let question = self
            .serve(player, &game, Some(self.questions_per_game))
            .await?;
        Ok(Started {
            game_id: game.id(),
            category: category.id.into(),
            questions: self.questions_per_game,
            question,
        })
    }

    /// The current question, or the next one once the current is answered.
    pub async fn question(
        &self,
        player: &Player,
        raw_id: &str,
    ) -> Result<PublicQuestion, AppError> {
        self.serve(player, &GameRef::parse(raw_id)?, None).await
    }

    /// Runs [`SERVE`], creating the game first when `start` gives its length. One round
    /// trip, unless the category's questions are missing (a cold or expired cache): then
    /// it fills them and tries once more.
    async fn serve(
        &self,
        player: &Player,
        game: &GameRef,
        start: Option<u32>,
    ) -> Result<PublicQuestion, AppError> {
        let mut c = self.store.conn().await?;
        let mut reply = self.serve_once(&mut c, player, game, start).await?;
        if reply.first().and_then(Value::as_str) == Some("empty") {
            self.loader.fill(game.category, false).await?;
            // The game exists now, whether or not this call created it.
            reply = self.serve_once(&mut c, player, game, None).await?;
        }
        match reply.first().and_then(Value::as_str) {
            Some("current" | "new") => {
                let q: Question = serde_json::from_str(reply[1].as_str().unwrap_or_default())
                    .map_err(|e| {
                        AppError::Internal(format!("a stored question is unreadable: {e}"))
                    })?;
                let seed = reply[2]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default();
                Ok(public(
                    &q,
                    int(&reply[3]) as u32,
                    int(&reply[4]) as u32,
                    seed,
                ))
            }
            Some("complete") => Err(AppError::conflict(
                "game_complete",
                format!(
                    "every question is answered; POST /games/{}/finish",
                    game.id()
                ),
            )),
            Some("finished") => Err(AppError::conflict("game_finished", "this game is finished")),
            Some("empty") => Err(AppError::Store(StoreError(format!(
                "no questions available in `{}`",
                game.category.id
            )))),
            _ => Err(game.gone()),
        }
    }

    async fn serve_once(
        &self,
        c: &mut Conn,
        player: &Player,
        game: &GameRef,
        start: Option<u32>,
    ) -> Result<Vec<Value>, AppError> {
        let lua = redis::Script::new(SERVE);
        let mut script = lua.prepare_invoke();
        script
            .key(game.key())
            .key(keys::questions(game.category.id))
            .key(keys::seen(game.category.id, &player.id))
            .arg(&player.id)
            .arg(SAMPLE)
            .arg(SEEN_TTL.as_secs())
            .arg(fastrand::u64(..).to_string());
        if let Some(total) = start {
            script.arg(total).arg(GAME_TTL.as_secs());
        }
        Ok(values(script.invoke_async(c).await?))
    }

    pub async fn answer(
        &self,
        player: &Player,
        raw_id: &str,
        question_id: &str,
        answer: &str,
    ) -> Result<Answered, AppError> {
        let game = GameRef::parse(raw_id)?;
        let mut c = self.store.conn().await?;
        let reply: Vec<Value> = redis::Script::new(ANSWER)
            .key(game.key())
            .arg(&player.id)
            .arg(question_id)
            .arg(answer.trim())
            .invoke_async(&mut c)
            .await
            .map(values)?;
        match reply.first().and_then(Value::as_str) {
            Some("ok") => Ok(Answered {
                correct: int(&reply[1]) == 1,
                correct_answer: reply[2].as_str().unwrap_or_default().to_string(),
                score: int(&reply[3]) as u32,
                answered: int(&reply[4]) as u32,
            }),
            Some("replay") => Err(AppError::conflict(
                "already_answered",
                "this question was already answered",
            )),
            Some("wrong_question") => Err(AppError::bad(
                "wrong_question",
                format!("`{question_id}` is not this game's current question"),
            )),
            Some("finished") => Err(AppError::conflict("game_finished", "this game is finished")),
            _ => Err(game.gone()),
        }
    }

    pub async fn finish(&self, player: &Player, raw_id: &str) -> Result<Finished, AppError> {
        let game = GameRef::parse(raw_id)?;
        let mut c = self.store.conn().await?;
        let reply: Vec<Value> = redis::Script::new(FINISH)
            .key(game.key())
            .arg(&player.id)
            .invoke_async(&mut c)
            .await
            .map(values)?;
        match reply.first().and_then(Value::as_str) {
            Some("ok") => {}
            Some("finished") => {
                return Err(AppError::conflict(
                    "game_finished",
                    "this game is already finished",
                ))
            }
            _ => return Err(game.gone()),
        }
        let (score, answered, total) = (
            int(&reply[1]) as u32,
            int(&reply[2]) as u32,
            int(&reply[3]) as u32,
        );
        let week = current_week();
        let (board, names) = (keys::leaderboard(&week), keys::leaderboard_names(&week));
        let ttl = LEADERBOARD_TTL.as_secs();
        // One slot, one round trip: keep the best score, remember the name, rank.
        let (rank, weekly_best): (Option<u64>, Option<f64>) = redis::pipe()
            .cmd("ZADD")
            .arg(&board)
            .arg("GT")
            .arg(score)
            .arg(&player.id)
            .ignore()
            .cmd("EXPIRE")
            .arg(&board)
            .arg(ttl)
            .ignore()
            .cmd("HSET")
            .arg(&names)
            .arg(&player.id)
            .arg(&player.name)
            .ignore()
            .cmd("EXPIRE")
            .arg(&names)
            .arg(ttl)
            .ignore()
            .cmd("ZREVRANK")
            .arg(&board)
            .arg(&player.id)
            .cmd("ZSCORE")
            .arg(&board)
            .arg(&player.id)
            .query_async(&mut c)
            .await?;
        // The global statistics first, then the profile with what they received: if the
        // second step fails the statistics keep one game too many, which forgetting
        // cannot undo, rather than the profile claiming more than was added.
        let added = contributions(answered);
        let mut stats = redis::pipe();
        for (field, n) in added {
            stats
                .cmd("HINCRBY")
                .arg(keys::stats())
                .arg(field)
                .arg(n)
                .ignore();
        }
        stats
            .cmd("EXPIRE")
            .arg(keys::stats())
            .arg(PROFILE_TTL.as_secs())
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        let lua = redis::Script::new(RECORD_PROFILE);
        let mut record = lua.prepare_invoke();
        record
            .key(keys::profile(&player.id))
            .arg(score)
            .arg(answered)
            .arg(PROFILE_TTL.as_secs());
        for (field, n) in added {
            record.arg(field).arg(n);
        }
        let best: u32 = record
            .invoke_async::<String>(&mut c)
            .await?
            .parse()
            .unwrap_or(score);
        Ok(Finished {
            score,
            answered,
            questions: total,
            week,
            rank: rank.map(|r| r + 1).unwrap_or(0),
            weekly_best: weekly_best.unwrap_or(score as f64) as u32,
            best_score: best,
        })
    }

    async fn standings(
        &self,
        week: &str,
        from: isize,
        to: isize,
    ) -> Result<Vec<Standing>, AppError> {
        let mut c = self.store.conn().await?;
        let rows: Vec<(String, f64)> = c
            .zrevrange_withscores(keys::leaderboard(week), from, to)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        let names: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(keys::leaderboard_names(week))
            .arg(&ids)
            .query_async(&mut c)
            .await?;
        Ok(rows
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, ((id, score), name))| Standing {
                rank: from as u64 + i as u64 + 1,
                player: name.unwrap_or_else(|| id.clone()),
                score: *score as u32,
            })
            .collect())
    }

    pub async fn leaderboard(&self, week: &str, limit: u32) -> Result<Vec<Standing>, AppError> {
        self.standings(week, 0, limit as isize - 1).await
    }

    /// The player's rank this week and the two players either side.
    pub async fn around(
        &self,
        player: &Player,
        week: &str,
    ) -> Result<(Option<u64>, Vec<Standing>), AppError> {
        let mut c = self.store.conn().await?;
        let rank: Option<u64> = c.zrevrank(keys::leaderboard(week), &player.id).await?;
        match rank {
            None => Ok((None, Vec::new())),
            Some(r) => {
                let from = r.saturating_sub(2) as isize;
                Ok((
                    Some(r + 1),
                    self.standings(week, from, r as isize + 2).await?,
                ))
            }
        }
    }

    /// Deletes what the game keeps about `player`: profile, "seen" sets, and entries
    /// on every leaderboard still kept, and takes back what their games added to the
    /// global statistics (the smoke checks' players must not inflate them). Returns how
    /// many keys changed.
    pub async fn forget(&self, player: &Player) -> Result<u64, AppError> {
        let mut c = self.store.conn().await?;
        let taken = redis::Script::new(TAKE_PROFILE)
            .key(keys::profile(&player.id))
            .invoke_async(&mut c)
            .await
            .map(values)?;
        let mut changed = taken.first().map(int).unwrap_or(0) as u64;
        if taken.len() > 1 {
            // The profile and the statistics are in different slots: two steps. Should
            // the second fail, the statistics keep the player's games, never lose more.
            let lua = redis::Script::new(SUBTRACT_STATS);
            let mut subtract = lua.prepare_invoke();
            subtract.key(keys::stats());
            for v in &taken[1..] {
                subtract.arg(v.as_str().unwrap_or_default());
            }
            subtract.invoke_async::<()>(&mut c).await?;
        }
        for cat in crate::questions::CATEGORIES {
            let n: u64 = c.del(keys::seen(cat.id, &player.id)).await?;
            changed += n;
        }
        let now = time::OffsetDateTime::now_utc();
        let weeks = LEADERBOARD_TTL.as_secs() / (7 * 86400) + 1;
        for back in 0..=weeks {
            let (year, week, _) = (now - time::Duration::weeks(back as i64)).to_iso_week_date();
            let week = format!("{year}-W{week:02}");
            // Both keys share the week's slot: one round trip.
            let (a, b): (u64, u64) = redis::pipe()
                .cmd("ZREM")
                .arg(keys::leaderboard(&week))
                .arg(&player.id)
                .cmd("HDEL")
                .arg(keys::leaderboard_names(&week))
                .arg(&player.id)
                .query_async(&mut c)
                .await?;
            changed += a + b;
        }
        Ok(changed)
    }

    pub async fn profile(&self, player: &Player) -> Result<Value, AppError> {
        let mut c = self.store.conn().await?;
        let p: HashMap<String, u64> = c.hgetall(keys::profile(&player.id)).await?;
        let get = |k: &str| p.get(k).copied().unwrap_or(0);
        let (correct, answered) = (get("correct"), get("answered"));
        let accuracy = if answered == 0 {
            0.0
        } else {
            (correct as f64 / answered as f64 * 1000.0).round() / 1000.0
        };
        let level = ((correct as f64 / 5.0).sqrt().floor() as u64) + 1;
        Ok(serde_json::json!({
            "player": player.name,
            "games_played": get("games_played"),
            "best_score": get("best_score"),
            "correct": correct,
            "answered": answered,
            "accuracy": accuracy,
            "level": level,
        }))
    }
}

fn values(v: redis::Value) -> Vec<Value> {
    match v {
        redis::Value::Array(items) => items.into_iter().map(one).collect(),
        other => vec![one(other)],
    }
}

fn one(v: redis::Value) -> Value {
    match v {
        redis::Value::Int(i) => Value::from(i),
        redis::Value::BulkString(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        redis::Value::SimpleString(s) => Value::String(s),
        redis::Value::Okay => Value::String("OK".into()),
        _ => Value::Null,
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cluster mode lets a script touch only the keys it declares: each `redis.call`
    /// in this crate's scripts must name its key as `KEYS[n]`, never build it.
    #[test]
    fn scripts_touch_only_the_keys_they_declare() {
        let call = concat!("redis", ".call(");
        let sources = [
            ("game.rs", include_str!("game.rs")),
            ("questions.rs", include_str!("questions.rs")),
        ];
        let mut calls = 0;
        for (file, source) in sources {
            for rest in source.split(call).skip(1) {
                calls += 1;
                let statement: String = rest.chars().take_while(|c| *c != '\n').collect();
                let key = statement.split_once(',').map(|(_, k)| k.trim_start());
                assert!(
                    key.is_some_and(|k| k.starts_with("KEYS[")
                        && k[5..].starts_with(|c: char| c.is_ascii_digit())),
                    "{file}: `{call}{statement}` names a key that is not in KEYS"
                );
            }
        }
        assert!(calls > 20, "found only {calls} calls: the scan is broken");
    }

    #[test]
    fn game_ids_name_their_category_and_nothing_else_parses() {
        let game = GameRef::new(crate::questions::category("music").unwrap());
        let parsed = GameRef::parse(&game.id()).unwrap();
        assert_eq!(parsed.key(), game.key());
        assert!(
            game.key().starts_with("trivia:{c:music}:"),
            "{}",
            game.key()
        );
        for bad in [
            "nope",
            "0123456789abcdef01234567",
            "astrology-0123456789abcdef01234567",
            "music-0123456789abcdef0123456",
            "music-0123456789abcdef0123456z",
        ] {
            assert!(GameRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_same_seed_shows_the_same_order() {
        let q = Question::from_encoded("music", "easy", "Q?", "a", &["b", "c", "d"]);
        let orders: std::collections::BTreeSet<Vec<String>> =
            (0..20).map(|seed| public(&q, 1, 1, seed).choices).collect();
        assert!(orders.len() > 1, "seeds shuffle");
        assert_eq!(public(&q, 1, 1, 7), public(&q, 1, 1, 7));
    }
}
