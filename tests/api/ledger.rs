//! The ledger against someone holding the database's credentials but not the audit key:
//! entries are signed with a key outside the database and compared with a checkpoint
//! outside it, so a rewrite with fresh hashes, a cut from the end, or a rewrite of
//! everything followed by a restart is each named by the check that failed.

use crate::support::*;
use app::dto::{AuditEntry, AuditVerification, Role};
use futures::TryStreamExt;
use server::audit::{Filter, Ledger, entry_hash};
use server::db::{Db, Dialect};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

crate::both_databases!(
    a_rewrite_with_fresh_hashes_is_caught_by_the_key,
    entries_cut_from_the_end_are_counted_and_stay_counted_across_restarts,
    a_rewrite_of_everything_does_not_survive_a_restart,
    a_ledger_from_before_signing_keeps_verifying_and_is_vouched_for,
);

fn dialect(backend: Backend) -> Dialect {
    match backend {
        Backend::Sqlite => Dialect::Sqlite,
        Backend::Postgres => Dialect::Postgres,
    }
}

/// Every entry, oldest first, read from the database.
async fn entries(db: &Db, backend: Backend) -> Vec<AuditEntry> {
    Ledger::new(db.clone(), dialect(backend)).stream(Filter::default()).try_collect().await.unwrap()
}

/// What an attacker does first: the append-only guard goes.
async fn drop_guards(db: &Db, backend: Backend) {
    let statements: &[&str] = match backend {
        Backend::Sqlite => &["drop trigger audit_log_no_update", "drop trigger audit_log_no_delete"],
        Backend::Postgres => &["drop trigger audit_log_no_update on audit_log"],
    };
    for s in statements {
        sqlx::query(s).execute(db).await.unwrap();
    }
}

/// Changes entry `id` with `edit` and recomputes its hash and every later one, so the
/// chain links and hashes perfectly again; `strip` also empties every signature from
/// `id` on (the attacker cannot compute new ones).
async fn rewrite(db: &Db, backend: Backend, id: i64, strip: bool, edit: impl Fn(&mut AuditEntry)) {
    drop_guards(db, backend).await;
    let mut prev = None::<String>;
    for mut e in entries(db, backend).await {
        if e.id < id {
            prev = Some(e.hash.clone());
            continue;
        }
        if e.id == id {
            edit(&mut e);
        }
        if let Some(p) = &prev {
            e.prev_hash = p.clone();
        }
        e.hash = entry_hash(&e);
        if strip {
            e.mac.clear();
        }
        sqlx::query("update audit_log set reason = $1, prev_hash = $2, hash = $3, mac = $4 where id = $5")
            .bind(&e.reason)
            .bind(&e.prev_hash)
            .bind(&e.hash)
            .bind(&e.mac)
            .bind(e.id)
            .execute(db)
            .await
            .unwrap();
        prev = Some(e.hash);
    }
}

async fn verify(session: &Session) -> AuditVerification {
    serde_json::from_value(session.get_json("/api/v1/audit/verify").await).unwrap()
}

fn checks(v: &AuditVerification) -> Vec<(&str, i64)> {
    v.problems.iter().map(|p| (p.check.as_str(), p.id)).collect()
}

async fn a_rewrite_with_fresh_hashes_is_caught_by_the_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    admin
        .post("/api/v1/users", &serde_json::json!({"username": "mallory", "password": USER_PASSWORD, "role": "viewer", "reason": "a test account"}))
        .await;
    app.signed_in(Role::Admin).await;
    let intact = verify(&admin).await;
    assert!(intact.ok, "{intact:?}");
    assert_eq!(intact.signed_from, Some(1), "a new ledger is signed from its first entry: {intact:?}");
    let victim = entries(&app.state.db, backend).await.into_iter().find(|e| e.kind == "user_change").unwrap().id;

    // The account's creation is made to look routine, every later hash recomputed; the
    // signatures are left as they were (they are all the attacker has).
    rewrite(&app.state.db, backend, victim, false, |e| e.reason = "routine".into()).await;

    let after = verify(&admin).await;
    assert!(!after.ok);
    // Links and hashes are intact; the signature is not, and every hash from the victim on
    // changed, so the checkpoint's entry is not the one it recorded either.
    let head = intact.entries;
    assert_eq!(checks(&after), [("key", victim), ("checkpoint", head)], "{after:?}");
    assert!(after.problems[0].message.contains(&format!("entry #{victim} is not signed")), "{after:?}");
    assert_eq!(after.first_bad_id, Some(victim));
}

/// A console on the real binary, stopped the way Kubernetes stops a pod.
pub(crate) struct Console {
    child: Child,
    url: String,
}

impl Console {
    pub(crate) fn start(db: &TestDb) -> Console {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatewarden"))
            .args(["--listen", "127.0.0.1:0", "--database-url", &db.url, "--synthetic-interval-s", "0"])
            .args(db.key_args())
            .env("GATEWARDEN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("Gatewarden is serving on ").map(str::to_string))
            .expect("serving");
        Console { child, url }
    }

    pub(crate) async fn admin(&self) -> Session {
        Session::sign_in(&self.url, "admin", ADMIN_PASSWORD).await
    }

    /// SIGTERM, then at most 10 s for a clean exit.
    pub(crate) fn stop(mut self) {
        let stopped = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(stopped.success());
        let asked = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(asked.elapsed() < std::time::Duration::from_secs(10), "the console did not stop within 10 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(status.success(), "a stopped console exits cleanly: {status}");
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn entries_cut_from_the_end_are_counted_and_stay_counted_across_restarts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let console = Console::start(&db);
    for _ in 0..4 {
        console.admin().await;
    }
    let admin = console.admin().await;
    let intact = verify(&admin).await;
    assert!(intact.ok, "{intact:?}");
    let head = intact.entries;
    console.stop();

    // Three sign-ins are taken out of history while the console is down.
    let conn = server::db::connect(&db.url).await.unwrap();
    drop_guards(&conn, backend).await;
    sqlx::query("delete from audit_log where id > $1").bind(head - 3).execute(&conn).await.unwrap();

    let console = Console::start(&db);
    let admin = console.admin().await;
    let after = verify(&admin).await;
    assert!(!after.ok);
    let cut = after.problems.iter().find(|p| p.check == "truncation").unwrap_or_else(|| panic!("{after:?}"));
    assert_eq!(cut.id, head - 3);
    assert!(
        cut.message.contains(&format!("3 entries missing after #{}", head - 3)),
        "the message says how many and where: {}",
        cut.message
    );
    console.stop();

    // A restart does not wash it away.
    let console = Console::start(&db);
    let again = verify(&console.admin().await).await;
    assert!(!again.ok && again.problems.iter().any(|p| p.check == "truncation" && p.id == head - 3), "{again:?}");
    console.stop();
}

async fn a_rewrite_of_everything_does_not_survive_a_restart(backend: Backend) {
    let db = TestDb::new(backend).await;
    let console = Console::start(&db);
    console.admin().await;
    let admin = console.admin().await;
    assert!(verify(&admin).await.ok);
    console.stop();

    // Every entry from the first (the key marker) is rewritten and rehashed, the
    // signatures stripped: the chain is perfect, no entry claims a signature, and a
    // restart writes a fresh key marker that would vouch for all of it.
    let conn = server::db::connect(&db.url).await.unwrap();
    rewrite(&conn, backend, 1, true, |e| e.reason = "nothing to see".into()).await;
    let rewritten = Ledger::new(conn.clone(), dialect(backend)).verify().await.unwrap();
    assert!(rewritten.ok, "without the key, the rewrite looks intact: {rewritten:?}");

    let console = Console::start(&db);
    let after = verify(&console.admin().await).await;
    assert!(!after.ok, "{after:?}");
    let found: Vec<&str> = after.problems.iter().map(|p| p.check.as_str()).collect();
    assert!(found.contains(&"checkpoint"), "the checkpoint's entry is not the one in the chain: {after:?}");
    assert!(found.contains(&"key"), "the marker signing began at no longer carries the key: {after:?}");
    assert!(
        after.problems.iter().all(|p| p.message.starts_with("found when the console started")),
        "what start-up found is said as such: {after:?}"
    );
    console.stop();
}

async fn a_ledger_from_before_signing_keeps_verifying_and_is_vouched_for(backend: Backend) {
    // A ledger written by a console from before signing: hashes, no signatures.
    let db = TestDb::new(backend).await;
    let conn = server::db::connect(&db.url).await.unwrap();
    let old = Ledger::new(conn.clone(), dialect(backend));
    for i in 0..5 {
        let mut e = server::audit::NewEntry::new(
            server::audit::Actor::system(),
            server::audit::Kind::Reconciliation,
            server::audit::Outcome::Succeeded,
        );
        e.reason = format!("before signing {i}");
        old.append(e).await.unwrap();
    }

    let app = TestApp::spawn_on(db, Options::new(backend)).await;
    let admin = app.signed_in(Role::Admin).await;
    let upgraded = verify(&admin).await;
    assert!(upgraded.ok, "an old ledger keeps verifying: {upgraded:?}");
    assert_eq!(upgraded.signed_from, Some(6), "signing begins at a marker after the old entries");
    let all = entries(&app.state.db, backend).await;
    let marker = &all[5];
    assert_eq!((marker.kind.as_str(), marker.actor.as_str()), ("audit_key", "system"));
    assert!(marker.reason.contains("the 5 before are vouched for"), "{}", marker.reason);
    assert!(all[..5].iter().all(|e| e.mac.is_empty()) && all[5..].iter().all(|e| e.mac.len() == 64));

    // The marker's signature covers the old entries: rewriting one shows.
    rewrite(&app.state.db, backend, 3, false, |e| e.reason = "rewritten".into()).await;
    let after = verify(&admin).await;
    assert!(!after.ok);
    assert!(checks(&after).contains(&("key", 6)), "the marker no longer carries the key: {after:?}");
}

/// The export verifies offline with the documented command; a cut or an edit in the
/// file is named, with a non-zero exit status.
#[tokio::test]
async fn an_exported_ledger_verifies_offline_with_the_key_and_the_checkpoint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.signed_in(Role::Admin).await;
    admin
        .post("/api/v1/users", &serde_json::json!({"username": "ops", "password": USER_PASSWORD, "role": "viewer", "reason": "a test account"}))
        .await;
    let export = admin.get("/api/v1/audit/export?format=jsonl").await.text().await.unwrap();
    let newest = export.lines().count() as i64;
    // The checkpoint file follows appends within a quarter second.
    let (checkpoint, key) = (app.db().checkpoint_path(), app.db().key_path());
    let recorded = || {
        let text = std::fs::read_to_string(&checkpoint).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["body"]["head_id"].as_i64()
    };
    eventually_within(std::time::Duration::from_secs(5), "the checkpoint records the newest entry", || async {
        (recorded() == Some(newest)).then_some(())
    })
    .await;
    let _db = app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let file = dir.path().join("export.jsonl");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gatewarden"))
            .args(["audit", "verify"])
            .arg(&file)
            .arg("--key-file")
            .arg(&key)
            .arg("--checkpoint-file")
            .arg(&checkpoint)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let (status, out) = run(&export);
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains("every entry from #1 carries audit key") && out.ends_with("ok\n"), "{out}");

    let lines: Vec<&str> = export.lines().collect();
    let cut = lines[..lines.len() - 2].join("\n");
    let (status, out) = run(&cut);
    assert_eq!(status, Some(1), "{out}");
    assert!(out.contains(&format!("2 entries missing after #{}", lines.len() - 2)), "{out}");

    let edited = export.replacen("\"kind\":\"login\"", "\"kind\":\"logout\"", 1);
    let (status, out) = run(&edited);
    assert_eq!(status, Some(1), "{out}");
    assert!(out.contains("FAILED hash check at #"), "{out}");
}
