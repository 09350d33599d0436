//! The game against a real Valkey (cluster mode unless stated), through the router.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use common::{app, call, Fakes, Flavor, Server};
use serde_json::Value;
use trivia::questions::{category, Load, Loader, Origin, Question};

/// The correct answer of a game's current question, read behind the app's back.
async fn peek_answer(server: &Server, game: &str) -> String {
    let mut c = server.raw().await.unwrap();
    redis::cmd("HGET")
        .arg(format!("trivia:{{g:{game}}}"))
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
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg("trivia:{c:general}:ids")
        .query_async(&mut c)
        .await
        .unwrap();
    let body: String = redis::cmd("GET")
        .arg(format!("trivia:{{c:general}}:q:{}", ids[0]))
        .query_async(&mut c)
        .await
        .unwrap();
    let q: Question = serde_json::from_str(&body).unwrap();
    assert!(
        q.text.contains("\"") && q.text.contains('&') && !q.text.contains("&quot;"),
        "{}",
        q.text
    );
    assert!(q.incorrect.iter().any(|w| w.contains('\'')));
    // Refilling adds the same questions again: ids are stable, so nothing duplicates.
    loader_for(&state).fill(cat, true).await.unwrap();
    let n: u64 = redis::cmd("SCARD")
        .arg("trivia:{c:general}:ids")
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

#[tokio::test(flavor = "multi_thread")]
async fn lambda_mode_takes_the_player_from_the_authorizer_claims() {
    use tower::ServiceExt;
    let server = Server::start(Flavor::Cluster).await;
    let map: std::collections::HashMap<String, String> = server
        .env()
        .into_iter()
        .chain([(
            "AWS_LAMBDA_RUNTIME_API".to_string(),
            "127.0.0.1:9".to_string(),
        )])
        .collect();
    let config = trivia::config::Config::from_lookup(|k| map.get(k).cloned()).unwrap();
    // As `trivia-api` runs it in Lambda mode: the stage stripped before routing.
    let app = trivia::router(trivia::AppState::new(&config)).map_request(trivia::strip_stage);
    let event = |claims: Option<Value>| {
        let mut ctx = serde_json::json!({"accountId": "1", "resourceId": "r", "stage": "v1", "requestId": "id", "identity": {}, "resourcePath": "/me", "httpMethod": "GET", "apiId": "api", "authorizer": {}});
        if let Some(c) = claims {
            ctx["authorizer"]["claims"] = c;
        }
        let e = serde_json::json!({"resource": "/me", "path": "/me", "httpMethod": "GET", "headers": {}, "multiValueHeaders": {}, "queryStringParameters": null, "multiValueQueryStringParameters": null, "pathParameters": null, "stageVariables": null, "requestContext": ctx, "body": null, "isBase64Encoded": false});
        lambda_http::request::from_str(&e.to_string()).unwrap()
    };
    let req = event(Some(
        serde_json::json!({"sub": "sub-ada", "cognito:username": "ada"}),
    ));
    let (parts, body) = req.into_parts();
    let req = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let v: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["player"], "ada");
    let (parts, body) = event(None).into_parts();
    let resp = app
        .oneshot(axum::http::Request::from_parts(
            parts,
            axum::body::Body::from(body.to_vec()),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
