//! The `gatewarden` binary itself: first start, flags, exit codes, `user add`.

use reqwest::StatusCode;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn gatewarden() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatewarden"));
    cmd.env_remove("DATABASE_URL").env_remove("GATEWARDEN_ADMIN_PASSWORD").env("RUST_LOG", "warn");
    cmd
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let out = gatewarden().args(args).output().expect("run gatewarden");
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_and_unusable_databases_exit_2_with_a_message() {
    assert_one_line_error(&["--no-such-flag"], "--no-such-flag");
    assert_one_line_error(&["--scenario", "meteor"], "unknown scenario 'meteor'");
    assert_one_line_error(&["--sim-speed", "0"], "outside");
    assert_one_line_error(&["--max-replicas", "0"], "--max-replicas");
    assert_one_line_error(&["--listen", "not-an-address"], "not-an-address");
    assert_one_line_error(&["--database-url", "mysql://x/y"], "unsupported database URL");
    assert_one_line_error(&["--dns-server", "127.0.0.1:53"], "--dns-zone");
    assert_one_line_error(&["--require-approval", "rollback,reboot"], "--require-approval: no action 'reboot'");
    assert_one_line_error(&["--approval-expiry-seconds", "5"], "--approval-expiry-seconds");
    assert_one_line_error(&["--dns-provider", "external-dns"], "--dns-provider external-dns needs --fleet kube");
    // Issue 29, item 9: no unsigned updates and no ownerless external-dns unless asked for.
    assert_one_line_error(&["--dns-server", "127.0.0.1:53", "--dns-zone", "gw.test"], "--dns-unsigned-updates");
    assert_one_line_error(
        &["--fleet", "kube", "--dns-provider", "external-dns"],
        "--dns-provider external-dns needs --external-dns-owner-id",
    );
    assert_one_line_error(
        &["--dns-server", "127.0.0.1:53", "--dns-zone", "gw.test", "--dns-tsig-key-file", "/nonexistent/key"],
        "cannot read the TSIG key file /nonexistent/key",
    );
    assert_one_line_error(&["--local-accounts=false"], "--local-accounts=false needs single sign-on");
    assert_one_line_error(&["--oidc-issuer", "https://idp.example.test"], "--oidc-client-id");
    assert_one_line_error(
        &[
            "--oidc-issuer",
            "https://idp.example.test",
            "--oidc-client-id",
            "c",
            "--public-url",
            "https://gw.test",
            "--oidc-role-map",
            "sre",
        ],
        "--oidc-role-map sre: expected GROUP=ROLE",
    );
    assert_one_line_error(
        &["--database-url", "sqlite:/nonexistent-dir/sub/gw.db", "--listen", "127.0.0.1:0"],
        "cannot open database",
    );
    assert_one_line_error(
        &["--database-url", "postgres://nobody@127.0.0.1:1/x", "--listen", "127.0.0.1:0"],
        "cannot open database",
    );
}

#[tokio::test]
async fn first_start_prints_an_admin_password_that_works_and_user_add_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("gw.db").display());

    // user add on a fresh database (migrates it), password from stdin.
    let mut add = gatewarden()
        .args(["user", "add", "watcher", "--role", "viewer", "--database-url", &db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"watching closely\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let mut child =
        gatewarden().args(["--listen", "127.0.0.1:0", "--database-url", &db]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut password, mut url) = (None, None);
    // Everything before the "serving" line is start-up output.
    while url.is_none() {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(p) = line.strip_prefix("Created user 'admin' with password: ") {
            password = Some(p.to_string());
        }
        if let Some(u) = line.strip_prefix("Gatewarden is serving on ") {
            url = Some(u.to_string());
        }
    }
    // `user add` created an account, so no admin is generated on first serve.
    assert_eq!(password, None, "accounts already exist");
    let url = url.expect("serving line");
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    assert_eq!(client.get(format!("{url}/healthz")).send().await.unwrap().status(), StatusCode::OK);
    let login = client
        .post(format!("{url}/api/v1/session"))
        .json(&serde_json::json!({"username": "watcher", "password": "watching closely"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.json::<serde_json::Value>().await.unwrap()["role"], "viewer");
    // The account's creation is on the record, signed like the console's own entries.
    let created: serde_json::Value =
        client.get(format!("{url}/api/v1/audit?kind=user_change")).send().await.unwrap().json().await.unwrap();
    let entry = &created["entries"][0];
    assert_eq!((entry["target"].as_str(), entry["actor_role"].as_str()), (Some("watcher"), Some("cli")), "{created}");
    assert!(entry["actor"].as_str().unwrap().starts_with("cli:"));
    let verify: serde_json::Value =
        client.get(format!("{url}/api/v1/audit/verify")).send().await.unwrap().json().await.unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn a_first_start_without_a_terminal_writes_the_admin_password_to_an_owner_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("gw.db");
    let db = format!("sqlite:{}", db_path.display());
    let start = || {
        let mut child = gatewarden()
            .args(["--listen", "127.0.0.1:0", "--database-url", &db])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        while let Some(Ok(line)) = lines.next() {
            let done = line.starts_with("Gatewarden is serving on ");
            printed.push(line);
            if done {
                break;
            }
        }
        (child, printed)
    };

    let (mut first, printed) = start();
    let secret = std::path::PathBuf::from(format!("{}.admin-password", db_path.display()));
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("Created user 'admin'; its password is in ")
                && l.contains(&*secret.to_string_lossy())),
        "{printed:?}"
    );
    let password = std::fs::read_to_string(&secret).unwrap().trim().to_string();
    assert!(password.len() >= 16, "a generated password");
    assert!(printed.iter().all(|l| !l.contains(&password)), "never on standard output: {printed:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600, "owner only");
    let url = printed.last().unwrap().strip_prefix("Gatewarden is serving on ").unwrap().to_string();
    let login = reqwest::Client::new()
        .post(format!("{url}/api/v1/session"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    first.kill().unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&password), "never in the log either");

    let (mut second, printed) = start();
    assert!(printed.iter().all(|l| !l.contains("password")), "only on the first start: {printed:?}");
    second.kill().unwrap();
    let _ = second.wait();
}

#[test]
fn help_never_shows_the_database_url_from_the_environment() {
    let out = gatewarden()
        .arg("--help")
        .env("DATABASE_URL", "postgres://gatewarden:s3cret-pw@db.internal/gatewarden")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--database-url"), "{help}");
    assert!(!help.contains("s3cret-pw") && !help.contains("db.internal"), "{help}");
}

#[test]
fn settings_debug_redacts_the_admin_password_and_the_database_password() {
    use clap::Parser;
    let args = server::config::Cli::try_parse_from([
        "gatewarden",
        "--database-url",
        "postgres://gatewarden:s3cret-pw@127.0.0.1/gatewarden",
    ])
    .unwrap()
    .serve;
    let mut settings = server::startup::Settings::from_args(args).unwrap();
    settings.admin_password = Some("correct horse battery staple".into());
    let debug = format!("{settings:?}");
    assert!(!debug.contains("s3cret-pw") && !debug.contains("correct horse"), "{debug}");
    assert!(debug.contains("<redacted>") && debug.contains("gatewarden:***@127.0.0.1"), "{debug}");
}
