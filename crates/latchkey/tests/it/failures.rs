//! Failure behaviour (SPEC §1, §5, §12): a dead identity store is a fast 503 in every surface
//! and is named by `/readyz` and the app's health; an operator's foreign key blocks an erasure
//! with a 409; a hung SMTP server holds up one message, not the queue; the files under the data
//! dir are private; start-up errors say which path and variable; a failed start stores nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::both;
use crate::cli::{Output, finish, latchkey_cmd};
use crate::first_run::{BANNER, Serve, free_port};
use crate::kit::{ADMIN_TOKEN, Backend, PgDb, TestApp, admin_sql};
use crate::mail::{count, identity_store, refreshing_client, sign_up};

/// GET `url` (with the admin token if `admin`); status, content type and body.
async fn get_text(app: &TestApp, url: &str, admin: bool) -> (StatusCode, String, String) {
    let mut req = app.http.get(url);
    if admin {
        req = req.bearer_auth(ADMIN_TOKEN);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (res.status(), ctype, res.text().await.unwrap_or_default())
}

/// A refresh request with a well-formed token nobody issued: answering it reads the store.
fn unknown_refresh(client_id: &str) -> String {
    format!("grant_type=refresh_token&refresh_token=lkr_{}&client_id={client_id}", "x".repeat(43))
}

/// An active app whose identity store can be taken away: on PostgreSQL a database of its own.
async fn app_with_own_store(app: &TestApp, slug: &str) -> Option<PgDb> {
    let db = match app.backend {
        Backend::Postgres => Some(PgDb::create().await),
        Backend::Sqlite => None,
    };
    let mut body = json!({"slug": slug, "display_name": format!("App {slug}")});
    if let Some(db) = &db {
        body["database_url"] = json!(db.url());
    }
    app.create_app(body).await;
    app.wait_status(slug, "active").await;
    db
}

/// Takes `slug`'s identity store away: its PostgreSQL database is dropped; its SQLite file is
/// replaced by a folder (it cannot be opened again) and its pool closed. Returns the app's id.
async fn kill_store(app: &TestApp, slug: &str, own_db: Option<&PgDb>) -> uuid::Uuid {
    let id = latchkey::apps::service::get(&app.state.apps, slug).await.expect("app").id;
    match own_db {
        Some(db) => admin_sql(&format!("DROP DATABASE {} WITH (FORCE)", db.name)).await,
        None => {
            let file = app.dir.path().join("apps").join(format!("{slug}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
            std::fs::create_dir(&file).expect("a folder where the store was");
            app.state.identity.forget(id).await;
        }
    }
    id
}

/// The OAuth, page and admin surfaces of `slug` each answer 503 in their own format, fast.
async fn assert_unavailable(app: &TestApp, slug: &str, client_id: &str) {
    let started = Instant::now();
    let (s, _, v) = app.form(slug, "token", None, &unknown_refresh(client_id)).await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "token endpoint: {v}");
    assert_eq!(v["error"], "temporarily_unavailable", "{v}");
    assert!(took < Duration::from_secs(10), "the 503 took {took:?}: the wait is not bounded");

    let (s, ctype, html) = get_text(app, &format!("{}/login", app.issuer(slug)), false).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "login page: {html}");
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(html.to_lowercase().contains("temporarily unavailable"), "{html}");
    assert!(!html.contains("Something went wrong"), "{html}");

    let (s, ctype, body) = get_text(app, &format!("{}/admin/v1/apps/{slug}/users", app.base), true).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "admin users: {body}");
    assert!(ctype.starts_with("application/problem+json"), "{ctype}");
    let problem: Value = serde_json::from_str(&body).expect("problem details");
    assert_eq!(problem["code"], "store_unavailable", "{problem}");
    assert_eq!(problem["type"], "urn:latchkey:problem:store_unavailable", "{problem}");
    assert_eq!(problem["status"], 503, "{problem}");
}

/// An app whose identity store is gone answers 503 everywhere, is named by `/readyz` and its
/// health, and another app on the same server goes on serving.
async fn dead_identity_store_is_a_503_everywhere(backend: Backend) {
    let app = TestApp::start(backend).await;
    let own_db = app_with_own_store(&app, "dead").await;
    let client = refreshing_client(&app, "dead").await;
    app.active_app("live").await;
    let (live_id, live_secret) = app.machine_client("live").await;
    app.service_token("live", &live_id, &live_secret).await;
    // While the store answers, an unknown token is the client's error.
    let (s, _, v) = app.form("dead", "token", None, &unknown_refresh(&client)).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    assert_eq!(get_text(&app, &format!("{}/login", app.issuer("dead")), false).await.0, StatusCode::OK);

    kill_store(&app, "dead", own_db.as_ref()).await;
    assert_unavailable(&app, "dead", &client).await;

    let (s, health) = app.admin(Method::GET, "/apps/dead/health", None).await;
    assert_eq!(s, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "down", "{health}");
    assert_eq!(health["identity_store"]["status"], "down", "{health}");
    assert!(health["identity_store"]["reason"].is_string(), "{health}");

    // `/readyz` answers at once with the last background check (at most 5 s old): poll.
    let started = Instant::now();
    let ready = loop {
        let (s, _, body) = get_text(&app, &format!("{}/readyz", app.base), false).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let ready: Value = serde_json::from_str(&body).expect("readyz json");
        let named =
            ready["unreachable_apps"].as_array().is_some_and(|a| a.iter().any(|a| a["slug"] == "dead"));
        if named || started.elapsed() > Duration::from_secs(20) {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let unreachable = ready["unreachable_apps"].as_array().unwrap_or_else(|| panic!("{ready}"));
    assert!(unreachable.iter().any(|a| a["slug"] == "dead"), "{ready}");
    assert!(unreachable.iter().all(|a| a["slug"] != "live"), "{ready}");
    assert!(!ready.to_string().contains("does not exist"), "no store error text in public: {ready}");

    // The other app is untouched.
    app.service_token("live", &live_id, &live_secret).await;
    let (s, health) = app.admin(Method::GET, "/apps/live/health", None).await;
    assert_eq!(s, StatusCode::OK, "{health}");
    assert_eq!(health["identity_store"]["status"], "ok", "{health}");
    assert_ne!(health["status"], "down", "{health}");
    app.stop().await;
}
both!(dead_identity_store_is_a_503_everywhere);

/// An issuer built again (a restart, another replica, a configuration change) while its store
/// is gone is a 503 too, and the health blames the identity store, not the signing key.
async fn a_store_gone_when_the_issuer_reloads_is_a_503_too(backend: Backend) {
    let app = TestApp::start(backend).await;
    let own_db = app_with_own_store(&app, "gone").await;
    let client = refreshing_client(&app, "gone").await;
    assert_eq!(get_text(&app, &format!("{}/login", app.issuer("gone")), false).await.0, StatusCode::OK);

    let id = kill_store(&app, "gone", own_db.as_ref()).await;
    // No pool and no migration remembered, as after a restart; the change rebuilds the issuer.
    app.state.identity.forget(id).await;
    let (s, v) = app.admin(Method::PATCH, "/apps/gone", Some(json!({"display_name": "Gone again"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_unavailable(&app, "gone", &client).await;
    let (s, health) = app.admin(Method::GET, "/apps/gone/health", None).await;
    assert_eq!(s, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "down", "{health}");
    assert_eq!(health["identity_store"]["status"], "down", "{health}");
    app.stop().await;
}
both!(a_store_gone_when_the_issuer_reloads_is_a_503_too);

async fn exec(db: &latchkey::store::IdentityDb, sql: &str) {
    latchkey::on_db!(db, p => sqlx::query(sql).execute(p).await.map(|_| ()))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// An operator's table pointing at `users(id)`, optionally `ON DELETE CASCADE`.
fn orders_table(backend: Backend, on_delete: &str) -> String {
    let id_type = if backend == Backend::Postgres { "uuid" } else { "BLOB" };
    format!(
        "CREATE TABLE orders (n integer NOT NULL, user_id {id_type}, \
         CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id){on_delete})"
    )
}

/// An erasure that an operator's foreign key blocks is a 409 naming it, with nothing changed;
/// with `ON DELETE CASCADE` the same erasure goes through and takes the operator's rows along.
async fn erasure_blocked_by_an_operator_foreign_key_is_a_409(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.active_app("shop").await;
    sign_up(&app, "shop", "olga@example.com", "correct horse battery").await;
    let (s, list) = app.admin(Method::GET, "/apps/shop/users?email=olga", None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let id = list["items"][0]["id"].as_str().unwrap_or_else(|| panic!("no user: {list}")).to_string();
    let db = identity_store(&app, "shop").await;
    let insert = "INSERT INTO orders (n, user_id) SELECT 1, id FROM users";
    exec(&db, &orders_table(backend, "")).await;
    exec(&db, insert).await;

    let (s, v) = app.admin(Method::DELETE, &format!("/apps/shop/users/{id}"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "erasure_blocked", "{v}");
    assert_eq!(v["type"], "urn:latchkey:problem:erasure_blocked", "{v}");
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("ON DELETE CASCADE"), "says how to fix it: {v}");
    if backend == Backend::Postgres {
        assert!(detail.contains("orders_user_fk") && detail.contains("orders"), "names the constraint: {v}");
    } else {
        // SQLite does not say which constraint failed: the table is found from the schema.
        assert!(detail.contains("on table orders"), "names the table: {v}");
    }
    // Nothing changed: the user, their session (deleted earlier in the same transaction) and
    // the operator's row are all there.
    let (s, user) = app.admin(Method::GET, &format!("/apps/shop/users/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{user}");
    assert_eq!(user["active_sessions"], 1, "{user}");
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 1);

    exec(&db, "DROP TABLE orders").await;
    exec(&db, &orders_table(backend, " ON DELETE CASCADE")).await;
    exec(&db, insert).await;
    let (s, v) = app.admin(Method::DELETE, &format!("/apps/shop/users/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = app.admin(Method::GET, &format!("/apps/shop/users/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 0);
    app.stop().await;
}
both!(erasure_blocked_by_an_operator_foreign_key_is_a_409);

/// An SMTP server that accepts and never says a word. While `hang` is off it closes each
/// connection at once (a fast failure); while on, it keeps them open until `release`.
struct MuteSmtp {
    port: u16,
    hang: Arc<AtomicBool>,
    /// The most connections held open at the same time.
    peak: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
}

async fn mute_smtp() -> MuteSmtp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hang = Arc::new(AtomicBool::new(false));
    let (peak, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (release, released) = tokio::sync::watch::channel(false);
    let (h, p) = (hang.clone(), peak.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            if !h.load(Ordering::SeqCst) {
                continue; // dropped: closed at once
            }
            p.fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            let (open, mut released) = (open.clone(), released.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                loop {
                    tokio::select! {
                        r = stream.read(&mut buf) => {
                            if matches!(r, Ok(0) | Err(_)) {
                                break;
                            }
                        }
                        _ = released.changed() => break,
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    MuteSmtp { port, hang, peak, release }
}

/// Six messages due at once to an SMTP server that never answers: several are handed over in
/// parallel (one hung connection holds one message), not one after the other.
async fn a_hung_smtp_server_delays_one_message_not_the_queue(backend: Backend) {
    let smtp = mute_smtp().await;
    let mut opts = TestApp::options(backend);
    opts.extra_args = vec![
        "--smtp-url".into(),
        format!("smtp://127.0.0.1:{}", smtp.port),
        "--smtp-from".into(),
        "id@platform.test".into(),
    ];
    let app = TestApp::start_with(opts).await;
    app.active_app("busy").await;
    for i in 0..6 {
        let body = json!({"email": format!("guest{i}@example.com")});
        let (s, v) = app.admin(Method::POST, "/apps/busy/invitations", Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // Each message fails once, fast, and waits for its retry.
    let store = identity_store(&app, "busy").await;
    let tried = "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts >= 1";
    let until = Instant::now() + Duration::from_secs(20);
    while count(&store, tried).await < 6 {
        assert!(Instant::now() < until, "the six messages were not all tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Hold every retry back, let the server hang, then make all six due at the same moment.
    app.clock.advance(chrono::Duration::hours(-1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    smtp.hang.store(true, Ordering::SeqCst);
    app.clock.advance(chrono::Duration::hours(2));
    let until = Instant::now() + Duration::from_secs(15);
    while smtp.peak.load(Ordering::SeqCst) < 4 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = smtp.peak.load(Ordering::SeqCst);
    assert!(peak >= 4, "at most {peak} connection(s) at once: one hung message holds up the rest");
    smtp.hang.store(false, Ordering::SeqCst);
    let _ = smtp.release.send(true);
    app.stop().await;
}
both!(a_hung_smtp_server_delays_one_message_not_the_queue);

/// Every folder and regular file under `dir` (itself included), with its permission bits.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |m: &std::fs::Metadata| m.permissions().mode() & 0o777;
    out.push((dir.to_path_buf(), mode(&std::fs::symlink_metadata(dir).expect("stat"))));
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        // A -shm or -journal file may come and go while we look.
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            walk(&path, out);
        } else if meta.is_file() {
            out.push((path, mode(&meta)));
        }
    }
}

async fn admin_call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut req = http.request(method, format!("{base}/admin/v1{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("admin request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// What `latchkey serve` writes under its data dir (master key, stores and their WAL files, the
/// dev transport's mail holding live links) is private to its user: folders 0700, files 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_under_the_data_dir_are_private() {
    const TOKEN: &str = "lka_files-are-private-token-0123";
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    let data_arg = data.display().to_string();
    let mut serve = Serve::spawn(cwd.path(), &["--data-dir", &data_arg, "--admin-token", TOKEN], &[]);
    serve.healthy(Duration::from_secs(10)).await;
    let base = serve.base.clone();
    let app = json!({"slug": "vault", "display_name": "Vault"});
    let (s, v) = admin_call(&base, TOKEN, Method::POST, "/apps", Some(app)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let until = Instant::now() + Duration::from_secs(30);
    while admin_call(&base, TOKEN, Method::GET, "/apps/vault", None).await.1["status"] != "active" {
        assert!(Instant::now() < until, "app never active\n{}", serve.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let invite = json!({"email": "ivy@example.com"});
    let (s, v) = admin_call(&base, TOKEN, Method::POST, "/apps/vault/invitations", Some(invite)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let has_eml = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).any(|e| e.path().extension().is_some_and(|x| x == "eml")))
            .unwrap_or(false)
    };
    let until = Instant::now() + Duration::from_secs(15);
    while !has_eml(&data.join("outbox")) {
        assert!(Instant::now() < until, "no .eml in the outbox folder\n{}", serve.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Looked at while the server runs, so the stores' -wal and -shm files are there too.
    let mut seen = Vec::new();
    walk(&data, &mut seen);
    let open: Vec<String> =
        seen.iter().filter(|(_, m)| m & 0o077 != 0).map(|(p, m)| format!("{m:o} {}", p.display())).collect();
    assert!(open.is_empty(), "readable by others:\n{}", open.join("\n"));
    let names: Vec<String> = seen.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("/master.key")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("/latchkey.db")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("/apps/") && n.ends_with(".db")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("-wal")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("/outbox/") && n.ends_with(".eml")), "{names:?}");
    let (status, _, stderr) = serve.terminate().await;
    assert!(status.success(), "{stderr}");
}

/// `latchkey serve` in `cwd` on a free port with only `env` set.
async fn serve_with(cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = latchkey_cmd();
    cmd.current_dir(cwd)
        .args(["serve", "--bind", &format!("127.0.0.1:{}", free_port())])
        .envs(env.iter().copied());
    finish(cmd, Duration::from_secs(20)).await
}

/// Start-up errors name the path, the OS's reason and the variable, once, instead of SQLite's
/// "unable to open database file".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_name_the_path_and_the_variable() {
    let cwd = tempfile::tempdir().expect("tempdir");

    // A data dir below a regular file.
    let plain = cwd.path().join("plain");
    std::fs::write(&plain, "x").expect("file");
    let under_file = plain.join("sub").display().to_string();
    let out = serve_with(cwd.path(), &[("LATCHKEY_DATA_DIR", &under_file)]).await;
    let err = out.failed();
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(err.contains(&under_file) && err.contains("Not a directory"), "{out:?}");
    assert!(!err.contains("unable to open database file"), "{out:?}");

    // A data dir whose control-plane store cannot be opened (a folder where the file goes).
    let data = cwd.path().join("data");
    let db = data.join("latchkey.db");
    std::fs::create_dir_all(&db).expect("folder");
    let data_arg = data.display().to_string();
    let out = serve_with(cwd.path(), &[("LATCHKEY_DATA_DIR", &data_arg)]).await;
    let err = out.failed();
    assert!(err.contains(&db.display().to_string()) && err.contains("Is a directory"), "{out:?}");
    assert!(!err.contains("unable to open database file"), "{out:?}");

    // A master-key file that is not there: the variable, the path and the reason, once each.
    let key = cwd.path().join("missing.key").display().to_string();
    let fresh = cwd.path().join("fresh").display().to_string();
    let env = [("LATCHKEY_DATA_DIR", fresh.as_str()), ("LATCHKEY_MASTER_KEY_FILE", key.as_str())];
    let out = serve_with(cwd.path(), &env).await;
    let err = out.failed();
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(err.contains("LATCHKEY_MASTER_KEY_FILE"), "{out:?}");
    assert_eq!(err.matches(key.as_str()).count(), 1, "{out:?}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{out:?}");
}

/// A start that fails on a taken port generates and stores nothing, so the next start prints
/// the initial admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_generates_no_token() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    let data_arg = data.display().to_string();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let bind = taken.local_addr().expect("addr").to_string();
    let mut cmd = latchkey_cmd();
    cmd.current_dir(cwd.path()).args(["serve", "--bind", &bind, "--data-dir", &data_arg]);
    let started = Instant::now();
    let out = finish(cmd, Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(12), "took {:?}", started.elapsed());
    assert!(out.failed().contains(&bind), "{out:?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(!all.contains("lka_") && !all.contains(BANNER), "a token for a start that failed: {out:?}");
    assert!(!data.join("master.key").exists(), "a master key for a start that failed");
    drop(taken);

    let mut serve = Serve::spawn(cwd.path(), &["--data-dir", &data_arg], &[]);
    serve.healthy(Duration::from_secs(10)).await;
    let token = serve.banner_token().await;
    let (status, _, stderr) = serve.terminate().await;
    assert!(token.is_some() && stderr.contains(BANNER), "the next start printed no admin token:\n{stderr}");
    assert!(status.success(), "{stderr}");
}

/// A full disk (PostgreSQL SQLSTATE 53100, raised here by a trigger on the very INSERT a full
/// disk would refuse) is a 503 in the page and admin formats, with nothing written; once
/// there is room again the same requests succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_503_with_nothing_written() {
    let app = TestApp::start(Backend::Postgres).await;
    app.active_app("full").await;
    let full = "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS \
        $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$";
    let db = identity_store(&app, "full").await;
    exec(&db, full).await;
    exec(&db, "CREATE TRIGGER disk_full BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION disk_full()")
        .await;
    let control = app.control();
    let on_control = |sql: &'static str| {
        let control = control.clone();
        async move {
            latchkey::on_db!(&control, p => sqlx::query(sql).execute(p).await.map(|_| ())).expect(sql);
        }
    };
    on_control(
        "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS \
        $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$",
    )
    .await;
    on_control("CREATE TRIGGER disk_full BEFORE INSERT ON apps FOR EACH ROW EXECUTE FUNCTION disk_full()")
        .await;

    // Sign-up: the themed 503 page, no user.
    let flow = crate::signin::Flow::new("none");
    let res = flow
        .submit(
            &format!("{}/signup", app.issuer("full")),
            &[("email", "dee@example.com"), ("password", "long enough pw")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.text().await.expect("html").to_lowercase().contains("temporarily unavailable"));
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 0);
    // App creation: a problem document, no app.
    let (s, v) =
        app.admin(Method::POST, "/apps", Some(json!({"slug": "more", "display_name": "More"}))).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable")), "{v}");
    assert_eq!(app.admin(Method::GET, "/apps/more", None).await.0, StatusCode::NOT_FOUND);

    // Room again: the same requests succeed.
    exec(&db, "DROP TRIGGER disk_full ON users").await;
    on_control("DROP TRIGGER disk_full ON apps").await;
    sign_up(&app, "full", "dee@example.com", "long enough pw").await;
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 1);
    app.create_app(json!({"slug": "more", "display_name": "More"})).await;
    app.stop().await;
}
