//! The game against a real Valkey (cluster mode unless stated), through the router.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use common::{app, call, send, Fakes, Flavor, Server};
use serde_json::{json, Value};
use trivia::questions::{category, Load, Loader, Origin, Question};

/// The correct answer of a game's current question, read behind the app's back.
async fn peek_answer(server: &Server, game: &str) -> String {
    let mut c = server.raw().await.unwrap();
    let (category, nonce) = game.split_once('-').unwrap();
    redis::cmd("HGET")
        .arg(format!("trivia:{{c:{category}}}:game:{nonce}"))
        .arg("answer")
        .query_async(&mut c)
        .await
        .unwrap()
}

/// Plays a whole game answering `correct` questions right; returns the finish body.
async fn play(
    app: &axum::Router,
    server: &Server,
    token: &str,
    cat: &str,
    questions: u32,
    correct: u32,
) -> Value {
    let (s, started) = call(
        app,
        "POST",
        "/games",
        Some(token),
        Some(&format!(r#"{{"category":"{cat}"}}"#)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    let game = started["game_id"].as_str().unwrap().to_string();
    for i in 0..questions {
        let (s, q) = call(
            app,
            "GET",
            &format!("/games/{game}/question"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{q}");
        let right = peek_answer(server, &game).await;
        let answer = if i < correct {
            right.clone()
        } else {
            "definitely wrong".to_string()
        };
        let body = serde_json::json!({"question_id": q["id"], "answer": answer}).to_string();
        let (s, a) = call(
            app,
            "POST",
            &format!("/games/{game}/answers"),
            Some(token),
            Some(&body),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert_eq!(a["correct"], i < correct);
        assert_eq!(a["correct_answer"], right.as_str());
    }
    let (s, f) = call(
        app,
        "POST",
        &format!("/games/{game}/finish"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_game_in_cluster_mode() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "4")]);
    let token = fakes.token("ada");

    let (s, health) = call(&app, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::OK, "{health}");
    assert_eq!(health["valkey"]["reachable"], true);
    assert!(health["valkey"]["latency_ms"].as_f64().unwrap() >= 0.0);

    let (s, started) = call(
        &app,
        "POST",
        "/games",
        Some(&token),
        Some(r#"{"category":"science"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    let q = &started["question"];
    let keys: std::collections::BTreeSet<&str> =
        q.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "category",
            "choices",
            "difficulty",
            "id",
            "number",
            "of",
            "text"
        ]
        .into(),
        "no answer field leaves the server"
    );
    assert_eq!(q["choices"].as_array().unwrap().len(), 4);
    assert_eq!(q["number"], 1);
    let game = started["game_id"].as_str().unwrap();
    // Asking again before answering returns the same question.
    let (_, again) = call(
        &app,
        "GET",
        &format!("/games/{game}/question"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(&again, q);

    let finished = play(&app, &server, &token, "science", 4, 3).await;
    assert_eq!(finished["score"], 3);
    assert_eq!(finished["rank"], 1);
    let (_, me) = call(&app, "GET", "/me", Some(&token), None).await;
    assert_eq!(me["games_played"], 1);
    assert_eq!(me["best_score"], 3);
    assert_eq!(me["accuracy"], 0.75);
    let (_, board) = call(&app, "GET", "/leaderboard", None, None).await;
    assert_eq!(board["entries"][0]["player"], "ada");
    assert_eq!(board["entries"][0]["score"], 3);
    let (_, cats) = call(&app, "GET", "/categories", None, None).await;
    let science = cats["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "science")
        .unwrap();
    assert!(science["questions_loaded"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_written_has_a_ttl() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, state) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "2")]);
    play(&app, &server, &fakes.token("ada"), "history", 2, 1).await;
    // An unfinished game and a preloader run too.
    call(
        &app,
        "POST",
        "/games",
        Some(&fakes.token("bob")),
        Some(r#"{"category":"music"}"#),
    )
    .await;
    state
        .games
        .loader
        .fill(category("sports").unwrap(), true)
        .await
        .unwrap();
    let mut c = server.raw().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.len() > 10, "{keys:?}");
    for k in keys {
        let ttl: i64 = redis::cmd("TTL").arg(&k).query_async(&mut c).await.unwrap();
        assert!(ttl > 0, "{k} has no TTL ({ttl})");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leaderboard_ranks_neighbours_and_best_score_kept() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "5")]);
    // Players p0..p5 score 0..5.
    for i in 0..6u32 {
        play(
            &app,
            &server,
            &fakes.token(&format!("p{i}")),
            "geography",
            5,
            i,
        )
        .await;
    }
    let (_, board) = call(&app, "GET", "/leaderboard?limit=3", None, None).await;
    let top: Vec<(&str, u64)> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["player"].as_str().unwrap(), e["score"].as_u64().unwrap()))
        .collect();
    assert_eq!(top, vec![("p5", 5), ("p4", 4), ("p3", 3)]);

    let (_, me) = call(
        &app,
        "GET",
        "/leaderboard/me",
        Some(&fakes.token("p2")),
        None,
    )
    .await;
    assert_eq!(me["rank"], 4);
    let around: Vec<&str> = me["around"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["player"].as_str().unwrap())
        .collect();
    assert_eq!(around, vec!["p4", "p3", "p2", "p1", "p0"]);

    // A worse game does not lower the weekly best.
    let f = play(&app, &server, &fakes.token("p5"), "geography", 5, 1).await;
    assert_eq!(f["score"], 1);
    assert_eq!(f["weekly_best"], 5);
    assert_eq!(f["rank"], 1);
    let (_, me) = call(&app, "GET", "/me", Some(&fakes.token("p5")), None).await;
    assert_eq!(me["games_played"], 2);
    assert_eq!(me["best_score"], 5);

    let (_, nobody) = call(
        &app,
        "GET",
        "/leaderboard/me",
        Some(&fakes.token("stranger")),
        None,
    )
    .await;
    assert_eq!(nobody["rank"], Value::Null);
    let week = trivia::game::current_week();
    let (s, explicit) = call(
        &app,
        "GET",
        &format!("/leaderboard?week={week}&limit=100"),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(explicit["entries"].as_array().unwrap().len(), 6);
    let (s, bad) = call(&app, "GET", "/leaderboard?week=2026-W99", None, None).await;
    assert_eq!(
        (s, bad["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_week"))
    );
    let (s, bad) = call(&app, "GET", "/leaderboard?limit=0", None, None).await;
    assert_eq!(
        (s, bad["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_limit"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_player_is_not_served_a_question_twice_until_the_category_is_exhausted() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, state) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "4")]);
    let music = category("music").unwrap();
    let eight: Vec<Question> = (0..8)
        .map(|i| {
            Question::from_encoded("music", "easy", &format!("Q{i}?"), "yes", &["a", "b", "c"])
        })
        .collect();
    state
        .games
        .loader
        .store_questions(music, &eight)
        .await
        .unwrap();
    let token = fakes.token("ada");
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..2 {
        let (_, started) = call(
            &app,
            "POST",
            "/games",
            Some(&token),
            Some(r#"{"category":"music"}"#),
        )
        .await;
        let game = started["game_id"].as_str().unwrap().to_string();
        for _ in 0..4 {
            let (_, q) = call(
                &app,
                "GET",
                &format!("/games/{game}/question"),
                Some(&token),
                None,
            )
            .await;
            assert!(
                served.insert(q["id"].as_str().unwrap().to_string()),
                "served twice: {q}"
            );
            let body = serde_json::json!({"question_id": q["id"], "answer": "yes"}).to_string();
            call(
                &app,
                "POST",
                &format!("/games/{game}/answers"),
                Some(&token),
                Some(&body),
            )
            .await;
        }
    }
    assert_eq!(served.len(), 8);
    assert_eq!(
        fakes.fetches.load(Ordering::SeqCst),
        0,
        "the cache was warm; the source was not asked"
    );
    // All seen: the cycle starts again instead of failing.
    let (s, started) = call(
        &app,
        "POST",
        "/games",
        Some(&token),
        Some(r#"{"category":"music"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    // Another player has seen nothing.
    let (_, other) = call(
        &app,
        "POST",
        "/games",
        Some(&fakes.token("bob")),
        Some(r#"{"category":"music"}"#),
    )
    .await;
    assert!(served.contains(other["question"]["id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_are_accepted_once_and_only_for_the_current_question() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "2")]);
    let token = fakes.token("ada");
    let (_, started) = call(
        &app,
        "POST",
        "/games",
        Some(&token),
        Some(r#"{"category":"computers"}"#),
    )
    .await;
    let game = started["game_id"].as_str().unwrap();
    let qid = started["question"]["id"].as_str().unwrap();
    let body = serde_json::json!({"question_id": qid, "answer": "x"}).to_string();
    let (s, _) = call(
        &app,
        "POST",
        &format!("/games/{game}/answers"),
        Some(&token),
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, replay) = call(
        &app,
        "POST",
        &format!("/games/{game}/answers"),
        Some(&token),
        Some(&body),
    )
    .await;
    assert_eq!(
        (s, replay["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_answered"))
    );
    let (_, next) = call(
        &app,
        "GET",
        &format!("/games/{game}/question"),
        Some(&token),
        None,
    )
    .await;
    let wrong = serde_json::json!({"question_id": "0000000000000000", "answer": "x"}).to_string();
    let (s, e) = call(
        &app,
        "POST",
        &format!("/games/{game}/answers"),
        Some(&token),
        Some(&wrong),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("wrong_question"))
    );
    // Another player cannot touch this game.
    let (s, e) = call(
        &app,
        "GET",
        &format!("/games/{game}/question"),
        Some(&fakes.token("eve")),
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("game_not_found"))
    );
    let body = serde_json::json!({"question_id": next["id"], "answer": "x"}).to_string();
    call(
        &app,
        "POST",
        &format!("/games/{game}/answers"),
        Some(&token),
        Some(&body),
    )
    .await;
    let (s, e) = call(
        &app,
        "GET",
        &format!("/games/{game}/question"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("game_complete"))
    );
    let (s, _) = call(
        &app,
        "POST",
        &format!("/games/{game}/finish"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = call(
        &app,
        "POST",
        &format!("/games/{game}/finish"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("game_finished"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn valkey_down_gives_503_and_the_app_recovers_without_a_restart() {
    let mut server = Server::start(Flavor::Standalone).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[]);
    let token = fakes.token("ada");
    assert_eq!(
        call(&app, "GET", "/health", None, None).await.0,
        StatusCode::OK
    );
    server.stop();
    let (s, health) = call(&app, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["valkey"]["reachable"], false);
    let (s, e) = call(
        &app,
        "POST",
        "/games",
        Some(&token),
        Some(r#"{"category":"science"}"#),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable")),
        "{e}"
    );
    server.restart().await;
    let mut recovered = false;
    for _ in 0..40 {
        if call(&app, "GET", "/health", None, None).await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "health did not recover after Valkey came back");
    let (s, _) = call(
        &app,
        "POST",
        "/games",
        Some(&token),
        Some(r#"{"category":"science"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_starts_while_valkey_is_down_and_connects_when_it_is_up() {
    let mut server = Server::start(Flavor::Standalone).await;
    server.stop();
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[]);
    assert_eq!(
        call(&app, "GET", "/health", None, None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.restart().await;
    assert_eq!(
        call(&app, "GET", "/health", None, None).await.0,
        StatusCode::OK
    );
}

fn loader_for(state: &trivia::AppState) -> Loader {
    let mut l = state.games.loader.clone();
    l.batch = 20;
    l
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preloader_fills_from_the_source_and_decodes_entities() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (_, state) = app(&server, &fakes, &[]);
    let cat = category("general").unwrap();
    let load = loader_for(&state).fill(cat, true).await.unwrap();
    assert_eq!(
        load,
        Load::Filled {
            count: 20,
            origin: Origin::Source
        }
    );
    assert_eq!(
        fakes.token_requests.load(Ordering::SeqCst),
        1,
        "a session token is requested once"
    );
    let mut c = server.raw().await.unwrap();
    // One hash per category: question id -> question.
    let stored: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg("trivia:{c:general}:questions")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(stored.len(), 20);
    let (id, body) = stored.iter().next().unwrap();
    let q: Question = serde_json::from_str(body).unwrap();
    assert_eq!(&q.id, id);
    assert!(
        q.text.contains("\"") && q.text.contains('&') && !q.text.contains("&quot;"),
        "{}",
        q.text
    );
    assert!(q.incorrect.iter().any(|w| w.contains('\'')));
    // Refilling adds the same questions again: ids are stable, so nothing duplicates.
    loader_for(&state).fill(cat, true).await.unwrap();
    let n: u64 = redis::cmd("HLEN")
        .arg("trivia:{c:general}:questions")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preloader_handles_every_response_code() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (_, state) = app(&server, &fakes, &[]);
    // A source that pauses 50 ms when rate limited, instead of OpenTDB's 5 s.
    let mut quick = trivia::questions::OpenTdb::new(&fakes.url);
    quick.rate_limit_pause = std::time::Duration::from_millis(50);
    let mut loader = Loader::new(state.games.store.clone(), Some(Arc::new(quick)));
    loader.batch = 10;
    // Rate limited (5) once, then served: one pause, two fetches.
    fakes.codes.lock().unwrap().extend([5]);
    let before = fakes.fetches.load(Ordering::SeqCst);
    let load = loader
        .fill(category("science").unwrap(), true)
        .await
        .unwrap();
    assert_eq!(
        load,
        Load::Filled {
            count: 10,
            origin: Origin::Source
        }
    );
    assert_eq!(fakes.fetches.load(Ordering::SeqCst) - before, 2);

    // Token not found (3): a new token, then served. Token exhausted (4): reset, then served.
    fakes.codes.lock().unwrap().extend([3]);
    assert!(matches!(
        loader
            .fill(category("history").unwrap(), true)
            .await
            .unwrap(),
        Load::Filled {
            origin: Origin::Source,
            ..
        }
    ));
    assert_eq!(fakes.token_requests.load(Ordering::SeqCst), 2);
    fakes.codes.lock().unwrap().extend([4]);
    assert!(matches!(
        loader
            .fill(category("sports").unwrap(), true)
            .await
            .unwrap(),
        Load::Filled {
            origin: Origin::Source,
            ..
        }
    ));
    assert_eq!(fakes.token_resets.load(Ordering::SeqCst), 1);

    // No results (1) and invalid parameter (2): the bundled bank fills in.
    for (code, cat) in [(1u8, "music"), (2, "computers")] {
        fakes.codes.lock().unwrap().extend([code]);
        match loader.fill(category(cat).unwrap(), true).await.unwrap() {
            Load::Filled {
                count,
                origin: Origin::Bank { reason },
            } => {
                assert!(count >= 25, "{cat}: {count}");
                assert!(reason.contains(&format!("code {code}")), "{reason}");
            }
            other => panic!("code {code}: {other:?}"),
        }
    }
    // Rate limited every time: give up, use the bank.
    fakes.codes.lock().unwrap().extend([5, 5, 5, 5, 5]);
    assert!(matches!(
        loader
            .fill(category("geography").unwrap(), true)
            .await
            .unwrap(),
        Load::Filled {
            origin: Origin::Bank { .. },
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_source_falls_back_to_the_bank() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let (app, _) = app(&server, &fakes, &[("QUESTION_SOURCE_URL", &dead)]);
    let (s, started) = call(
        &app,
        "POST",
        "/games",
        Some(&fakes.token("ada")),
        Some(r#"{"category":"history"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    let bank: Vec<Question> = trivia::questions::bank()
        .into_iter()
        .filter(|q| q.category == "history")
        .collect();
    assert!(
        bank.iter().any(|q| q.id == started["question"]["id"]),
        "served from the bank"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_refills_of_a_cold_category_fetch_once() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    fakes.delay_ms.store(300, Ordering::SeqCst);
    let (_, state) = app(&server, &fakes, &[]);
    let loader = loader_for(&state);
    let cat = category("science").unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let l = loader.clone();
            tokio::spawn(async move { l.fill(cat, false).await })
        })
        .collect();
    let mut filled = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Load::Filled { .. } => filled += 1,
            Load::FilledByOther { count } | Load::AlreadyLoaded { count } => assert_eq!(count, 20),
        }
    }
    assert_eq!(filled, 1, "exactly one loader filled the category");
    assert_eq!(
        fakes.fetches.load(Ordering::SeqCst),
        1,
        "the source was asked once"
    );
    let mut c = server.raw().await.unwrap();
    let lock: Option<String> = redis::cmd("GET")
        .arg("trivia:{c:science}:lock")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(lock.is_none(), "the lock was released by its owner");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_json_4xx_never_a_500() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[]);
    let token = fakes.token("ada");
    let cases: Vec<(&str, &str, Option<String>, StatusCode, &str)> = vec![
        (
            "POST",
            "/games",
            Some("{not json".into()),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "POST",
            "/games",
            Some(r#"{"category": 7}"#.into()),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/games",
            Some(r#"{"category":"astrology"}"#.into()),
            StatusCode::BAD_REQUEST,
            "unknown_category",
        ),
        (
            "POST",
            "/games",
            Some(format!(r#"{{"category":"{}"}}"#, "x".repeat(20_000))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "GET",
            "/games/nope/question",
            None,
            StatusCode::NOT_FOUND,
            "game_not_found",
        ),
        (
            "GET",
            "/games/0123456789abcdef01234567/question",
            None,
            StatusCode::NOT_FOUND,
            "game_not_found",
        ),
        (
            "POST",
            "/games/0123456789abcdef01234567/answers",
            Some(r#"{"question_id":"x","answer":"y"}"#.into()),
            StatusCode::NOT_FOUND,
            "game_not_found",
        ),
        (
            "POST",
            "/games/0123456789abcdef01234567/answers",
            Some(r#"{"question_id":"x"}"#.into()),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "GET",
            "/no/such/route",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (s, e) = call(&app, method, path, Some(&token), body.as_deref()).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (status, Some(code)),
            "{method} {path}: {e}"
        );
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_locally() {
    let server = Server::start(Flavor::Standalone).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[]);
    let (s, e) = call(&app, "GET", "/me", None, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    for bad in [
        fakes.token_with("ada", "id", "another-client", 3600, "test-key-1"),
        fakes.token_with("ada", "id", common::CLIENT_ID, -600, "test-key-1"),
        fakes.token_with("ada", "refresh", common::CLIENT_ID, 3600, "test-key-1"),
        fakes.token_with("ada", "id", common::CLIENT_ID, 3600, "unknown-key"),
        "not.a.jwt".to_string(),
    ] {
        let (s, e) = call(&app, "GET", "/me", Some(&bad), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    }
    let (s, _) = call(
        &app,
        "GET",
        "/me",
        Some(&fakes.token_with("ada", "access", common::CLIENT_ID, 3600, "test-key-1")),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "access tokens for this client are accepted"
    );
    // Public routes need no token.
    assert_eq!(
        call(&app, "GET", "/leaderboard", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/categories", None, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_jwks_is_a_503_for_that_request_not_a_crash() {
    let server = Server::start(Flavor::Standalone).await;
    let fakes = Fakes::start().await;
    let dead = format!("http://127.0.0.1:{}/jwks.json", common::free_port());
    let (app, _) = app(&server, &fakes, &[("COGNITO_JWKS_URL", &dead)]);
    let (s, e) = call(&app, "GET", "/me", Some(&fakes.token("ada")), None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("identity_unavailable")
        )
    );
    assert_eq!(
        call(&app, "GET", "/health", None, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_game_over_tls() {
    let server = Server::start(Flavor::Tls).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "2")]);
    let (s, health) = call(&app, "GET", "/health", None, None).await;
    assert_eq!(s, StatusCode::OK, "{health}");
    let f = play(&app, &server, &fakes.token("ada"), "sports", 2, 2).await;
    assert_eq!(f["score"], 2);
}

/// An API Gateway REST proxy event as the Lambda adapter turns it into a request: the
/// stage in the path, the authorizer's claims (if any) in the request context.
fn lambda_request(
    method: &str,
    path: &str,
    headers: Value,
    claims: Option<Value>,
) -> axum::http::Request<axum::body::Body> {
    let mut ctx = serde_json::json!({"accountId": "1", "resourceId": "r", "stage": "v1", "requestId": "id", "identity": {}, "resourcePath": path, "httpMethod": method, "apiId": "api", "authorizer": {}});
    if let Some(c) = claims {
        ctx["authorizer"]["claims"] = c;
    }
    let e = serde_json::json!({"resource": path, "path": path, "httpMethod": method, "headers": headers, "multiValueHeaders": {}, "queryStringParameters": null, "multiValueQueryStringParameters": null, "pathParameters": null, "stageVariables": null, "requestContext": ctx, "body": null, "isBase64Encoded": false});
    let (parts, body) = lambda_http::request::from_str(&e.to_string())
        .unwrap()
        .into_parts();
    axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()))
}

/// The router as `trivia-api` runs it in Lambda mode: the stage stripped before routing.
fn lambda_app(server: &Server, extra: &[(&str, &str)]) -> axum::Router {
    let map: std::collections::HashMap<String, String> = server
        .env()
        .into_iter()
        .chain([(
            "AWS_LAMBDA_RUNTIME_API".to_string(),
            "127.0.0.1:9".to_string(),
        )])
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let config = trivia::config::Config::from_lookup(|k| map.get(k).cloned()).unwrap();
    let app = trivia::router(trivia::AppState::new(&config));
    axum::Router::new().fallback_service(tower::ServiceExt::map_request(app, trivia::strip_stage))
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_mode_takes_the_player_from_the_authorizer_claims() {
    let server = Server::start(Flavor::Cluster).await;
    let app = lambda_app(&server, &[]);
    let (status, _, v) = send(
        &app,
        lambda_request(
            "GET",
            "/me",
            json!({}),
            Some(json!({"sub": "sub-ada", "cognito:username": "0f8fad5b", "preferred_username": "ada", "email": "ada@example.com"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["player"], "ada");
    let (status, _, v) = send(
        &app,
        lambda_request(
            "GET",
            "/me",
            json!({}),
            Some(json!({"sub": "5f1c2a9e-0000-4000-8000-000000000001", "cognito:username": "5f1c2a9e-0000-4000-8000-000000000001", "email": "ada@example.com"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["player"], "player-5f1c2a9e",
        "no chosen name: not the email"
    );
    let (status, _, _) = send(&app, lambda_request("GET", "/me", json!({}), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The commands the server receives from clients while `during` runs, as its own
/// MONITOR feed reports them: one line per command a client sent, each a round trip
/// unless pipelined (a pipeline would count more, never fewer). Commands that scripts
/// run inside the server are left out.
async fn commands_during<F: std::future::Future>(
    server: &Server,
    during: F,
) -> (F::Output, Vec<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut monitor = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    monitor.write_all(b"MONITOR\r\n").await.unwrap();
    let mut feed = BufReader::new(monitor).lines();
    assert_eq!(feed.next_line().await.unwrap().as_deref(), Some("+OK"));
    let mut fence = server.raw().await.unwrap();
    let nonce = fastrand::u64(..);
    let (start, end) = (format!("fence-start-{nonce}"), format!("fence-end-{nonce}"));
    let mut read_until = async |mark: &str| {
        let mut lines = Vec::new();
        loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(5), feed.next_line())
                .await
                .expect("the MONITOR feed went quiet")
                .unwrap()
                .expect("the MONITOR feed ended");
            if line.contains(mark) {
                return lines;
            }
            lines.push(line);
        }
    };
    let _: String = redis::cmd("ECHO")
        .arg(&start)
        .query_async(&mut fence)
        .await
        .unwrap();
    read_until(&start).await;
    let out = during.await;
    let _: String = redis::cmd("ECHO")
        .arg(&end)
        .query_async(&mut fence)
        .await
        .unwrap();
    // `+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" …`, or `[0 lua]` from a script.
    let sent = read_until(&end)
        .await
        .into_iter()
        .filter(|l| {
            let client = l.split(']').next().unwrap_or_default();
            !client.ends_with(" lua")
        })
        .collect();
    (out, sent)
}

/// Serving the next question, once the game's scripts are loaded, costs the server at
/// most two round trips (the design aims for one script call).
async fn the_next_question_costs_at_most_two_round_trips(flavor: Flavor) {
    let server = Server::start(flavor).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "3")]);
    let token = fakes.token("ada");
    // Starting and answering once loads the scripts and opens the connection.
    let (s, started) = call(
        &app,
        "POST",
        "/games",
        Some(&token),
        Some(r#"{"category":"science"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    let game = started["game_id"].as_str().unwrap().to_string();
    let body = json!({"question_id": started["question"]["id"], "answer": "x"}).to_string();
    let (s, a) = call(
        &app,
        "POST",
        &format!("/games/{game}/answers"),
        Some(&token),
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");

    let path = format!("/games/{game}/question");
    let ((s, next), sent) =
        commands_during(&server, call(&app, "GET", &path, Some(&token), None)).await;
    assert_eq!(s, StatusCode::OK, "{next}");
    assert_eq!(next["number"], 2, "a new question was served: {next}");
    assert_ne!(next["id"], started["question"]["id"]);
    assert!(
        !sent.is_empty() && sent.len() <= 2,
        "{} commands: {sent:#?}",
        sent.len()
    );
    // Asking again before answering shows the same question, as cheaply.
    let ((_, again), sent) =
        commands_during(&server, call(&app, "GET", &path, Some(&token), None)).await;
    assert_eq!(again, next);
    assert!(sent.len() <= 2, "{sent:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_question_costs_at_most_two_round_trips_standalone() {
    the_next_question_costs_at_most_two_round_trips(Flavor::Standalone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_question_costs_at_most_two_round_trips_in_cluster_mode() {
    the_next_question_costs_at_most_two_round_trips(Flavor::Cluster).await;
}

async fn global_stats(server: &Server) -> std::collections::BTreeMap<String, i64> {
    let mut c = server.raw().await.unwrap();
    redis::cmd("HGETALL")
        .arg("trivia:{stats}:global")
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forgetting_a_player_takes_back_their_share_of_the_global_statistics() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "3")]);
    let (a, b) = (fakes.token("ada"), fakes.token("smoke-test-user"));
    play(&app, &server, &a, "science", 3, 2).await;
    let ada_alone = global_stats(&server).await;
    assert_eq!(ada_alone.get("games"), Some(&1), "{ada_alone:?}");
    assert_eq!(ada_alone.get("answers"), Some(&3), "{ada_alone:?}");

    play(&app, &server, &b, "history", 3, 1).await;
    play(&app, &server, &b, "music", 3, 3).await;
    assert_eq!(global_stats(&server).await.get("games"), Some(&3));
    let (s, forgot) = call(&app, "DELETE", "/me", Some(&b), None).await;
    assert_eq!(s, StatusCode::OK, "{forgot}");
    assert_eq!(global_stats(&server).await, ada_alone);
    // Forgetting again takes nothing more back.
    call(&app, "DELETE", "/me", Some(&b), None).await;
    assert_eq!(global_stats(&server).await, ada_alone);
    let (_, board) = call(&app, "GET", "/leaderboard", None, None).await;
    let names: Vec<&str> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["player"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ada"]);

    // The statistics were reset since Ada played: they stop at zero.
    let mut c = server.raw().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg("trivia:{stats}:global")
        .arg(&[("games", 0), ("answers", 1)])
        .query_async(&mut c)
        .await
        .unwrap();
    call(&app, "DELETE", "/me", Some(&a), None).await;
    let after = global_stats(&server).await;
    assert_eq!(
        (after.get("games"), after.get("answers")),
        (Some(&0), Some(&0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leaderboards_show_the_chosen_name_never_the_email() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[("QUESTIONS_PER_GAME", "2")]);
    let chosen = fakes.token_changed("ada", json!({"preferred_username": "Ada L."}));
    let sub = "7d3f9a2c-1b2e-4c5d-9e8f-0a1b2c3d4e5f";
    let unnamed = fakes.token_changed(
        "bob",
        json!({"sub": sub, "cognito:username": sub, "email": "bob@example.com", "preferred_username": null}),
    );
    play(&app, &server, &chosen, "sports", 2, 2).await;
    play(&app, &server, &unnamed, "sports", 2, 1).await;
    let (_, board) = call(&app, "GET", "/leaderboard", None, None).await;
    let names: Vec<&str> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["player"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Ada L.", "player-7d3f9a2c"]);
    let (_, me) = call(&app, "GET", "/me", Some(&unnamed), None).await;
    assert_eq!(me["player"], "player-7d3f9a2c");
    let (_, me) = call(&app, "GET", "/leaderboard/me", Some(&chosen), None).await;
    assert_eq!(me["player"], "Ada L.");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_not_valid_yet_are_refused() {
    let server = Server::start(Flavor::Standalone).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(&server, &fakes, &[]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let early = fakes.token_changed("ada", json!({"nbf": now + 600}));
    let (s, e) = call(&app, "GET", "/me", Some(&early), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    assert!(e["message"].as_str().unwrap().contains("not valid"), "{e}");
    // Within the clock leeway, as for `exp`.
    let skewed = fakes.token_changed("ada", json!({"nbf": now + 10}));
    let (s, e) = call(&app, "GET", "/me", Some(&skewed), None).await;
    assert_eq!(s, StatusCode::OK, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_expire_and_unknown_keys_refetch_at_most_once_per_interval() {
    use trivia::identity::{KeyRefresh, Verifier};
    let fakes = Fakes::start().await;
    let cognito = trivia::config::Cognito {
        issuer: fakes.issuer(),
        client_id: common::CLIENT_ID.into(),
        jwks_url: format!("{}/.well-known/jwks.json", fakes.issuer()),
    };
    let verifier = |max_age_ms, interval_ms| {
        Verifier::with_refresh(
            cognito.clone(),
            KeyRefresh {
                max_age: std::time::Duration::from_millis(max_age_ms),
                unknown_key_interval: std::time::Duration::from_millis(interval_ms),
            },
        )
    };
    let fetches = || fakes.jwks_fetches.load(Ordering::SeqCst);
    let old = fakes.token("ada");
    let new = fakes.token_with("ada", "id", common::CLIENT_ID, 3600, "test-key-2");

    let v = verifier(500, 60_000);
    assert!(v.verify(Some(&old)).await.is_ok());
    assert_eq!(fetches(), 1);
    // The pool rotates its key: the same material under a new id, the old id retired.
    let rotated = include_str!("fixtures/jwks.json").replace("test-key-1", "test-key-2");
    *fakes.jwks.lock().unwrap() = rotated;
    assert!(v.verify(Some(&old)).await.is_ok(), "cached keys are used");
    assert!(
        v.verify(Some(&new)).await.is_err(),
        "an unknown key within the interval is refused without a fetch"
    );
    assert_eq!(fetches(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        v.verify(Some(&old)).await.is_err(),
        "expired keys are fetched again and the retired one is gone"
    );
    assert_eq!(fetches(), 2);
    assert!(v.verify(Some(&new)).await.is_ok());
    assert_eq!(fetches(), 2);

    // An unknown key fetches again once the interval has passed, not before.
    *fakes.jwks.lock().unwrap() = include_str!("fixtures/jwks.json").into();
    let v = verifier(60_000, 400);
    assert!(v.verify(Some(&old)).await.is_ok());
    assert_eq!(fetches(), 3);
    *fakes.jwks.lock().unwrap() =
        include_str!("fixtures/jwks.json").replace("test-key-1", "test-key-2");
    for _ in 0..5 {
        assert!(v.verify(Some(&new)).await.is_err());
    }
    assert_eq!(fetches(), 3);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(v.verify(Some(&new)).await.is_ok());
    assert_eq!(fetches(), 4);
}

const PLAY: &str = "https://play.example.com";

fn with_origin(method: &str, path: &str, origin: &str) -> axum::http::request::Builder {
    axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("origin", origin)
}

fn preflight(path: &str, origin: &str, method: &str) -> axum::http::Request<axum::body::Body> {
    with_origin("OPTIONS", path, origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(axum::body::Body::empty())
        .unwrap()
}

fn header<'a>(h: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_echoes_listed_origins_only_on_every_response_and_preflight() {
    let server = Server::start(Flavor::Standalone).await;
    let fakes = Fakes::start().await;
    let (app, _) = app(
        &server,
        &fakes,
        &[
            (
                "CORS_ALLOW_ORIGINS",
                "https://play.example.com,http://localhost:5173",
            ),
            ("CORS_MAX_AGE_S", "1234"),
        ],
    );
    let empty = axum::body::Body::empty;
    let (s, h, _) = send(
        &app,
        with_origin("GET", "/categories", PLAY)
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(PLAY));
    assert!(
        header(&h, "vary").is_some_and(|v| v.split(',').any(|x| x.trim() == "origin")),
        "{h:?}"
    );
    // Errors too: a browser would hide the 401 from the page otherwise.
    let (s, h, _) = send(
        &app,
        with_origin("GET", "/me", "http://localhost:5173")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let (s, h, _) = send(
        &app,
        with_origin("GET", "/no/such/route", PLAY)
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(PLAY));
    // Another origin is not told anything.
    for origin in [
        "https://evil.example.com",
        "https://play.example.com.evil.com",
        "http://play.example.com",
    ] {
        let (s, h, _) = send(
            &app,
            with_origin("GET", "/categories", origin)
                .body(empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(header(&h, "access-control-allow-origin"), None, "{origin}");
        let (_, h, _) = send(&app, preflight("/games", origin, "POST")).await;
        assert_eq!(header(&h, "access-control-allow-origin"), None, "{origin}");
    }
    // Preflights on every route, without a token.
    for (path, method) in [
        ("/games", "POST"),
        ("/games/science-0123456789abcdef01234567/question", "GET"),
        ("/games/science-0123456789abcdef01234567/answers", "POST"),
        ("/games/science-0123456789abcdef01234567/finish", "POST"),
        ("/me", "DELETE"),
        ("/leaderboard/me", "GET"),
    ] {
        let (s, h, _) = send(&app, preflight(path, PLAY, method)).await;
        assert!(
            s == StatusCode::OK || s == StatusCode::NO_CONTENT,
            "{path}: {s}"
        );
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some(PLAY),
            "{path}"
        );
        assert_eq!(header(&h, "access-control-max-age"), Some("1234"), "{path}");
        let allowed = header(&h, "access-control-allow-headers").unwrap_or_default();
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{path}: {allowed}"
        );
        let methods = header(&h, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains(method), "{path}: {methods}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_star_allows_every_origin_and_no_setting_sends_no_headers() {
    let server = Server::start(Flavor::Standalone).await;
    let fakes = Fakes::start().await;
    let (any, _) = app(&server, &fakes, &[("CORS_ALLOW_ORIGINS", "*")]);
    let req = || {
        with_origin("GET", "/categories", "https://anywhere.example.org")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let (_, h, _) = send(&any, req()).await;
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let (s, h, _) = send(
        &any,
        preflight("/games", "https://anywhere.example.org", "POST"),
    )
    .await;
    assert!(s.is_success(), "{s}");
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&h, "access-control-max-age"),
        Some("600"),
        "the default"
    );

    let (same_origin, _) = app(&server, &fakes, &[]);
    let (s, h, _) = send(&same_origin, req()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !h.keys().any(|k| k.as_str().starts_with("access-control-")),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_mode_answers_preflights_without_a_token() {
    let server = Server::start(Flavor::Standalone).await;
    let app = lambda_app(&server, &[("CORS_ALLOW_ORIGINS", PLAY)]);
    let headers = json!({
        "origin": PLAY,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    });
    for path in [
        "/games",
        "/games/science-0123456789abcdef01234567/answers",
        "/me",
    ] {
        let (s, h, _) = send(
            &app,
            lambda_request("OPTIONS", &format!("/v1{path}"), headers.clone(), None),
        )
        .await;
        assert!(s.is_success(), "{path}: {s}");
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some(PLAY),
            "{path}"
        );
        assert_eq!(header(&h, "access-control-max-age"), Some("600"));
    }
    // The refusal of an unauthenticated call carries the headers too.
    let (s, h, _) = send(
        &app,
        lambda_request("GET", "/v1/me", json!({"origin": PLAY}), None),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(PLAY));
}
