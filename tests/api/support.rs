//! Test harness: a real gatewarden on port 0 against a fresh database of its own
//! (a SQLite file, or a PostgreSQL database created for the test and dropped after).

use app::dto::{NewUser, Role};
use reqwest::{Client, Response, StatusCode, redirect};
use serde_json::{Value, json};
use server::fleet::sim::{Scenario, SimConfig, SimFleet};
use server::startup::{Application, Settings};
use server::state::AppState;
use sqlx::{Connection, Executor};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Password of the first admin in every test server.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// Password given to the other accounts tests create.
pub const USER_PASSWORD: &str = "a long enough password";
/// Fixed simulation epoch, so that every run sees the same traffic shape.
pub const EPOCH_MS: i64 = 1_767_261_600_000;

/// Which real database a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the local PostgreSQL server.
    Postgres,
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    /// URL the server connects to.
    pub url: String,
    /// `--audit-key-file`: none for SQLite (the key is created beside the database), a
    /// file of its own for PostgreSQL (which needs one).
    pub key_file: Option<std::path::PathBuf>,
    dir: tempfile::TempDir,
    pg_name: Option<String>,
    /// `--audit-checkpoint-file`, when not the default beside the key (each replica
    /// sharing a database keeps its own).
    checkpoint: Option<std::path::PathBuf>,
}

fn pg_admin_url() -> String {
    std::env::var("GATEWARDEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl TestDb {
    /// Creates an empty database.
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("gatewarden.db").display());
                TestDb { url, key_file: None, dir, pg_name: None, checkpoint: None }
            }
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let name = format!("gw_test_{:016x}", rand::random::<u64>());
                let mut admin = sqlx::AnyConnection::connect(&pg_admin_url())
                    .await
                    .expect("PostgreSQL must run on 127.0.0.1:5432 (see README: the test command starts it)");
                admin.execute(format!("create database {name}").as_str()).await.expect("create test database");
                let base = pg_admin_url();
                let url = format!("{}/{name}", &base[..base.rfind('/').expect("db path in URL")]);
                let dir = tempfile::tempdir().expect("temp dir");
                let key_file = dir.path().join("audit.key");
                std::fs::write(&key_file, format!("{:032x}{:032x}\n", rand::random::<u128>(), rand::random::<u128>()))
                    .expect("write the audit key");
                TestDb { url, key_file: Some(key_file), dir, pg_name: Some(name), checkpoint: None }
            }
        }
    }
}

impl TestDb {
    /// The same database for another replica: same URL and key, its own checkpoint file;
    /// the database is removed when the original is dropped, not this one.
    pub fn share(&self) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let checkpoint = Some(dir.path().join("audit.checkpoint"));
        TestDb { url: self.url.clone(), key_file: self.key_file.clone(), dir, pg_name: None, checkpoint }
    }

    /// The directory beside the database (SQLite's file, the key, the checkpoint).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The audit key file in use (given, or created beside a SQLite database).
    pub fn key_path(&self) -> std::path::PathBuf {
        self.key_file.clone().unwrap_or_else(|| self.dir().join("gatewarden.db.audit-key"))
    }

    /// The checkpoint file in use.
    pub fn checkpoint_path(&self) -> std::path::PathBuf {
        server::startup::default_checkpoint_file(&self.key_path())
    }

    /// `--audit-key-file` for a server on this database, if it needs one.
    pub fn key_args(&self) -> Vec<String> {
        match &self.key_file {
            Some(path) => vec!["--audit-key-file".into(), path.display().to_string()],
            None => Vec::new(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside async; use a short-lived runtime on its own thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    if let Ok(mut admin) = sqlx::AnyConnection::connect(&pg_admin_url()).await {
                        let _ = admin.execute(format!("drop database if exists {name} with (force)").as_str()).await;
                    }
                });
            })
            .join();
        }
    }
}

/// How to start a test server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Single sign-on (`--oidc-*`).
    pub oidc: Option<server::auth::oidc::OidcSettings>,
    /// `--local-accounts`.
    pub local_accounts: bool,
    /// The port to listen on (0: any free one).
    pub port: u16,
    /// Database kind.
    pub backend: Backend,
    /// Starting scenario.
    pub scenario: Scenario,
    /// Simulation seed.
    pub seed: u64,
    /// A Kubernetes client: the server runs `--fleet kube` against it instead of the simulator.
    pub kube: Option<server::startup::InjectedClient>,
    /// `--probe-allow` entries.
    pub probe_allow: Vec<String>,
    /// `--trusted-proxy` entries.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Caps on expensive work.
    pub limits: server::limits::Limits,
    /// Served over https (`--public-url https://...`).
    pub https: bool,
    /// `--dns-server`, `--dns-zone`, `--dns-tsig-key-file`.
    pub dns: Option<server::dns::Dns>,
    /// `--dns-provider external-dns`: (owner id, publication deadline).
    pub external_dns: Option<(Option<String>, std::time::Duration)>,
    /// `--require-approval` (none by default here; the server's default is rollback and
    /// bypass, which the approval tests set).
    pub require_approval: Vec<String>,
    /// `--approval-expiry-seconds`.
    pub approval_expiry: std::time::Duration,
    /// Where the built site is (`target/site` by default).
    pub site_root: String,
    /// The token `GET /metrics` requires.
    pub metrics_token: Option<String>,
    /// `--max-replicas`.
    pub max_replicas: u32,
    /// `--prometheus-url` and its queries (with `kube`).
    pub prometheus: Option<(String, server::fleet::prometheus::Queries)>,
}

impl Options {
    /// Healthy fleet, seed 7.
    pub fn new(backend: Backend) -> Self {
        Options {
            oidc: None,
            local_accounts: true,
            port: 0,
            backend,
            scenario: Scenario::Healthy,
            seed: 7,
            kube: None,
            probe_allow: Vec::new(),
            trusted_proxies: Vec::new(),
            limits: Default::default(),
            https: false,
            dns: None,
            external_dns: None,
            require_approval: Vec::new(),
            approval_expiry: std::time::Duration::from_secs(900),
            site_root: "target/site".into(),
            metrics_token: None,
            max_replicas: 50,
            prometheus: None,
        }
    }
    /// Starting in `scenario`.
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = scenario;
        self
    }
    /// Probes may also go to `entry` (`--probe-allow`).
    pub fn probe_allow(mut self, entry: &str) -> Self {
        self.probe_allow.push(entry.into());
        self
    }
    /// `X-Forwarded-For` is believed from `net` (`--trusted-proxy`).
    pub fn trusted_proxy(mut self, net: &str) -> Self {
        self.trusted_proxies.push(net.parse().expect("a CIDR"));
        self
    }
    /// With these caps.
    pub fn limits(mut self, limits: server::limits::Limits) -> Self {
        self.limits = limits;
        self
    }
    /// With `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// A running server. The simulation clock is stopped: tests advance it by hand.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (database, services).
    pub state: AppState,
    /// The simulated fleet (none with `--fleet kube`).
    sim: Option<Arc<SimFleet>>,
    server: JoinHandle<()>,
    tasks: Vec<tokio::task::AbortHandle>,
    db: Option<TestDb>,
}

impl TestApp {
    /// A healthy fleet on a fresh `backend` database.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(Options::new(backend)).await
    }

    /// A server started with `options` on a fresh database.
    pub async fn spawn_with(options: Options) -> TestApp {
        let db = TestDb::new(options.backend).await;
        Self::spawn_on(db, options).await
    }

    /// A server on an existing database (for restarts).
    pub async fn spawn_on(db: TestDb, options: Options) -> TestApp {
        Self::try_spawn_on(db, options).await.expect("server starts")
    }

    /// A server on an existing database, or why it refused to start.
    pub async fn try_spawn_on(db: TestDb, options: Options) -> Result<TestApp, String> {
        // Server logs go to the test's captured output: shown only when a test fails.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn,server=info").try_init();
        let settings = Settings {
            oidc: options.oidc.clone(),
            local_accounts: options.local_accounts,
            break_glass_admin: "admin".into(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], options.port)),
            database_url: db.url.clone(),
            fleet: if options.kube.is_some() {
                server::config::FleetKind::Kube
            } else {
                server::config::FleetKind::Sim
            },
            sim: SimConfig { seed: options.seed, scenario: options.scenario, epoch_ms: EPOCH_MS },
            sim_speed: None,
            secure_cookies: options.https,
            site_root: options.site_root.clone(),
            metrics_token: options.metrics_token.clone(),
            admin_password: Some(ADMIN_PASSWORD.into()),
            admin_password_file: std::path::PathBuf::from("unused-admin-password"),
            max_replicas: options.max_replicas,
            kube: server::fleet::cluster::KubeSettings {
                context: None,
                namespaces: vec!["prod".into()],
                selector: server::fleet::cluster::DEFAULT_SELECTOR.into(),
            },
            kube_client: options.kube.clone(),
            log_retention: Default::default(),
            max_log_streams: 5,
            probe_allow: options
                .probe_allow
                .iter()
                .map(|a| server::probe::Allowed::parse(a).expect("a valid --probe-allow entry"))
                .collect(),
            synthetic_interval_s: 0,
            prometheus: options.prometheus.clone(),
            trusted_proxies: options.trusted_proxies.clone(),
            limits: options.limits.clone(),
            dns: options.dns.clone(),
            external_dns: options.external_dns.clone(),
            approvals: (options.require_approval.clone(), options.approval_expiry),
            audit_key_file: db.key_file.clone(),
            audit_checkpoint_file: db.checkpoint.clone(),
            memory_trim: Some(server::memory::TRIM_EVERY),
        };
        let app = Application::build(settings).await.map_err(|e| e.to_string())?;
        let tasks = app.abort_handles();
        let addr = app.local_addr();
        let state = app.state.clone();
        let sim = state.sim.clone();
        let server = tokio::spawn(async move {
            let _ = app.run_until(std::future::pending()).await;
        });
        Ok(TestApp { addr, state, sim, server, tasks, db: Some(db) })
    }

    /// Its database.
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("database")
    }

    /// The simulated fleet.
    pub fn sim(&self) -> &Arc<SimFleet> {
        self.sim.as_ref().expect("a simulated fleet")
    }

    /// Stops the server as a killed process stops (nothing of it runs on, nothing is
    /// cleaned up) and hands back its database.
    pub async fn stop(mut self) -> TestDb {
        self.server.abort();
        for task in &self.tasks {
            task.abort();
        }
        let _ = (&mut self.server).await;
        self.db.take().expect("database")
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A client with its own cookie jar that does not follow redirects.
    pub fn client(&self) -> Client {
        Client::builder().cookie_store(true).redirect(redirect::Policy::none()).build().expect("client")
    }

    /// Posts a login with `client`.
    pub async fn login(&self, client: &Client, username: &str, password: &str) -> Response {
        client
            .post(self.url("/api/v1/session"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("request")
    }

    /// Creates an account directly in the database (the "arrange" step of a test).
    pub async fn add_user(&self, username: &str, role: Role) {
        server::accounts::store::create(
            &self.state.db,
            NewUser {
                username: username.into(),
                password: USER_PASSWORD.into(),
                role,
                reason: "a test account".into(),
            },
        )
        .await
        .expect("create user");
    }

    /// A signed-in session with `role` (the admin, or a new account with that role).
    pub async fn signed_in(&self, role: Role) -> Session {
        let (username, password) = match role {
            Role::Admin => ("admin".to_string(), ADMIN_PASSWORD),
            other => {
                let name = format!("{other}-{:08x}", rand::random::<u32>());
                self.add_user(&name, other).await;
                (name, USER_PASSWORD)
            }
        };
        let client = self.client();
        let response = self.login(&client, &username, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {username}");
        let body: Value = response.json().await.expect("json");
        let csrf = body["csrf_token"].as_str().expect("csrf token").to_string();
        Session { client, csrf, base: format!("http://{}", self.addr) }
    }

    /// An anonymous session.
    pub fn anonymous(&self) -> Session {
        Session { client: self.client(), csrf: String::new(), base: format!("http://{}", self.addr) }
    }

    /// Makes every append to the audit ledger fail ("disk full"), as a full disk or a lost
    /// database connection would, until [`TestApp::mend_ledger`].
    pub async fn break_ledger(&self, backend: Backend) {
        let statements: &[&str] = match backend {
            Backend::Sqlite => {
                &["create trigger break_ledger before insert on audit_log begin select raise(abort, 'disk full'); end"]
            }
            Backend::Postgres => &[
                "create function break_ledger() returns trigger language plpgsql as $$ begin raise exception 'disk full'; end $$",
                "create trigger break_ledger before insert on audit_log for each row execute function break_ledger()",
            ],
        };
        for statement in statements {
            sqlx::query(statement).execute(&self.state.db).await.unwrap();
        }
    }

    /// Undoes [`TestApp::break_ledger`].
    pub async fn mend_ledger(&self, backend: Backend) {
        let statement = match backend {
            Backend::Sqlite => "drop trigger break_ledger",
            Backend::Postgres => "drop trigger break_ledger on audit_log",
        };
        sqlx::query(statement).execute(&self.state.db).await.unwrap();
    }

    /// Advances the simulation and waits until the live feed has published it.
    pub async fn advance(&self, seconds: u32) {
        let mut live = self.state.live.clone();
        live.borrow_and_update();
        self.sim().advance(seconds);
        tokio::time::timeout(std::time::Duration::from_secs(5), live.changed())
            .await
            .expect("live feed publishes after a tick")
            .expect("live feed open");
    }
}

/// A client bound to a server, with the session's CSRF token.
pub struct Session {
    /// The cookie-carrying client.
    pub client: Client,
    /// The session's CSRF token ("" when anonymous).
    pub csrf: String,
    base: String,
}

impl Session {
    /// Absolute URL of `path` on this session's server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The same session, talking to another replica (sessions are in the shared database).
    pub fn on(&self, app: &TestApp) -> Session {
        Session { client: self.client.clone(), csrf: self.csrf.clone(), base: format!("http://{}", app.addr) }
    }

    /// The same session, talking to the server at `base` (another replica's process).
    pub fn at(&self, base: &str) -> Session {
        Session { client: self.client.clone(), csrf: self.csrf.clone(), base: base.to_string() }
    }

    /// Signs in as `username` at `base` (a server started some other way), asserting 200.
    pub async fn sign_in(base: &str, username: &str, password: &str) -> Session {
        let client = Client::builder().cookie_store(true).redirect(redirect::Policy::none()).build().expect("client");
        let response = client
            .post(format!("{base}/api/v1/session"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "login as {username}");
        let body: Value = response.json().await.expect("json");
        let csrf = body["csrf_token"].as_str().expect("csrf token").to_string();
        Session { client, csrf, base: base.to_string() }
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(format!("{}{path}", self.base)).send().await.expect("request")
    }

    /// GET `path` and parse the JSON body, asserting 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json body")
    }

    /// POST JSON with the CSRF header.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// POST JSON without the CSRF header.
    pub async fn post_without_csrf(&self, path: &str, body: &Value) -> Response {
        self.client.post(format!("{}{path}", self.base)).json(body).send().await.expect("request")
    }

    /// PATCH JSON with the CSRF header.
    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.client
            .patch(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// PUT (no body) with the CSRF header.
    pub async fn put(&self, path: &str) -> Response {
        self.client
            .put(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .send()
            .await
            .expect("request")
    }

    /// PUT JSON with the CSRF header.
    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// The signed-in user's name.
    pub async fn username(&self) -> String {
        self.get_json("/api/v1/session").await["username"].as_str().expect("a username").to_string()
    }

    /// DELETE with the CSRF header.
    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .send()
            .await
            .expect("request")
    }
}

impl TestApp {
    /// The gateway list as a viewer sees it.
    pub async fn gateway(&self, id: &str) -> app::dto::GatewaySummary {
        let state = &self.state;
        let list = state.health.gateways().await.expect("health");
        list.into_iter().find(|g| g.id == id).expect("gateway")
    }

    /// Rows in the audit ledger.
    pub async fn audit_count(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("select count(*) from audit_log").fetch_one(&self.state.db).await.unwrap();
        n
    }
}

/// Polls `check` (every 20 ms, up to 5 s) until it returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(std::time::Duration::from_secs(5), what, check).await
}

/// Polls `check` (every 20 ms, up to `limit`) until it returns `Some`.
pub async fn eventually_within<T, F, Fut>(limit: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Asserts an error response's status and code, returning the message.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status, "status");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"], code, "error code in {body}");
    let message = body["message"].as_str().expect("message").to_string();
    assert!(!message.is_empty());
    message
}

/// Runs an async test body once against SQLite and once against PostgreSQL.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::Backend::Postgres).await })*
        }
    };
}
