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
        #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
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

/// `gatewarden serve` flags; each has an environment variable too.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GATEWARDEN_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
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
    /// Gateway pods whose logs `--fleet kube` follows at once (kubectl's default is 5).
    #[arg(long, env = "GATEWARDEN_MAX_LOG_STREAMS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
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
