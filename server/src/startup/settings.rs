//! Settings: every flag and environment variable resolved and checked once, before
//! anything starts (a bad one is a one-line error and exit code 2).

use super::StartupError;
use crate::config::{FleetKind, ServeArgs};
use crate::db;
use crate::fleet::cluster::KubeSettings;
use crate::fleet::prometheus::Queries;
use crate::fleet::sim::SimConfig;
use std::net::SocketAddr;

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
    /// Which backend, and the training scenario (the replica fields are filled per request).
    pub fn fleet_info(&self) -> app::dto::FleetInfo {
        let sim = self.fleet == FleetKind::Sim;
        app::dto::FleetInfo {
            kind: self.fleet.name().into(),
            scenario: sim.then(|| self.sim.scenario.as_str().into()),
            briefing: sim.then(|| self.sim.scenario.briefing().into()),
            problem: None,
            replica: String::new(),
            replicas: 1,
        }
    }

    /// Where the compiled site is, and the first download's content-named file.
    pub fn leptos_options(&self) -> leptos::config::LeptosOptions {
        leptos::config::LeptosOptions::builder()
            .output_name(crate::http::assets::main_name(std::path::Path::new(&self.site_root).join("pkg").as_path()))
            .site_root(self.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(self.listen)
            .env(leptos::config::Env::PROD)
            .build()
    }

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
            (Some(_), Some(_)) if args.dns_tsig_key_file.is_none() && !args.dns_unsigned_updates => {
                return Err(StartupError::Config(
                    "--dns-server without --dns-tsig-key-file would send unsigned updates: give the key, or \
                     --dns-unsigned-updates if the server trusts the network instead"
                        .into(),
                ));
            }
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
            crate::config::DnsProvider::ExternalDns
                if args.external_dns_owner_id.is_none() && !args.external_dns_any_owner =>
            {
                return Err(StartupError::Config(
                    "--dns-provider external-dns needs --external-dns-owner-id (external-dns' --txt-owner-id), so \
                     records another owner manages are left alone; or --external-dns-any-owner"
                        .into(),
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
