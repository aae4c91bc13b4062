//! `latchkey serve` and `latchkey migrate` as processes (SPEC §1): zero-config first run,
//! restart on the same data dir, secrets kept out of the logs, refusal of bad configuration,
//! JSON logs, graceful SIGTERM.

use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::cli::{Output, assert_clean, finish, latchkey_cmd};

pub(crate) const BANNER: &str = "Generated an admin token";

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// A running `latchkey serve`; killed (SIGKILL) if dropped before [`Serve::terminate`].
pub(crate) struct Serve {
    child: tokio::process::Child,
    pub(crate) base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut buf = into.lock().expect("lock");
            buf.push_str(&line);
            buf.push('\n');
        }
    })
}

impl Serve {
    /// `latchkey serve --bind 127.0.0.1:<free port> <args>` in `cwd`, with no `LATCHKEY_*`
    /// variable but `env`.
    pub(crate) fn spawn(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let bind = format!("127.0.0.1:{}", free_port());
        let mut cmd = latchkey_cmd();
        cmd.current_dir(cwd)
            .args(["serve", "--bind", &bind])
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn latchkey serve");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        Serve { child, base: format!("http://{bind}"), stdout, stderr, readers }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// The admin token the banner shows, once the reader has seen it (up to 5 s).
    pub(crate) async fn banner_token(&self) -> Option<String> {
        for _ in 0..50 {
            if let Some(token) = generated_token(&self.stderr()) {
                return Some(token);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub(crate) fn output(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout.lock().expect("lock"), self.stderr())
    }

    /// Waits for `/healthz` to answer 200, failing the test after `limit` or if the process exits.
    pub(crate) async fn healthy(&mut self, limit: Duration) {
        let http = http();
        let start = Instant::now();
        loop {
            if let Ok(res) = http.get(format!("{}/healthz", self.base)).send().await
                && res.status() == StatusCode::OK
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!("latchkey serve exited with {status} before becoming healthy\n{}", self.output());
            }
            assert!(start.elapsed() < limit, "/healthz not 200 within {limit:?}\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit; returns status, stdout, stderr.
    pub(crate) async fn terminate(mut self) -> (ExitStatus, String, String) {
        let pid = self.child.id().expect("pid").to_string();
        let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(kill.success());
        let status = match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(s) => s.expect("wait"),
            Err(_) => panic!("latchkey serve did not exit within 10 s of SIGTERM\n{}", self.output()),
        };
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        let out = self.stdout.lock().expect("lock").clone();
        (status, out, self.stderr())
    }
}

/// The generated admin token in the output, if any.
pub(crate) fn generated_token(output: &str) -> Option<String> {
    let at = output.find("lka_")?;
    let token: String =
        output[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    Some(token)
}

/// Splits output into the admin-token banner block (if any) and the other lines.
fn split_banner(output: &str) -> (Vec<&str>, Vec<&str>) {
    let lines: Vec<&str> = output.lines().collect();
    let Some(start) = lines.iter().position(|l| l.contains(BANNER)) else {
        return (Vec::new(), lines);
    };
    let end = lines[start..]
        .iter()
        .position(|l| l.contains("Use it as"))
        .map(|i| start + i)
        .unwrap_or_else(|| panic!("unterminated admin-token banner:\n{output}"));
    let banner = lines[start..=end].to_vec();
    let rest = lines[..start].iter().chain(&lines[end + 1..]).copied().collect();
    (banner, rest)
}

/// The token shows exactly once, on its own line inside the banner, and in no log record.
#[track_caller]
fn assert_token_only_in_banner(token: &str, stdout: &str, stderr: &str) {
    assert!(!stdout.contains(token), "admin token on stdout:\n{stdout}");
    assert_eq!(stderr.matches(token).count(), 1, "admin token shown more than once:\n{stderr}");
    let (banner, rest) = split_banner(stderr);
    assert!(banner.iter().any(|l| l.trim() == token), "token not on its own banner line:\n{stderr}");
    assert!(rest.iter().all(|l| !l.contains(token)), "admin token in a log line:\n{stderr}");
}

async fn get(url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (res.status(), res.text().await.unwrap_or_default())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn zero_config_first_run_and_restart() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("latchkey-data");

    let mut first = Serve::spawn(cwd.path(), &[], &[]);
    first.healthy(Duration::from_secs(10)).await;
    let token =
        first.banner_token().await.unwrap_or_else(|| panic!("no generated admin token\n{}", first.output()));
    assert!(token.len() >= 40, "{token}");

    let (s, body) = get(&format!("{}/admin/v1/apps", first.base), Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let list: Value = serde_json::from_str(&body).expect("json");
    assert!(list["items"].is_array(), "{list}");
    let (s, _) = get(&format!("{}/admin/v1/apps", first.base), Some("lka_wrong-token-0123456789")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let key_path = data.join("master.key");
    assert_eq!(mode(&key_path), 0o600, "master.key mode");
    let key = std::fs::read_to_string(&key_path).expect("master.key");
    assert!(!key.trim().is_empty());
    let sqlite_files: Vec<_> = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "db" || x == "sqlite" || x == "sqlite3"))
        .collect();
    assert!(!sqlite_files.is_empty(), "no SQLite file under {}", data.display());

    let (s, body) = get(&format!("{}/readyz", first.base), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let res = http().get(format!("{}/metrics", first.base)).send().await.expect("metrics");
    assert_eq!(res.status(), StatusCode::OK);
    let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let metrics = res.text().await.expect("metrics text");
    assert!(metrics.contains("latchkey_http_requests_total"), "{metrics}");

    let (status, stdout, stderr) = first.terminate().await;
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    assert_clean(&stderr);
    assert_token_only_in_banner(&token, &stdout, &stderr);
    // Human-readable logs into a pipe carry no terminal colour codes.
    assert!(!stderr.contains('\x1b'), "ANSI escapes in piped logs:\n{stderr}");
    assert!(
        stderr.to_lowercase().contains("master key"),
        "no warning about the generated master key:\n{stderr}"
    );

    // Restart on the same data dir: no new token, the old one still works, same master key.
    let mut second = Serve::spawn(cwd.path(), &[], &[]);
    second.healthy(Duration::from_secs(10)).await;
    // A client holding an idle keep-alive connection must not delay the shutdown.
    let keep_alive = http();
    let res = keep_alive.get(format!("{}/admin/v1/apps", second.base)).bearer_auth(&token).send().await;
    let res = res.expect("admin request");
    assert_eq!(res.status(), StatusCode::OK);
    res.bytes().await.expect("body");
    let (status, stdout, stderr) = second.terminate().await;
    drop(keep_alive);
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    assert_clean(&stderr);
    assert!(!stderr.contains(BANNER) && !stderr.contains("lka_"), "a new token was generated:\n{stderr}");
    assert!(!stdout.contains("lka_"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&key_path).expect("master.key"), key, "master key changed");
    assert_eq!(mode(&key_path), 0o600);
}

/// Exit code 2, a single `error: …` line, no panic or backtrace; returns that line.
#[track_caller]
fn assert_refused(out: &Output, what: &str) -> String {
    assert_eq!(out.code, Some(2), "{what}: {out:?}");
    assert_clean(&out.stderr);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {out:?}");
    assert!(lines[0].starts_with("error: "), "{what}: {out:?}");
    lines[0].to_string()
}

async fn serve_once(cwd: &Path, args: &[&str], limit: Duration) -> (Output, Duration) {
    let mut cmd = latchkey_cmd();
    cmd.current_dir(cwd).arg("serve").args(args);
    if !args.contains(&"--bind") {
        cmd.args(["--bind", &format!("127.0.0.1:{}", free_port())]);
    }
    let start = Instant::now();
    let out = finish(cmd, limit).await;
    (out, start.elapsed())
}

#[tokio::test]
async fn bad_configuration_refuses_to_start() {
    let cases: &[(&str, &[&str])] = &[
        ("master key of the wrong length", &["--master-key", "c2hvcnQ="]),
        ("master key not base64", &["--master-key", "not*base64*at*all!"]),
        ("unsupported database", &["--database-url", "mysql://x"]),
        ("unreachable database", &["--database-url", "postgres://postgres@127.0.0.1:1/x"]),
        ("bind address", &["--bind", "nope"]),
        ("public URL scheme", &["--public-url", "ftp://x"]),
    ];
    for (what, args) in cases {
        let cwd = tempfile::tempdir().expect("tempdir");
        let (out, took) = serve_once(cwd.path(), args, Duration::from_secs(20)).await;
        let line = assert_refused(&out, what);
        assert!(took < Duration::from_secs(12), "{what}: took {took:?}");
        if what.starts_with("master key") {
            assert!(line.contains("MASTER_KEY") || line.to_lowercase().contains("master key"), "{line}");
        }
    }
}

#[tokio::test]
async fn port_in_use_is_refused() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let bind = taken.local_addr().expect("addr").to_string();
    let (out, took) = serve_once(cwd.path(), &["--bind", &bind], Duration::from_secs(20)).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_clean(&out.stderr);
    let last = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(last.starts_with("error: ") && last.contains(&bind), "{out:?}");
    assert!(took < Duration::from_secs(12), "took {took:?}");
    drop(taken);
}

#[tokio::test]
async fn missing_master_key_is_refused() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut first = Serve::spawn(cwd.path(), &["--data-dir", "data"], &[]);
    first.healthy(Duration::from_secs(10)).await;
    let (status, _, stderr) = first.terminate().await;
    assert!(status.success(), "{stderr}");
    let key_path = cwd.path().join("data").join("master.key");
    std::fs::remove_file(&key_path).expect("remove master.key");

    let (out, _) = serve_once(cwd.path(), &["--data-dir", "data"], Duration::from_secs(20)).await;
    let line = assert_refused(&out, "missing master key");
    assert!(line.to_lowercase().contains("master key"), "{line}");
    // Refusing must not have replaced the lost key with a new one.
    assert!(!key_path.exists(), "a new master key was generated over a sealed store");

    // A different key is refused too.
    let other = latchkey::crypto::MasterKey::generate().to_base64();
    let (out, _) =
        serve_once(cwd.path(), &["--data-dir", "data", "--master-key", &other], Duration::from_secs(20))
            .await;
    let line = assert_refused(&out, "wrong master key");
    assert!(line.to_lowercase().contains("master key") || line.contains("MASTER_KEY"), "{line}");
}

#[tokio::test]
async fn json_logs() {
    let cwd = tempfile::tempdir().expect("tempdir");
    // Debug level: many more records (ours and the libraries'), all of which must be JSON and
    // none of which may carry the token.
    let env = [("LATCHKEY_LOG_FORMAT", "json"), ("RUST_LOG", "debug")];
    let mut serve = Serve::spawn(cwd.path(), &[], &env);
    serve.healthy(Duration::from_secs(10)).await;
    let token = generated_token(&serve.stderr());
    for path in ["/readyz", "/metrics", "/admin/v1/apps", "/apps/nope/jwks", "/nowhere"] {
        get(&format!("{}{path}", serve.base), token.as_deref()).await;
    }
    let (status, stdout, stderr) = serve.terminate().await;
    assert!(status.success(), "{stderr}");
    assert_clean(&stderr);
    let token = token.unwrap_or_else(|| panic!("no generated admin token:\n{stderr}"));
    assert_token_only_in_banner(&token, &stdout, &stderr);

    let (banner, rest) = split_banner(&stderr);
    assert!(!banner.is_empty());
    let records: Vec<Value> = rest
        .iter()
        .chain(stdout.lines().collect::<Vec<_>>().iter())
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l:?}"))
        })
        .collect();
    assert!(records.len() >= 2, "{stderr}");
    for r in &records {
        assert!(r.is_object() && r["level"].is_string() && r["timestamp"].is_string(), "{r}");
    }
    // The start-up line and the master-key warning are there.
    assert!(records.iter().any(|r| r["level"] == "WARN"), "{stderr}");
    assert!(records.iter().any(|r| r["level"] == "INFO"), "{stderr}");
}

#[tokio::test]
async fn migrate_an_existing_data_dir() {
    const TOKEN: &str = "lka_first-run-migrate-token-0123";
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    let data_arg = data.display().to_string();
    let mut serve = Serve::spawn(cwd.path(), &["--data-dir", &data_arg, "--admin-token", TOKEN], &[]);
    serve.healthy(Duration::from_secs(10)).await;
    let res = http()
        .post(format!("{}/admin/v1/apps", serve.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"slug": "mig", "display_name": "Mig"}))
        .send()
        .await
        .expect("create app");
    assert_eq!(res.status(), StatusCode::CREATED);
    let start = Instant::now();
    loop {
        let (s, body) = get(&format!("{}/admin/v1/apps/mig", serve.base), Some(TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let app: Value = serde_json::from_str(&body).expect("json");
        if app["status"] == "active" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "app never active: {app}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, stderr) = serve.terminate().await;
    assert!(status.success(), "{stderr}");

    for _ in 0..2 {
        let mut cmd = latchkey_cmd();
        cmd.current_dir(cwd.path()).args(["migrate", "--data-dir", &data_arg]);
        let out = finish(cmd, Duration::from_secs(60)).await;
        out.ok();
        let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 2, "one line per store: {out:?}");
        assert!(lines.iter().any(|l| l.contains("mig")), "{out:?}");
    }

    // Without the master key the app's store cannot be opened: a clean refusal.
    std::fs::rename(data.join("master.key"), cwd.path().join("master.key.bak")).expect("move key");
    let mut cmd = latchkey_cmd();
    cmd.current_dir(cwd.path()).args(["migrate", "--data-dir", &data_arg]);
    let out = finish(cmd, Duration::from_secs(60)).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_clean(&out.stderr);
    assert!(out.stderr.to_lowercase().contains("master key"), "{out:?}");
    assert!(!data.join("master.key").exists(), "migrate generated a new master key over a sealed store");
}
