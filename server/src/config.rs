//! Command line and environment.

use crate::fleet::sim::Scenario;
use app::dto::Role;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;

/// Default database: a SQLite file in the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:gatewarden.db";

/// Gatewarden: an incident console for API gateways.
#[derive(Debug, Parser)]
#[command(name = "gatewarden", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without one, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, also accepted without the subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the console (the default).
    Serve(Box<ServeArgs>),
    /// Manage console accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Work with the audit ledger.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `gatewarden audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify an exported ledger (`/api/v1/audit/export?format=jsonl`) offline: every
    /// link and hash, every signature with the key, and, given the checkpoint file, that
    /// nothing was cut from its end. Exit status 0 when intact, 1 when not.
    Verify {
        /// The JSONL export ("-" for standard input).
        file: std::path::PathBuf,
        /// The console's audit key file.
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
        /// The console's checkpoint file.
        #[arg(long)]
        checkpoint_file: Option<std::path::PathBuf>,
    },
}

/// `gatewarden user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; the password is read from standard input.
    Add {
        /// Account name.
        name: String,
        /// viewer, responder or admin.
        #[arg(long)]
        role: Role,
        /// Database to write to.
        #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
        database_url: String,
        /// The console's audit key (the account's creation is on the record, signed like
        /// everything else); default as for `serve`.
        #[arg(long, env = "GATEWARDEN_AUDIT_KEY_FILE")]
        audit_key_file: Option<std::path::PathBuf>,
    },
}

/// Where gateway state comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FleetKind {
    /// The built-in simulated fleet.
    Sim,
    /// A Kubernetes cluster (with Prometheus for metrics).
    Kube,
}

impl FleetKind {
    /// The name `--fleet` takes, the API reports and each replica registers under.
    pub fn name(self) -> &'static str {
        match self {
            FleetKind::Sim => "sim",
            FleetKind::Kube => "kube",
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: one line of text each.
    Text,
    /// For log pipelines: one JSON object a line, fields as keys.
    Json,
}

/// Where services' public records live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DnsProvider {
    /// The zone's primary, changed with RFC 2136 UPDATEs signed with TSIG (`--dns-server`).
    Rfc2136,
    /// external-dns `DNSEndpoint`s in the cluster (`--fleet kube`).
    ExternalDns,
}

/// `gatewarden serve` flags; each has an environment variable too.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GATEWARDEN_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Gateway backend.
    #[arg(long, env = "GATEWARDEN_FLEET", value_enum, default_value = "sim")]
    pub fleet: FleetKind,
    /// Incident the simulated fleet starts in: healthy, bad-deploy, traffic-surge,
    /// stuck-instances, downstream-outage, retry-storm, auth-failure.
    #[arg(long, env = "GATEWARDEN_SCENARIO", default_value = "healthy")]
    pub scenario: Scenario,
    /// Seed of the simulated fleet: the same seed gives the same numbers.
    #[arg(long, env = "GATEWARDEN_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Simulated seconds per real second (0.1 to 100).
    #[arg(long, env = "GATEWARDEN_SIM_SPEED", default_value_t = 1.0, value_parser = parse_speed)]
    pub sim_speed: f64,
    /// Largest replica count `scale` may set.
    #[arg(long, env = "GATEWARDEN_MAX_REPLICAS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_replicas: u32,
    /// kubeconfig context for `--fleet kube` (default: the current context, or the
    /// in-cluster service account when running in a pod).
    #[arg(long, env = "GATEWARDEN_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Namespace to watch for gateways (repeatable; default: the context's namespace).
    #[arg(long = "namespace", env = "GATEWARDEN_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Label selector of the gateway Deployments and their pods.
    #[arg(long, env = "GATEWARDEN_GATEWAY_SELECTOR", default_value = crate::fleet::cluster::DEFAULT_SELECTOR)]
    pub gateway_selector: String,
    /// Prometheus to read gateway metrics from with `--fleet kube`, e.g. http://prometheus:9090.
    #[arg(long, env = "GATEWARDEN_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Metric names to query: ingress-nginx, envoy, kong or gatewarden (the simulator's).
    #[arg(long, env = "GATEWARDEN_PROMETHEUS_FLAVOR", default_value = "ingress-nginx")]
    pub prometheus_flavor: String,
    /// JSON file overriding fields of the flavor's queries (see README).
    #[arg(long, env = "GATEWARDEN_PROMETHEUS_QUERIES")]
    pub prometheus_queries: Option<std::path::PathBuf>,
    /// Most gateway pods whose logs `--fleet kube` follows at once: every pod of every
    /// gateway up to this ceiling (shared out across gateways past it); 0 follows none.
    #[arg(long, env = "GATEWARDEN_MAX_LOG_STREAMS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_log_streams: u32,
    /// Log lines kept in memory, megabytes (the oldest go first).
    #[arg(long, env = "GATEWARDEN_LOG_RETENTION_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub log_retention_mb: u64,
    /// Age of the oldest log line kept, hours.
    #[arg(long, env = "GATEWARDEN_LOG_RETENTION_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub log_retention_hours: u64,
    /// Hosts that `POST /api/v1/probe` may request by URL: `api.example.com`,
    /// `*.example.com`, `host:port`, or an exact `ip:port` (repeat, or separate with commas).
    /// Names must resolve to public addresses; gateways' own addresses are always allowed.
    #[arg(long = "probe-allow", env = "GATEWARDEN_PROBE_ALLOW", value_delimiter = ',')]
    pub probe_allow: Vec<String>,
    /// Seconds between synthetic checks of each gateway's key paths (0: none).
    #[arg(long, env = "GATEWARDEN_SYNTHETIC_INTERVAL_S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub synthetic_interval_s: u64,
    /// A proxy (address or CIDR) whose `X-Forwarded-For` names the client, for throttling
    /// and the audit trail (repeat, or separate with commas). Only from these peers is the
    /// header read; the client is its right-most hop that is not one of them.
    #[arg(long = "trusted-proxy", env = "GATEWARDEN_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Password checks running at once (each holds about 19 MiB while it runs).
    #[arg(long, env = "GATEWARDEN_MAX_CONCURRENT_SIGN_INS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub max_concurrent_sign_ins: u64,
    /// Open event streams and log tails, all users together.
    #[arg(long, env = "GATEWARDEN_MAX_STREAMS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams: u64,
    /// Open event streams and log tails of one user (all their sessions).
    #[arg(long, env = "GATEWARDEN_MAX_STREAMS_PER_USER", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_streams_per_user: u64,
    /// Probes in flight, all users together.
    #[arg(long, env = "GATEWARDEN_MAX_PROBES", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_probes: u64,
    /// Changes to incidents (declaring, updates, notes, pins, stars, runbook ticks) one
    /// user may make in a minute.
    #[arg(long, env = "GATEWARDEN_MAX_INCIDENT_WRITES_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_incident_writes_per_minute: u64,
    /// Probes in flight of one user.
    #[arg(long, env = "GATEWARDEN_MAX_PROBES_PER_USER", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_probes_per_user: u64,
    /// Log searches running, all users together.
    #[arg(long, env = "GATEWARDEN_MAX_SEARCHES", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_searches: u64,
    /// Log searches running of one user.
    #[arg(long, env = "GATEWARDEN_MAX_SEARCHES_PER_USER", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_searches_per_user: u64,
    /// Audit chain verifications running, all users together (one per user).
    #[arg(long, env = "GATEWARDEN_MAX_VERIFIES", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_verifies: u64,
    /// Kilobytes read from one pod's log per request (`limitBytes`).
    #[arg(long, env = "GATEWARDEN_POD_LOG_KB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub pod_log_kb: u64,
    /// Kilobytes read from all pods' logs per request.
    #[arg(long, env = "GATEWARDEN_POD_LOG_TOTAL_KB", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub pod_log_total_kb: u64,
    /// Where a generated first-admin password is written (readable only by the owner) when
    /// no terminal is attached: default beside a SQLite database, else
    /// ./gatewarden-admin-password. It is never written to the log.
    #[arg(long, env = "GATEWARDEN_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<std::path::PathBuf>,
    /// File holding the key that signs audit entries (at least 32 bytes; the same on every
    /// replica; in Kubernetes a Secret). Default with SQLite: created beside the database
    /// on first start. Required with PostgreSQL. Keep it: without it, the ledger's
    /// signatures cannot be checked.
    #[arg(long, env = "GATEWARDEN_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<std::path::PathBuf>,
    /// File where the console keeps its signed audit checkpoint (the newest entry it
    /// appended), to notice a ledger cut short. Default: beside the key.
    #[arg(long, env = "GATEWARDEN_AUDIT_CHECKPOINT_FILE")]
    pub audit_checkpoint_file: Option<std::path::PathBuf>,
    /// Seconds between two returns of freed memory to the system (glibc keeps it after a
    /// burst otherwise); 0: never.
    #[arg(long, env = "GATEWARDEN_MEMORY_TRIM_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub memory_trim_seconds: u64,
    /// Actions that need a second person's approval: restart, scale, scale-down (a scale
    /// to below half the current count), rollback, rate-limit, timeouts,
    /// circuit-breaker, bypass. An empty value turns approvals off.
    #[arg(long, env = "GATEWARDEN_REQUIRE_APPROVAL", value_delimiter = ',', default_value = "rollback,bypass")]
    pub require_approval: Vec<String>,
    /// Seconds a request for approval waits before it lapses.
    #[arg(long, env = "GATEWARDEN_APPROVAL_EXPIRY_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub approval_expiry_seconds: u64,
    /// Where a DNS bypass changes services' records: `rfc2136` (on `--dns-server`) or
    /// `external-dns` (the DNSEndpoint a Service's `gatewarden.io/dns-endpoint` names).
    #[arg(long, env = "GATEWARDEN_DNS_PROVIDER", value_enum, default_value = "rfc2136")]
    pub dns_provider: DnsProvider,
    /// external-dns' `--txt-owner-id`: a DNSEndpoint endpoint labelled with another
    /// `owner` is left alone.
    #[arg(long, env = "GATEWARDEN_EXTERNAL_DNS_OWNER_ID")]
    pub external_dns_owner_id: Option<String>,
    /// The primary DNS server of `--dns-zone` (ADDR:PORT), which accepts RFC 2136 updates:
    /// `bypass` with `method: dns` changes services' records there.
    #[arg(long, env = "GATEWARDEN_DNS_SERVER", requires = "dns_zone")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// The zone whose `<service>.<zone>` records a DNS bypass changes.
    #[arg(long, env = "GATEWARDEN_DNS_ZONE", requires = "dns_server")]
    pub dns_zone: Option<String>,
    /// The TSIG key that signs updates, as `tsig-keygen` writes it (BIND's `key` statement).
    #[arg(long, env = "GATEWARDEN_DNS_TSIG_KEY_FILE", requires = "dns_server")]
    pub dns_tsig_key_file: Option<std::path::PathBuf>,
    /// Send unsigned updates to `--dns-server` (a server that trusts the network instead
    /// of a key). Without a TSIG key the console refuses to start unless this is given.
    #[arg(long, env = "GATEWARDEN_DNS_UNSIGNED_UPDATES", requires = "dns_server")]
    pub dns_unsigned_updates: bool,
    /// With `--dns-provider external-dns` and no `--external-dns-owner-id`: change
    /// DNSEndpoint endpoints whatever their owner (refused at start-up otherwise).
    #[arg(long, env = "GATEWARDEN_EXTERNAL_DNS_ANY_OWNER")]
    pub external_dns_any_owner: bool,
    /// A name server of the zone (ADDR:PORT) to ask after a DNS change until it serves the
    /// new record; by default, those the zone's NS records name, on --dns-server's port.
    /// Repeatable.
    #[arg(long, env = "GATEWARDEN_DNS_CHECK_SERVER", value_delimiter = ',', requires = "dns_server")]
    pub dns_check_server: Vec<std::net::SocketAddr>,
    /// A recursive resolver (ADDR:PORT) asked too after a DNS change, besides the zone's
    /// name servers: the change is served everywhere once it answers with the new record
    /// (after its cached copy of the old one expires). Repeatable.
    #[arg(long, env = "GATEWARDEN_DNS_CHECK_RESOLVER", value_delimiter = ',', requires = "dns_server")]
    pub dns_check_resolver: Vec<std::net::SocketAddr>,
    /// Seconds a DNS change may take until every server asked serves it; after that its
    /// action fails (the record stays changed, and undo puts it back).
    #[arg(long, env = "GATEWARDEN_DNS_PROPAGATION_DEADLINE", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub dns_propagation_deadline: u64,
    /// File holding a bearer token that `GET /metrics` then requires
    /// (`Authorization: Bearer <token>`); without it the console's metrics are open, like
    /// any scrape target.
    #[arg(long, env = "GATEWARDEN_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<std::path::PathBuf>,
    /// Single sign-on: the OpenID Connect provider's issuer URL (discovery is read from
    /// `<issuer>/.well-known/openid-configuration`). Needs `--oidc-client-id` and
    /// `--public-url` (the provider sends people back to `<public URL>/auth/oidc/callback`).
    #[arg(long, env = "GATEWARDEN_OIDC_ISSUER", requires_all = ["oidc_client_id", "public_url"])]
    pub oidc_issuer: Option<String>,
    /// This console's client id at the provider.
    #[arg(long, env = "GATEWARDEN_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// File holding the client secret (none: a public client, PKCE only).
    #[arg(long, env = "GATEWARDEN_OIDC_CLIENT_SECRET_FILE", requires = "oidc_issuer")]
    pub oidc_client_secret_file: Option<std::path::PathBuf>,
    /// Scopes asked for, space-separated.
    #[arg(long, env = "GATEWARDEN_OIDC_SCOPES", default_value = "openid profile email groups")]
    pub oidc_scopes: String,
    /// The ID-token claim that lists a person's groups.
    #[arg(long, env = "GATEWARDEN_OIDC_ROLE_CLAIM", default_value = "groups")]
    pub oidc_role_claim: String,
    /// `GROUP=ROLE`: people in GROUP get ROLE (the highest of their groups' roles).
    /// Repeatable; re-evaluated at each sign-in.
    #[arg(long, env = "GATEWARDEN_OIDC_ROLE_MAP", value_delimiter = ',')]
    pub oidc_role_map: Vec<String>,
    /// The role of someone none of whose groups is mapped; without it they are refused
    /// (with a page that says why, and on the record).
    #[arg(long, env = "GATEWARDEN_OIDC_DEFAULT_ROLE")]
    pub oidc_default_role: Option<app::dto::Role>,
    /// The provider's name on the sign-in button ("Sign in with NAME").
    #[arg(long, env = "GATEWARDEN_OIDC_PROVIDER_NAME", default_value = "single sign-on")]
    pub oidc_provider_name: String,
    /// Whether accounts sign in with a password here. Off (with single sign-on), only
    /// the break-glass admin still may.
    #[arg(long, env = "GATEWARDEN_LOCAL_ACCOUNTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub local_accounts: bool,
    /// The local account that may sign in with its password when `--local-accounts=false`
    /// (for when the identity provider is down).
    #[arg(long, env = "GATEWARDEN_BREAK_GLASS_ADMIN", default_value = "admin")]
    pub break_glass_admin: String,
    /// `text`, or `json` for log pipelines (every request's line then carries its id,
    /// user, route, status and latency as keys).
    #[arg(long, env = "GATEWARDEN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Public URL; an https URL marks session cookies Secure.
    #[arg(long, env = "GATEWARDEN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Directory of the compiled site (JS, wasm, CSS), as cargo-leptos writes it.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.1..=100.0).contains(&v) { Ok(v) } else { Err(format!("{v} is outside 0.1..=100")) }
}
