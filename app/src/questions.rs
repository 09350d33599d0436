//! Questions: the categories, a stable id per question, the bundled bank, the
//! OpenTDB-format source, and the loader that fills a category's cache — one loader at
//! a time (a lock with a token and an expiry, released only by its owner), falling
//! back to the bank when the source fails.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys;
use crate::store::{Store, StoreError};

/// Questions cached per category live this long (the preloader refills every 6 hours).
pub const QUESTION_TTL: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Category {
    pub id: &'static str,
    pub name: &'static str,
    /// The source's category number.
    #[serde(skip)]
    pub source_id: u32,
}

pub const CATEGORIES: [Category; 7] = [
    Category {
        id: "general",
        name: "General Knowledge",
        source_id: 9,
    },
    Category {
        id: "science",
        name: "Science & Nature",
        source_id: 17,
    },
    Category {
        id: "computers",
        name: "Computers",
        source_id: 18,
    },
    Category {
        id: "geography",
        name: "Geography",
        source_id: 22,
    },
    Category {
        id: "history",
        name: "History",
        source_id: 23,
    },
    Category {
        id: "sports",
        name: "Sports",
        source_id: 21,
    },
    Category {
        id: "music",
        name: "Music",
        source_id: 12,
    },
];

pub fn category(id: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.id == id)
}

/// A question with its answer; never sent to a player before they answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub category: String,
    pub difficulty: String,
    pub text: String,
    pub correct: String,
    pub incorrect: Vec<String>,
}

impl Question {
    /// Builds a question from HTML-encoded source text; the id is stable across
    /// sources and loads (category and decoded text), so duplicates collapse.
    pub fn from_encoded(
        category: &str,
        difficulty: &str,
        text: &str,
        correct: &str,
        incorrect: &[&str],
    ) -> Self {
        let decode = |s: &str| html_escape::decode_html_entities(s).trim().to_string();
        let text = decode(text);
        let mut hash = Sha256::new();
        hash.update(category.as_bytes());
        hash.update([0]);
        hash.update(text.to_lowercase().as_bytes());
        let id = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            id,
            category: category.into(),
            difficulty: decode(difficulty),
            text,
            correct: decode(correct),
            incorrect: incorrect.iter().map(|s| decode(s)).collect(),
        }
    }
}

/// The bundled bank: at least 200 questions written for this project.
pub fn bank() -> Vec<Question> {
    include_str!("../questions/bank.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 7).then(|| Question::from_encoded(f[0], f[1], f[2], f[3], &f[4..7]))
        })
        .collect()
}

/// Why the source gave no questions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("the question source is unreachable: {0}")]
    Unreachable(String),
    #[error("the source has too few questions for this query (code 1)")]
    NoResults,
    #[error("the source rejected the query (code 2)")]
    InvalidParameter,
    #[error("the source kept rate limiting (code 5)")]
    RateLimited,
    #[error("the source's answer was malformed: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct SourceBatch {
    response_code: u8,
    #[serde(default)]
    results: Vec<SourceQuestion>,
}

#[derive(Deserialize)]
struct SourceQuestion {
    difficulty: String,
    question: String,
    correct_answer: String,
    incorrect_answers: Vec<String>,
}

#[derive(Deserialize)]
struct TokenReply {
    response_code: u8,
    #[serde(default)]
    token: Option<String>,
}

/// An OpenTDB-compatible source, with its session token (no repeats across batches).
pub struct OpenTdb {
    base: String,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<String>>,
    /// How long to back off when told to slow down (OpenTDB allows one call per 5 s).
    pub rate_limit_pause: Duration,
}

impl OpenTdb {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client builds");
        Self {
            base: base.trim_end_matches('/').into(),
            http,
            token: tokio::sync::Mutex::new(None),
            rate_limit_pause: Duration::from_secs(5),
        }
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, SourceError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| SourceError::Unreachable(e.to_string()))?;
        if resp.status().is_server_error() {
            return Err(SourceError::Unreachable(format!("HTTP {}", resp.status())));
        }
        resp.json()
            .await
            .map_err(|e| SourceError::Malformed(e.to_string()))
    }

    async fn new_token(&self) -> Option<String> {
        let r: TokenReply = self
            .get(&format!("{}/api_token.php?command=request", self.base))
            .await
            .ok()?;
        (r.response_code == 0).then_some(r.token).flatten()
    }

    /// Fetches up to `amount` multiple-choice questions of `category`.
    pub async fn fetch(
        &self,
        category: &Category,
        amount: u32,
    ) -> Result<Vec<Question>, SourceError> {
        let mut token = self.token.lock().await;
        if token.is_none() {
            *token = self.new_token().await;
        }
        for _attempt in 0..4 {
            let mut url = format!(
                "{}/api.php?amount={amount}&category={}&type=multiple",
                self.base, category.source_id
            );
            if let Some(t) = token.as_ref() {
                url.push_str(&format!("&token={t}"));
            }
            let batch: SourceBatch = self.get(&url).await?;
            match batch.response_code {
                0 => {
                    return Ok(batch
                        .results
                        .iter()
                        .map(|q| {
                            let wrong: Vec<&str> =
                                q.incorrect_answers.iter().map(String::as_str).collect();
                            Question::from_encoded(
                                category.id,
                                &q.difficulty,
                                &q.question,
                                &q.correct_answer,
                                &wrong,
                            )
                        })
                        .collect())
                }
                1 => return Err(SourceError::NoResults),
                2 => return Err(SourceError::InvalidParameter),
                // Token unknown: get a new one. Token exhausted: reset it.
                3 => *token = self.new_token().await,
                4 => {
                    if let Some(t) = token.clone() {
                        let _ = self
                            .get::<TokenReply>(&format!(
                                "{}/api_token.php?command=reset&token={t}",
                                self.base
                            ))
                            .await;
                    }
                }
                5 => tokio::time::sleep(self.rate_limit_pause).await,
                other => {
                    return Err(SourceError::Malformed(format!(
                        "unknown response_code {other}"
                    )))
                }
            }
        }
        Err(SourceError::RateLimited)
    }
}

/// Where a load's questions came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Source,
    /// The source failed; the bundled bank filled in (the reason is kept).
    Bank {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Load {
    /// The category already had questions.
    AlreadyLoaded { count: u64 },
    /// This loader filled it.
    Filled { count: u64, origin: Origin },
    /// Another loader held the lock and filled it meanwhile.
    FilledByOther { count: u64 },
}

/// Fills categories, one loader per category at a time.
#[derive(Clone)]
pub struct Loader {
    store: Store,
    source: Option<std::sync::Arc<OpenTdb>>,
    pub lock_ttl: Duration,
    pub batch: u32,
}

/// KEYS: questions. ARGV: TTL (s), then id and JSON of each question.
const STORE_QUESTIONS: &str = r#"
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if #ARGV > 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return redis.status_reply('OK')
"#;

/// KEYS: lock. ARGV: the owner's token.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl Loader {
    pub fn new(store: Store, source: Option<std::sync::Arc<OpenTdb>>) -> Self {
        Self {
            store,
            source,
            lock_ttl: Duration::from_secs(30),
            batch: 50,
        }
    }

    pub async fn count(&self, category: &Category) -> Result<u64, StoreError> {
        let mut c = self.store.conn().await?;
        Ok(c.hlen(keys::questions(category.id)).await?)
    }

    /// Makes sure `category` has questions: fills it if empty (or always, with
    /// `force`), or waits for the loader that holds the lock.
    pub async fn fill(&self, category: &Category, force: bool) -> Result<Load, StoreError> {
        if !force {
            let count = self.count(category).await?;
            if count > 0 {
                return Ok(Load::AlreadyLoaded { count });
            }
        }
        let lock = keys::loader_lock(category.id);
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let mut c = self.store.conn().await?;
        let acquired: bool = redis::cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.lock_ttl.as_millis() as u64)
            .query_async::<Option<String>>(&mut c)
            .await?
            .is_some();
        if !acquired {
            return self.wait_for_other(category).await;
        }
        let result = self.load_and_store(category).await;
        // Released only if still ours: a lock that expired may belong to another loader.
        let _: i64 = redis::Script::new(RELEASE)
            .key(&lock)
            .arg(&token)
            .invoke_async(&mut c)
            .await
            .unwrap_or(0);
        result
    }

    async fn wait_for_other(&self, category: &Category) -> Result<Load, StoreError> {
        let started = std::time::Instant::now();
        loop {
            let count = self.count(category).await?;
            if count > 0 {
                return Ok(Load::FilledByOther { count });
            }
            if started.elapsed() > self.lock_ttl {
                return Err(StoreError(format!(
                    "gave up waiting for another loader to fill `{}`",
                    category.id
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn load_and_store(&self, category: &Category) -> Result<Load, StoreError> {
        let fetched = match &self.source {
            Some(s) => s.fetch(category, self.batch).await,
            None => Err(SourceError::Unreachable("no source configured".into())),
        };
        let (questions, origin) = match fetched {
            Ok(q) if !q.is_empty() => (q, Origin::Source),
            Ok(_) => (
                bank_for(category),
                Origin::Bank {
                    reason: "the source returned no questions".into(),
                },
            ),
            Err(e) => (
                bank_for(category),
                Origin::Bank {
                    reason: e.to_string(),
                },
            ),
        };
        self.store_questions(category, &questions).await?;
        Ok(Load::Filled {
            count: self.count(category).await?,
            origin,
        })
    }

    /// Replaces the category's questions with `questions` (deduplicated by id) in one
    /// script, so players never see the category empty or half written. Replacing
    /// rather than adding keeps the hash to one load's worth: a single key has a single
    /// TTL, so old questions cannot expire one by one.
    pub async fn store_questions(
        &self,
        category: &Category,
        questions: &[Question],
    ) -> Result<(), StoreError> {
        let mut c = self.store.conn().await?;
        let lua = redis::Script::new(STORE_QUESTIONS);
        let mut script = lua.prepare_invoke();
        script
            .key(keys::questions(category.id))
            .arg(QUESTION_TTL.as_secs());
        let mut seen = std::collections::BTreeSet::new();
        for q in questions.iter().filter(|q| seen.insert(q.id.clone())) {
            script
                .arg(&q.id)
                .arg(serde_json::to_string(q).expect("question serializes"));
        }
        script.invoke_async::<()>(&mut c).await?;
        Ok(())
    }
}

fn bank_for(category: &Category) -> Vec<Question> {
    bank()
        .into_iter()
        .filter(|q| q.category == category.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bank_has_enough_questions_in_every_category() {
        let bank = bank();
        assert!(bank.len() >= 200, "{} questions", bank.len());
        for c in CATEGORIES {
            let n = bank.iter().filter(|q| q.category == c.id).count();
            assert!(n >= 25, "{}: {n}", c.id);
        }
        let ids: std::collections::BTreeSet<&str> = bank.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids.len(), bank.len(), "question ids are unique");
        assert!(bank
            .iter()
            .all(|q| q.incorrect.len() == 3 && !q.incorrect.contains(&q.correct)));
    }

    #[test]
    fn entities_are_decoded_and_ids_are_stable() {
        let q = Question::from_encoded(
            "music",
            "easy",
            "Which composer wrote &quot;F&uuml;r Elise&quot;?",
            "Ludwig van Beethoven",
            &["Mozart", "Bach", "Fr&eacute;d&eacute;ric Chopin"],
        );
        assert_eq!(q.text, "Which composer wrote \"Für Elise\"?");
        assert_eq!(q.incorrect[2], "Frédéric Chopin");
        let same = Question::from_encoded(
            "music",
            "hard",
            "Which composer wrote \"Für Elise\"?",
            "x",
            &["a", "b", "c"],
        );
        assert_eq!(q.id, same.id, "the id depends on category and text only");
        let bank = bank();
        assert!(
            bank.iter().any(|q| q.text.contains('"')),
            "the bank exercises entity decoding"
        );
        assert!(bank
            .iter()
            .all(|q| !q.text.contains("&quot;") && !q.text.contains("&#039;")));
    }
}
