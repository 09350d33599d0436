//! Games, answers, leaderboards and profiles on Valkey.
//!
//! Choosing the next question is one script in the category's slot: it samples a few
//! ids, skips those the player has seen, marks the chosen one seen and returns only
//! that question (about one KB). Answers and finishes are scripts on the game's key,
//! so a replayed answer is refused atomically.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;
use serde_json::Value;

use crate::error::AppError;
use crate::identity::Player;
use crate::keys;
use crate::questions::{Category, Loader, Question};
use crate::store::Store;

pub const GAME_TTL: Duration = Duration::from_secs(3600);
pub const SEEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub const LEADERBOARD_TTL: Duration = Duration::from_secs(8 * 7 * 24 * 3600);
pub const PROFILE_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// KEYS: ids, seen. ARGV: question key prefix, sample size, seen TTL (s).
const NEXT_QUESTION: &str = r#"
local function serve(id)
  local q = redis.call('GET', ARGV[1] .. id)
  if not q then
    redis.call('SREM', KEYS[1], id)
    return nil
  end
  redis.call('SADD', KEYS[2], id)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return q
end
for _, id in ipairs(redis.call('SRANDMEMBER', KEYS[1], tonumber(ARGV[2]))) do
  if redis.call('SISMEMBER', KEYS[2], id) == 0 then
    local q = serve(id)
    if q then return q end
  end
end
for _, id in ipairs(redis.call('SDIFF', KEYS[1], KEYS[2])) do
  local q = serve(id)
  if q then return q end
end
-- Seen them all: start the cycle again.
redis.call('DEL', KEYS[2])
local any = redis.call('SRANDMEMBER', KEYS[1])
if any then return serve(any) end
return nil
"#;

/// KEYS: game. ARGV: the question id read before choosing, new id, answer, question.
const SET_QUESTION: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local current = redis.call('HGET', KEYS[1], 'qid') or ''
if current ~= ARGV[1] then return {'raced', redis.call('HGET', KEYS[1], 'question') or ''} end
redis.call('HSET', KEYS[1], 'qid', ARGV[2], 'answer', ARGV[3], 'question', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'asked', 1)
return {'ok', ARGV[4]}
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

/// KEYS: profile. ARGV: score, answered, TTL (s).
const RECORD_PROFILE: &str = r#"
redis.call('HINCRBY', KEYS[1], 'games_played', 1)
redis.call('HINCRBY', KEYS[1], 'correct', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'answered', ARGV[2])
local best = tonumber(redis.call('HGET', KEYS[1], 'best_score') or '-1')
if tonumber(ARGV[1]) > best then redis.call('HSET', KEYS[1], 'best_score', ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('HGET', KEYS[1], 'best_score')
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

fn public(q: &Question, number: u32, of: u32) -> PublicQuestion {
    let mut choices: Vec<String> = q
        .incorrect
        .iter()
        .cloned()
        .chain(std::iter::once(q.correct.clone()))
        .collect();
    fastrand::shuffle(&mut choices);
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

fn new_id() -> String {
    format!("{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

fn game_id(raw: &str) -> Result<&str, AppError> {
    if raw.len() == 24 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw)
    } else {
        Err(AppError::not_found(
            "game_not_found",
            format!("no game `{raw}`"),
        ))
    }
}

impl Games {
    pub async fn start(&self, player: &Player, category: &Category) -> Result<Started, AppError> {
        self.loader.fill(category, false).await?;
        let id = new_id();
        let key = keys::game(&id);
        let mut c = self.store.conn().await?;
        redis::pipe()
            .cmd("HSET")
            .arg(&key)
            .arg(&[
                ("user", player.id.as_str()),
                ("name", player.name.as_str()),
                ("category", category.id),
                ("status", "active"),
            ])
            .arg(&[
                ("score", 0),
                ("answered", 0),
                ("asked", 0),
                ("total", self.questions_per_game),
            ])
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(GAME_TTL.as_secs())
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        let question = self.question(player, &id).await?;
        Ok(Started {
            game_id: id,
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
        let id = game_id(raw_id)?;
        let key = keys::game(id);
        let mut c = self.store.conn().await?;
        let g: HashMap<String, String> = c.hgetall(&key).await?;
        if g.is_empty() || g.get("user") != Some(&player.id) {
            return Err(AppError::not_found(
                "game_not_found",
                format!("no game `{id}` (games expire after an hour)"),
            ));
        }
        if g.get("status").map(String::as_str) != Some("active") {
            return Err(AppError::conflict("game_finished", "this game is finished"));
        }
        let current = g.get("qid").cloned().unwrap_or_default();
        if !current.is_empty() && !g.contains_key(&format!("answered:{current}")) {
            return serde_json::from_str(&g["question"])
                .map_err(|e| AppError::Internal(e.to_string()));
        }
        let asked: u32 = g.get("asked").and_then(|v| v.parse().ok()).unwrap_or(0);
        let total: u32 = g
            .get("total")
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.questions_per_game);
        if asked >= total {
            return Err(AppError::conflict(
                "game_complete",
                "every question is answered; POST /games/{id}/finish",
            ));
        }
        let category = g.get("category").cloned().unwrap_or_default();
        let cat = crate::questions::category(&category)
            .ok_or_else(|| AppError::Internal(format!("game has unknown category {category}")))?;
        let mut picked: Option<String> = self.pick(&mut c, cat, &player.id).await?;
        if picked.is_none() {
            // The cache expired under the game: refill and try once more.
            self.loader.fill(cat, false).await?;
            picked = self.pick(&mut c, cat, &player.id).await?;
        }
        let body = picked.ok_or_else(|| {
            AppError::Store(crate::store::StoreError(format!(
                "no questions available in `{category}`"
            )))
        })?;
        let q: Question =
            serde_json::from_str(&body).map_err(|e| AppError::Internal(e.to_string()))?;
        let shown = public(&q, asked + 1, total);
        let shown_json = serde_json::to_string(&shown).expect("question serializes");
        let reply: Vec<String> = redis::Script::new(SET_QUESTION)
            .key(&key)
            .arg(&current)
            .arg(&q.id)
            .arg(&q.correct)
            .arg(&shown_json)
            .invoke_async(&mut c)
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(shown),
            // Another request moved the game on first: show what it chose.
            Some("raced") => serde_json::from_str(reply.get(1).map(String::as_str).unwrap_or(""))
                .map_err(|e| AppError::Internal(e.to_string())),
            _ => Err(AppError::not_found(
                "game_not_found",
                format!("no game `{id}`"),
            )),
        }
    }

    async fn pick(
        &self,
        c: &mut crate::store::Conn,
        cat: &Category,
        player: &str,
    ) -> Result<Option<String>, AppError> {
        Ok(redis::Script::new(NEXT_QUESTION)
            .key(keys::question_ids(cat.id))
            .key(keys::seen(cat.id, player))
            .arg(keys::question_prefix(cat.id))
            .arg(5)
            .arg(SEEN_TTL.as_secs())
            .invoke_async(c)
            .await?)
    }

    pub async fn answer(
        &self,
        player: &Player,
        raw_id: &str,
        question_id: &str,
        answer: &str,
    ) -> Result<Answered, AppError> {
        let id = game_id(raw_id)?;
        let mut c = self.store.conn().await?;
        let reply: Vec<Value> = redis::Script::new(ANSWER)
            .key(keys::game(id))
            .arg(&player.id)
            .arg(question_id)
            .arg(answer.trim())
            .invoke_async(&mut c)
            .await
            .map(|v: redis::Value| values(v))?;
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
            _ => Err(AppError::not_found(
                "game_not_found",
                format!("no game `{id}` (games expire after an hour)"),
            )),
        }
    }

    pub async fn finish(&self, player: &Player, raw_id: &str) -> Result<Finished, AppError> {
        let id = game_id(raw_id)?;
        let mut c = self.store.conn().await?;
        let reply: Vec<Value> = redis::Script::new(FINISH)
            .key(keys::game(id))
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
            _ => {
                return Err(AppError::not_found(
                    "game_not_found",
                    format!("no game `{id}` (games expire after an hour)"),
                ))
            }
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
        let best: u32 = redis::Script::new(RECORD_PROFILE)
            .key(keys::profile(&player.id))
            .arg(score)
            .arg(answered)
            .arg(PROFILE_TTL.as_secs())
            .invoke_async::<String>(&mut c)
            .await?
            .parse()
            .unwrap_or(score);
        redis::pipe()
            .cmd("HINCRBY")
            .arg(keys::stats())
            .arg("games")
            .arg(1)
            .ignore()
            .cmd("HINCRBY")
            .arg(keys::stats())
            .arg("answers")
            .arg(answered)
            .ignore()
            .cmd("EXPIRE")
            .arg(keys::stats())
            .arg(PROFILE_TTL.as_secs())
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
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
    /// on every leaderboard still kept. Returns how many keys changed. Global counters
    /// are aggregates and stay.
    pub async fn forget(&self, player: &Player) -> Result<u64, AppError> {
        let mut c = self.store.conn().await?;
        let mut changed: u64 = c.del(keys::profile(&player.id)).await?;
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
