//! Builds the application from settings: database, fleet, services, router.

use crate::actions::Engine;
use crate::audit::Ledger;
use crate::auth;
use crate::auth::store::DbSessionStore;
use crate::config::{FleetKind, ServeArgs};
use crate::db::{self, DbSetupError};
use crate::fleet::cluster::{self, KubeFleet, KubeSettings};
use crate::fleet::prometheus::{NoMetrics, Prometheus, Queries};
use crate::fleet::sim::{SimConfig, SimFleet};
use crate::fleet::{Fleet, Metrics};
use crate::health::HealthService;
use crate::state::AppState;
use crate::users::{self, FirstAdmin};
use axum::Router;
use leptos::config::{Env, LeptosOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_sessions::ExpiredDeletion;

/// Everything needed to start, resolved from flags and environment. Its `Debug` shows
/// neither the admin password nor the database URL's password.
#[derive(Clone)]
pub struct Settings {
    /// Single sign-on, if set up.
    pub oidc: Option<crate::auth::oidc::OidcSettings>,
    /// Whether accounts may sign in with a password (else only the break-glass admin).
    pub local_accounts: bool,
    /// The account that may sign in with a password when local accounts are off.
    pub break_glass_admin: String,
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Database URL.
    pub database_url: String,
    /// Backend.
    pub fleet: FleetKind,
    /// Simulated fleet inputs.
    pub sim: SimConfig,
    /// Simulated seconds per real second; `None` leaves the clock stopped (tests
    /// advance it by hand).
    pub sim_speed: Option<f64>,
    /// Mark cookies Secure (served over https).
    pub secure_cookies: bool,
    /// Directory of the compiled site.
    pub site_root: String,
    /// Password for the first admin; generated when absent.
    pub admin_password: Option<String>,
    /// Where a generated first-admin password is written (mode 0600) when no terminal
    /// is attached to show it on.
    pub admin_password_file: std::path::PathBuf,
    /// Largest replica count `scale` may set.
    pub max_replicas: u32,
    /// The cluster, for `--fleet kube`.
    pub kube: KubeSettings,
    /// A ready-made client instead of the kubeconfig (tests and benchmarks).
    pub kube_client: Option<InjectedClient>,
    /// Prometheus URL and queries, for `--fleet kube`.
    pub prometheus: Option<(String, Queries)>,
    /// How many log lines to keep.
    pub log_retention: crate::logs::Retention,
    /// Pods whose logs are followed at once in Kubernetes mode.
    pub max_log_streams: usize,
    /// Where probes may go by URL.
    pub probe_allow: Vec<crate::probe::Allowed>,
    /// Seconds between synthetic checks (0: none).
    pub synthetic_interval_s: u64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Caps on expensive work.
    pub limits: crate::limits::Limits,
    /// The bearer token `GET /metrics` requires (`--metrics-token-file`), if any.
    pub metrics_token: Option<String>,
    /// `--audit-key-file`.
    pub audit_key_file: Option<std::path::PathBuf>,
    /// `--audit-checkpoint-file`.
    pub audit_checkpoint_file: Option<std::path::PathBuf>,
    /// Time between two returns of freed memory to the system (none: never).
    pub memory_trim: Option<std::time::Duration>,
    /// `--dns-server`, `--dns-zone`, `--dns-tsig-key-file`: services' records a DNS bypass
    /// changes (none: only route bypasses).
    pub dns: Option<crate::dns::Dns>,
    /// `--dns-provider external-dns` (with `--fleet kube`): records in DNSEndpoints, the
    /// owner id (`--external-dns-owner-id`) and how long publication may take.
    pub external_dns: Option<(Option<String>, std::time::Duration)>,
    /// `--require-approval` (empty: off) and `--approval-expiry-seconds`.
    pub approvals: (Vec<String>, std::time::Duration),
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &db::redact(&self.database_url))
            .field("fleet", &self.fleet)
            .field("admin_password", &self.admin_password.as_ref().map(|_| "<redacted>"))
            .field("admin_password_file", &self.admin_password_file)
            .field("secure_cookies", &self.secure_cookies)
            .field("site_root", &self.site_root)
            .field("kube", &self.kube)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("limits", &self.limits)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "<redacted>"))
            .field("audit_key_file", &self.audit_key_file)
            .field("audit_checkpoint_file", &self.audit_checkpoint_file)
            .finish_non_exhaustive()
    }
}

/// Where a generated first-admin password goes: beside a SQLite database, else in the
/// working directory.
pub fn default_admin_password_file(database_url: &str) -> std::path::PathBuf {
    match sqlite_file(database_url) {
        Some(path) => std::path::PathBuf::from(format!("{path}.admin-password")),
        None => std::path::PathBuf::from("gatewarden-admin-password"),
    }
}

/// A SQLite database's file path, if it has one.
fn sqlite_file(database_url: &str) -> Option<&str> {
    match database_url.strip_prefix("sqlite:").map(|p| p.trim_start_matches("//")) {
        Some(path) if !path.is_empty() && !path.starts_with(':') => Some(path.split('?').next().unwrap_or(path)),
        _ => None,
    }
}

/// The checkpoint beside a key file: `audit.key` -> `audit.checkpoint`,
/// `gatewarden.db.audit-key` -> `gatewarden.db.audit-checkpoint`, else `<key>.checkpoint`.
pub fn default_checkpoint_file(key_file: &std::path::Path) -> std::path::PathBuf {
    let name = key_file.file_name().and_then(|n| n.to_str()).unwrap_or("audit-key");
    match name.strip_suffix("key") {
        Some(stem) if !stem.is_empty() => key_file.with_file_name(format!("{stem}checkpoint")),
        _ => key_file.with_file_name(format!("{name}.checkpoint")),
    }
}

/// The audit key and where the checkpoint is kept: `--audit-key-file`, else a key beside
/// a SQLite database (created on first start), else, for an in-memory database, a key
/// that lives as long as the process. PostgreSQL needs the flag: replicas share the key.
pub fn audit_key(
    database_url: &str,
    key_file: Option<&std::path::Path>,
    checkpoint_file: Option<&std::path::Path>,
) -> Result<(crate::audit::AuditKey, Option<std::path::PathBuf>), StartupError> {
    use crate::audit::AuditKey;
    let key_path = match key_file {
        Some(path) => Some(path.to_path_buf()),
        None => sqlite_file(database_url).map(|db| std::path::PathBuf::from(format!("{db}.audit-key"))),
    };
    let checkpoint =
        checkpoint_file.map(|p| p.to_path_buf()).or_else(|| key_path.as_deref().map(default_checkpoint_file));
    let key = match (&key_path, key_file) {
        (Some(path), Some(_)) => AuditKey::load(path).map_err(|e| StartupError::Config(e.to_string()))?,
        (Some(path), None) => {
            let (key, created) = AuditKey::load_or_create(path).map_err(|e| StartupError::Config(e.to_string()))?;
            if created {
                tracing::warn!(path = %path.display(), "created the audit key: keep it with the database (without it the ledger's signatures cannot be checked)");
            }
            key
        }
        (None, _) if db::dialect(database_url) == Some(db::Dialect::Postgres) => {
            return Err(StartupError::Config(
                "with PostgreSQL, pass --audit-key-file (env GATEWARDEN_AUDIT_KEY_FILE): a file of at least 32 \
                 random bytes, the same on every replica (in Kubernetes, a Secret), e.g. \
                 `head -c 32 /dev/urandom | base64 > audit.key`"
                    .into(),
            ));
        }
        (None, _) => AuditKey::ephemeral(),
    };
    Ok((key, checkpoint))
}

/// A Kubernetes client handed in by a test or benchmark.
#[derive(Clone)]
pub struct InjectedClient(pub kube::Client);

impl std::fmt::Debug for InjectedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InjectedClient")
    }
}

/// The flavor's queries with the fields of the JSON file at `path` (if any) replaced.
pub fn load_queries(flavor: &str, path: Option<&std::path::Path>) -> Result<Queries, StartupError> {
    let base = Queries::flavor(flavor).ok_or_else(|| {
        StartupError::Config(format!(
            "unknown --prometheus-flavor '{flavor}' (expected ingress-nginx, envoy, kong or gatewarden)"
        ))
    })?;
    let Some(path) = path else { return Ok(base) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| StartupError::Config(format!("cannot read {}: {e}", path.display())))?;
    let overrides: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| StartupError::Config(format!("{}: not a JSON object: {e}", path.display())))?;
    let mut merged = match serde_json::to_value(base) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(StartupError::Other("queries did not serialize to an object".into())),
    };
    merged.extend(overrides);
    serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| StartupError::Config(format!("{}: {e}", path.display())))
}

impl Settings {
    /// Settings from the `serve` flags and `GATEWARDEN_ADMIN_PASSWORD`.
    pub fn from_args(args: ServeArgs) -> Result<Self, StartupError> {
        if db::dialect(&args.database_url).is_none() {
            return Err(StartupError::Config(format!(
                "unsupported database URL '{}' (expected sqlite:PATH or postgres://...)",
                db::redact(&args.database_url)
            )));
        }
        let secure_cookies = match &args.public_url {
            Some(u) if u.starts_with("https://") => true,
            Some(u) if u.starts_with("http://") => false,
            Some(u) => {
                return Err(StartupError::Config(format!("--public-url '{u}' must start with http:// or https://")));
            }
            None => false,
        };
        let probe_allow = args
            .probe_allow
            .iter()
            .filter(|a| !a.trim().is_empty())
            .map(|a| crate::probe::Allowed::parse(a).map_err(|e| StartupError::Config(format!("--probe-allow {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_proxies = args
            .trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| StartupError::Config(format!("--trusted-proxy '{p}' is not an address or CIDR")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limits = crate::limits::Limits {
            sign_ins_at_once: args.max_concurrent_sign_ins as usize,
            streams: args.max_streams as usize,
            streams_per_user: args.max_streams_per_user as usize,
            probes: args.max_probes as usize,
            probes_per_user: args.max_probes_per_user as usize,
            searches: args.max_searches as usize,
            searches_per_user: args.max_searches_per_user as usize,
            verifies: args.max_verifies as usize,
            pod_log_bytes: (args.pod_log_kb as usize) << 10,
            pod_log_bytes_total: (args.pod_log_total_kb as usize) << 10,
            incident_writes_per_minute: args.max_incident_writes_per_minute as usize,
            ..Default::default()
        };
        let admin_password_file =
            args.admin_password_file.clone().unwrap_or_else(|| default_admin_password_file(&args.database_url));
        let dns = match (&args.dns_server, &args.dns_zone) {
            (Some(server), Some(zone)) => {
                let key = args
                    .dns_tsig_key_file
                    .as_deref()
                    .map(crate::dns::TsigKey::load)
                    .transpose()
                    .map_err(|e| StartupError::Config(format!("--dns-tsig-key-file {e}")))?;
                let mut dns = crate::dns::Dns::new(*server, zone, key).map_err(StartupError::Config)?;
                dns.name_servers = args.dns_check_server.clone();
                dns.resolvers = args.dns_check_resolver.clone();
                dns.deadline = std::time::Duration::from_secs(args.dns_propagation_deadline);
                Some(dns)
            }
            _ => None,
        };
        let external_dns = match args.dns_provider {
            crate::config::DnsProvider::ExternalDns if args.fleet != FleetKind::Kube => {
                return Err(StartupError::Config(
                    "--dns-provider external-dns needs --fleet kube (external-dns publishes DNSEndpoints from a cluster)"
                        .into(),
                ));
            }
            crate::config::DnsProvider::ExternalDns if dns.is_some() => {
                return Err(StartupError::Config(
                    "--dns-provider external-dns and --dns-server are two places for the same records: give one".into(),
                ));
            }
            crate::config::DnsProvider::ExternalDns => Some((
                args.external_dns_owner_id.clone(),
                std::time::Duration::from_secs(args.dns_propagation_deadline),
            )),
            crate::config::DnsProvider::Rfc2136 => None,
        };
        let kinds: Vec<String> =
            args.require_approval.iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
        const KINDS: [&str; 8] =
            ["restart", "scale", "scale-down", "rollback", "rate-limit", "timeouts", "circuit-breaker", "bypass"];
        if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(StartupError::Config(format!(
                "--require-approval: no action '{bad}' (use {}, or an empty value for none)",
                KINDS.join(", ")
            )));
        }
        let metrics_token = match &args.metrics_token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    StartupError::Config(format!("--metrics-token-file {}: cannot read it: {e}", path.display()))
                })?;
                let token = token.trim().to_string();
                if token.len() < 16 {
                    return Err(StartupError::Config(format!(
                        "--metrics-token-file {}: the token must be at least 16 characters",
                        path.display()
                    )));
                }
                Some(token)
            }
            None => None,
        };
        let oidc = match &args.oidc_issuer {
            Some(issuer) => {
                let client_secret = match &args.oidc_client_secret_file {
                    Some(path) => Some(
                        std::fs::read_to_string(path)
                            .map_err(|e| {
                                StartupError::Config(format!(
                                    "--oidc-client-secret-file {}: cannot read it: {e}",
                                    path.display()
                                ))
                            })?
                            .trim()
                            .to_string(),
                    ),
                    None => None,
                };
                let role_map = args
                    .oidc_role_map
                    .iter()
                    .map(|e| crate::auth::oidc::parse_role_map(e))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StartupError::Config)?;
                let public = args.public_url.as_deref().unwrap_or_default().trim_end_matches('/');
                Some(crate::auth::oidc::OidcSettings {
                    issuer: issuer.clone(),
                    client_id: args.oidc_client_id.clone().unwrap_or_default(),
                    client_secret,
                    redirect_url: format!("{public}/auth/oidc/callback"),
                    scopes: args.oidc_scopes.split_whitespace().map(String::from).collect(),
                    role_claim: args.oidc_role_claim.clone(),
                    role_map,
                    default_role: args.oidc_default_role,
                    provider_name: args.oidc_provider_name.clone(),
                })
            }
            None => None,
        };
        if !args.local_accounts && oidc.is_none() {
            return Err(StartupError::Config(
                "--local-accounts=false needs single sign-on (--oidc-issuer): no one else could sign in".into(),
            ));
        }
        let now_ms = db::now_ms();
        Ok(Settings {
            oidc,
            local_accounts: args.local_accounts,
            break_glass_admin: args.break_glass_admin.clone(),
            metrics_token,
            approvals: (kinds, std::time::Duration::from_secs(args.approval_expiry_seconds)),
            dns,
            external_dns,
            memory_trim: (args.memory_trim_seconds > 0)
                .then(|| std::time::Duration::from_secs(args.memory_trim_seconds)),
            audit_key_file: args.audit_key_file,
            audit_checkpoint_file: args.audit_checkpoint_file,
            trusted_proxies,
            limits,
            probe_allow,
            synthetic_interval_s: args.synthetic_interval_s,
            listen: args.listen,
            database_url: args.database_url,
            fleet: args.fleet,
            // History is simulated up to "now": second 0 is 15 minutes ago.
            sim: SimConfig {
                seed: args.seed,
                scenario: args.scenario,
                epoch_ms: now_ms - crate::fleet::sim::parts::HISTORY_S as i64 * 1000,
            },
            sim_speed: Some(args.sim_speed),
            secure_cookies,
            site_root: args.site_root,
            admin_password: std::env::var("GATEWARDEN_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()),
            admin_password_file,
            max_replicas: args.max_replicas,
            kube: KubeSettings { context: args.context, namespaces: args.namespaces, selector: args.gateway_selector },
            kube_client: None,
            max_log_streams: args.max_log_streams as usize,
            log_retention: crate::logs::Retention {
                max_bytes: (args.log_retention_mb as usize) << 20,
                max_age_ms: args.log_retention_hours as i64 * 3_600_000,
            },
            prometheus: match args.prometheus_url {
                Some(url) => Some((url, load_queries(&args.prometheus_flavor, args.prometheus_queries.as_deref())?)),
                None => None,
            },
        })
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbSetupError),
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Anything else during start-up.
    #[error("{0}")]
    Other(String),
}

impl StartupError {
    /// Process exit code: 2 for configuration the user must fix, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) | StartupError::Db(_) | StartupError::Bind { .. } => 2,
            StartupError::Other(_) => 1,
        }
    }
}

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// Shared state (tests use it to reach the simulator and database).
    pub state: AppState,
    /// What happened to the first admin account.
    pub first_admin: FirstAdmin,
    background: Vec<JoinHandle<()>>,
    /// Heartbeat and election; on stop it lets go of leadership and unregisters.
    replica_task: JoinHandle<()>,
}

impl Application {
    /// Opens the database, creates the fleet and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let db = db::connect(&settings.database_url).await?;
        let first_admin = users::ensure_first_admin(&db, settings.admin_password.clone())
            .await
            .map_err(|e| StartupError::Other(format!("creating the first admin failed: {e:?}")))?;

        let dialect = db::dialect(&settings.database_url).expect("checked in Settings");
        // Registered before anything else starts: the simulator refuses a second process.
        let fleet_name = match settings.fleet {
            FleetKind::Sim => "sim",
            FleetKind::Kube => "kube",
        };
        let replicas = crate::replicas::Replicas::join(db.clone(), dialect, &settings.database_url, fleet_name)
            .await
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let stopping = Arc::new(tokio::sync::watch::channel(false).0);
        let bus = crate::bus::Bus::new(db.clone(), dialect);
        let throttle = Arc::new(crate::auth::shared_throttle::Throttle::new(&db, dialect, Some(replicas.clone())));
        let mut background = Vec::new();
        background.extend(bus.spawn_listener(&settings.database_url, stopping.subscribe()));
        {
            // The leader keeps the outbox to its last 15 minutes and the shared sign-in
            // counters to their window.
            let (bus, replicas, throttle) = (bus.clone(), replicas.clone(), throttle.clone());
            background.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    every.tick().await;
                    if !replicas.is_leader() {
                        continue;
                    }
                    if let Err(e) = bus.prune().await {
                        tracing::warn!(error = ?e, "pruning the event outbox failed");
                    }
                    if let Err(e) = throttle.sweep().await {
                        tracing::warn!(error = ?e, "sweeping the shared sign-in counters failed");
                    }
                }
            }));
        }
        let replica_task = replicas.spawn(stopping.subscribe());
        background.extend(settings.memory_trim.and_then(crate::memory::spawn_trimmer));
        let logs = Arc::new(crate::logs::LogStore::new(settings.log_retention));
        let mut kube_client = None;
        let (fleet, metrics, sim): (Arc<dyn Fleet>, Arc<dyn Metrics>, _) = match settings.fleet {
            FleetKind::Sim => {
                let sim = SimFleet::new(settings.sim.clone());
                sim.attach_logs(logs.clone());
                if let Some(speed) = settings.sim_speed {
                    background.push(sim.spawn_clock(speed));
                }
                (sim.clone(), sim.clone(), Some(sim))
            }
            FleetKind::Kube => {
                let (client, namespaces) = match &settings.kube_client {
                    Some(InjectedClient(client)) => {
                        let ns = if settings.kube.namespaces.is_empty() {
                            vec!["default".to_string()]
                        } else {
                            settings.kube.namespaces.clone()
                        };
                        (client.clone(), ns)
                    }
                    None => cluster::connect(&settings.kube).await.map_err(StartupError::Config)?,
                };
                kube_client = Some(client.clone());
                let (fleet, tasks) = KubeFleet::start(client, &namespaces, &settings.kube.selector);
                fleet.set_log_budget(cluster::logs::Budget {
                    per_pod: settings.limits.pod_log_bytes as i64,
                    total: settings.limits.pod_log_bytes_total as i64,
                });
                background.extend(tasks);
                if settings.max_log_streams > 0 {
                    background.push(fleet.spawn_log_feed(logs.clone(), settings.max_log_streams));
                }
                let metrics: Arc<dyn Metrics> = match &settings.prometheus {
                    Some((url, queries)) => Arc::new(Prometheus::new(url, queries.clone())),
                    None => Arc::new(NoMetrics),
                };
                (fleet, metrics, None)
            }
        };
        // With --dns-server, each service's public record comes with its gateway's state and
        // a DNS bypass changes it (in the simulator, each service's direct address is its own).
        use crate::fleet::cluster::dnsendpoint;
        use crate::fleet::dns::{DnsFleet, Rfc2136};
        let fleet: Arc<dyn Fleet> = match (&settings.dns, &sim, &kube_client, &settings.external_dns) {
            // In a cluster, records and direct targets come from the downstream Services'
            // annotations; the record lives on the zone's primary or in a DNSEndpoint.
            (Some(dns), None, Some(client), _) => {
                let direct = dnsendpoint::service_direct_targets(client.clone());
                Arc::new(DnsFleet::new(fleet, Arc::new(Rfc2136::new(dns.clone(), direct)), None))
            }
            (None, None, Some(client), Some((owner, deadline))) => {
                let records = dnsendpoint::ExternalDns::new(client.clone(), owner.clone(), *deadline);
                Arc::new(DnsFleet::new(fleet, Arc::new(records), None))
            }
            (Some(dns), Some(sim), _, _) => {
                // Each service answers on its own loopback address: its direct target.
                let at = crate::fleet::dns::simulated_direct_addresses(sim.service_names());
                let (tasks, listening) = sim
                    .serve_services(&at)
                    .await
                    .map_err(|e| StartupError::Other(format!("starting the simulated services' listeners: {e}")))?;
                background.extend(tasks);
                let direct = crate::fleet::dns::simulated_direct_targets(dns, listening);
                let follower = Arc::clone(sim);
                let moved: crate::fleet::dns::OnMoved = Arc::new(move |gateway, service, direct, old_ttl| {
                    follower.dns_moved(gateway, service, direct, old_ttl)
                });
                Arc::new(DnsFleet::new(fleet, Arc::new(Rfc2136::new(dns.clone(), direct)), Some(moved)))
            }
            _ => fleet,
        };
        if let Some(sim) = &sim {
            // Each simulated gateway answers on its own local port.
            let tasks = sim
                .serve_gateways()
                .await
                .map_err(|e| StartupError::Other(format!("starting the simulated gateways' listeners: {e}")))?;
            background.extend(tasks);
        }
        // Where gateways answer comes with the inventory (the simulator's listeners, or a
        // Deployment's annotations): registered now and again whenever the fleet changes.
        let guard = crate::probe::Guard::new(settings.probe_allow.clone());
        // The simulator's listeners are the console's own, on loopback; a Deployment's
        // annotated address is anyone's word, so loopback there needs --probe-allow.
        let guard = if sim.is_some() { guard.own_addresses_on_this_host() } else { guard };
        let probes = Arc::new(crate::probe::Probes::new(guard));
        if let Ok(inventory) = fleet.inventory().await {
            probes.sync(&inventory);
        }
        {
            let (fleet, probes) = (fleet.clone(), probes.clone());
            let mut updates = fleet.updates();
            background.push(tokio::spawn(async move {
                while updates.changed().await.is_ok() {
                    if let Ok(inventory) = fleet.inventory().await {
                        probes.sync(&inventory);
                    }
                }
            }));
        }
        if settings.synthetic_interval_s > 0 {
            let every = std::time::Duration::from_secs(settings.synthetic_interval_s);
            // With PostgreSQL the leader checks and every replica shows its results.
            let shared = (dialect == db::Dialect::Postgres).then(|| crate::probe::Shared {
                db: db.clone(),
                replicas: replicas.clone(),
                keep: every * crate::probe::HISTORY_MAX as u32,
            });
            background.push(probes.spawn_checks(every, shared));
        }
        let health = Arc::new(HealthService::new(fleet.clone(), metrics));
        health.attach_probes(probes.clone());
        let (key, checkpoint_file) = audit_key(
            &settings.database_url,
            settings.audit_key_file.as_deref(),
            settings.audit_checkpoint_file.as_deref(),
        )?;
        let ledger = Ledger::new(db.clone(), dialect)
            .with_bus(bus.clone())
            .with_refusal_window(settings.limits.refusal_window)
            .seal(key, checkpoint_file)
            .await
            .map_err(|e| StartupError::Other(format!("opening the audit ledger failed: {e:?}")))?;
        let ledger = Arc::new(ledger);
        background.push(ledger.spawn_refusal_flusher());
        if let Some(checkpoint) = ledger.checkpointer() {
            checkpoint.log();
            background.push(checkpoint.spawn(crate::audit::checkpoint::LOG_EVERY));
        }
        let engine = Arc::new(
            Engine::new(db.clone(), bus.clone(), ledger.clone(), fleet, health.clone(), settings.max_replicas)
                .with_replica(replicas.clone())
                .with_probes(probes.clone())
                .with_approvals(settings.approvals.0.clone(), settings.approvals.1),
        );
        // Settle any action a crash left between its intent and its outcome, before
        // anyone can start a new one.
        let reconciled = engine
            .reconcile()
            .await
            .map_err(|e| StartupError::Other(format!("reconciling the audit ledger failed: {e:?}")))?;
        if reconciled > 0 {
            tracing::warn!(reconciled, "settled actions interrupted by a previous stop");
        }
        background.push(engine.spawn_ttl_reverter());
        background.push(engine.spawn_orphan_settler());
        let (live, hub) = health.spawn_live_hub();
        background.push(hub);

        let dummy_hash = auth::password::hash("not a real password".into())
            .await
            .map_err(|e| StartupError::Other(format!("{e:?}")))?;
        let leptos = LeptosOptions::builder()
            .output_name(crate::http::assets::main_name(
                std::path::Path::new(&settings.site_root).join("pkg").as_path(),
            ))
            .site_root(settings.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(settings.listen)
            .env(Env::PROD)
            .build();
        let fleet_info = match settings.fleet {
            FleetKind::Sim => app::dto::FleetInfo {
                kind: "sim".into(),
                scenario: Some(settings.sim.scenario.as_str().into()),
                briefing: Some(settings.sim.scenario.briefing().into()),
                problem: None,
                replica: String::new(),
                replicas: 1,
            },
            FleetKind::Kube => app::dto::FleetInfo {
                kind: "kube".into(),
                scenario: None,
                briefing: None,
                problem: None,
                replica: String::new(),
                replicas: 1,
            },
        };
        let incidents = {
            let incidents = crate::incidents::Incidents::new(db.clone(), ledger.clone(), bus.clone(), health.clone());
            Arc::new(match settings.fleet {
                FleetKind::Sim => incidents.with_scenario(settings.sim.scenario),
                FleetKind::Kube => incidents,
            })
        };
        {
            let replicas = replicas.clone();
            background.push(incidents.spawn_status_watch(move || replicas.is_leader(), live.clone()));
        }
        let (open_approvals, watch) = crate::actions::approval::spawn_open_watch(db.clone(), bus.clone());
        background.push(watch);
        let oidc = match &settings.oidc {
            Some(o) => Some(crate::auth::oidc::Oidc::new(o.clone()).map_err(StartupError::Config)?),
            None => None,
        };
        let state = AppState {
            oidc,
            local_accounts: settings.local_accounts,
            break_glass_admin: Arc::from(settings.break_glass_admin.as_str()),
            metrics_token: settings.metrics_token.clone().map(Arc::from),
            open_approvals,
            fleet_info,
            db: db.clone(),
            dialect,
            health,
            ledger,
            engine,
            incidents,
            sim,
            logs,
            probes,
            bus,
            stopping,
            throttle: throttle.clone(),
            verifies: Arc::new(crate::auth::throttle::VerifyGate::new(
                settings.limits.sign_ins_at_once,
                settings.limits.sign_ins_queued,
            )),
            trusted_proxies: settings.trusted_proxies.clone().into(),
            caps: Arc::new(crate::limits::Caps::new(settings.limits.clone())),
            dummy_hash: dummy_hash.into(),
            live,
            leptos,
            replicas: replicas.clone(),
        };

        let store = DbSessionStore::new(db);
        background.push(tokio::spawn(async move {
            // Expired sessions are already refused on load; this only reclaims space.
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                every.tick().await;
                if !replicas.is_leader() {
                    continue;
                }
                if let Err(e) = store.delete_expired().await {
                    tracing::warn!(error = %e, "deleting expired sessions failed");
                }
            }
        }));
        let router = crate::http::router(state.clone(), settings.secure_cookies);

        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
        Ok(Application { listener, router, state, first_admin, background, replica_task })
    }

    /// Handles to every background task, this replica's heartbeat included (tests abort
    /// them to stand for a process that is killed).
    pub fn abort_handles(&self) -> Vec<tokio::task::AbortHandle> {
        self.background.iter().chain([&self.replica_task]).map(|t| t.abort_handle()).collect()
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops background work.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Application { listener, router, background, state, replica_task, .. } = self;
        let stopping = state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            // Event streams never end by themselves: end them, or the stop waits forever.
            stopping.send_replace(true);
        };
        let result = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
        // Repeated refusals still being counted get their summary entries.
        if let Err(e) = state.ledger.flush_refusals(true).await {
            tracing::error!(error = ?e, "could not summarize the last refusals");
        }
        if let Some(checkpoint) = state.ledger.checkpointer()
            && let Err(e) = checkpoint.flush()
        {
            tracing::error!(error = %e, "could not write the audit checkpoint");
        }
        for task in background {
            task.abort();
        }
        // It ended leadership when the stop began; give its unregistering a moment.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), replica_task).await;
        result
    }
}
