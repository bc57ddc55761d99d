//! Builds the application from settings: database, backends, services, background work,
//! router. It only wires; each part is made by its own module.

mod backends;
mod settings;

pub use settings::{
    InjectedClient, Settings, audit_key, default_admin_password_file, default_checkpoint_file, load_queries,
};

use crate::accounts::store::{self as users, FirstAdmin};
use crate::actions::{Engine, ORPHANS_EVERY};
use crate::audit::Ledger;
use crate::auth::shared_throttle::Throttle;
use crate::auth::store::DbSessionStore;
use crate::bus::Bus;
use crate::chores::Chore;
use crate::config::FleetKind;
use crate::db::{self, Db, DbSetupError, Dialect};
use crate::health::HealthService;
use crate::replicas::Replicas;
use crate::state::AppState;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_sessions::ExpiredDeletion;

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
    /// Opens the database, starts the backends and the background work, binds the
    /// listener. This only wires: each part is built by its own module.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let db = db::connect(&settings.database_url).await?;
        let first_admin = users::ensure_first_admin(&db, settings.admin_password.clone())
            .await
            .map_err(|e| StartupError::Other(format!("creating the first admin failed: {e:?}")))?;
        let dialect = db::dialect(&settings.database_url).expect("checked in Settings");
        // Registered before anything else starts: the simulator refuses a second process.
        let replicas = Replicas::join(db.clone(), dialect, &settings.database_url, settings.fleet.name())
            .await
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let stopping = Arc::new(tokio::sync::watch::channel(false).0);
        let bus = crate::bus::Bus::new(db.clone(), dialect);
        let throttle = Arc::new(crate::auth::shared_throttle::Throttle::new(&db, dialect, Some(replicas.clone())));
        let mut background = Vec::new();
        background.extend(bus.spawn_listener(&settings.database_url, stopping.subscribe()));
        let replica_task = replicas.spawn(stopping.subscribe());
        background.extend(settings.memory_trim.and_then(crate::memory::spawn_trimmer));
        let logs = Arc::new(crate::logs::LogStore::new(settings.log_retention));
        let backends = backends::start(&settings, &logs, (&db, dialect), &replicas, &mut background).await?;
        let health = Arc::new(HealthService::new(backends.fleet.clone(), backends.metrics));
        health.attach_probes(backends.probes.clone());
        let ledger = Arc::new(ledger(&settings, &db, dialect, &bus).await?);
        background.push(ledger.spawn_refusal_flusher());
        if let Some(checkpoint) = ledger.checkpointer() {
            checkpoint.log();
            background.push(checkpoint.spawn(crate::audit::checkpoint::LOG_EVERY));
        }
        let engine = Arc::new(
            Engine::new(db.clone(), bus.clone(), ledger.clone(), backends.fleet, health.clone(), settings.max_replicas)
                .with_replica(replicas.clone())
                .with_probes(backends.probes.clone())
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
        let (live, hub) = health.spawn_live_hub();
        background.push(hub);
        let incidents = crate::incidents::Incidents::new(db.clone(), ledger.clone(), bus.clone(), health.clone());
        let incidents = Arc::new(match settings.fleet {
            FleetKind::Sim => incidents.with_scenario(settings.sim.scenario),
            FleetKind::Kube => incidents,
        });
        let leads = {
            let replicas = replicas.clone();
            move || replicas.is_leader()
        };
        background.push(incidents.spawn_status_watch(leads.clone(), live.clone()));
        let (open_approvals, watch) = crate::actions::approval::spawn_open_watch(db.clone(), bus.clone());
        background.push(watch);
        let table = chores(&bus, &throttle, &db, &engine);
        background.push(crate::chores::spawn(table, leads, health.updates()));

        let oidc = match &settings.oidc {
            Some(o) => Some(crate::auth::oidc::Oidc::new(o.clone()).map_err(StartupError::Config)?),
            None => None,
        };
        let policy = crate::accounts::Policy {
            local_accounts: settings.local_accounts,
            break_glass_admin: settings.break_glass_admin.clone(),
            oidc,
            sign_ins: (settings.limits.sign_ins_at_once, settings.limits.sign_ins_queued),
        };
        let accounts = crate::accounts::Accounts::new(db.clone(), ledger.clone(), throttle.clone(), policy)
            .await
            .map_err(|e| StartupError::Other(format!("{e:?}")))?;
        let state = AppState {
            metrics_token: settings.metrics_token.clone().map(Arc::from),
            open_approvals,
            fleet_info: settings.fleet_info(),
            db,
            dialect,
            accounts: Arc::new(accounts),
            health,
            ledger,
            engine,
            incidents,
            sim: backends.sim,
            logs,
            probes: backends.probes,
            bus,
            stopping,
            trusted_proxies: settings.trusted_proxies.clone().into(),
            caps: Arc::new(crate::limits::Caps::new(settings.limits.clone())),
            live,
            leptos: settings.leptos_options(),
            replicas,
        };
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

/// The audit ledger, sealed with the audit key (see [`audit_key`]).
async fn ledger(settings: &Settings, db: &Db, dialect: Dialect, bus: &Arc<Bus>) -> Result<Ledger, StartupError> {
    let (key, checkpoint_file) = audit_key(
        &settings.database_url,
        settings.audit_key_file.as_deref(),
        settings.audit_checkpoint_file.as_deref(),
    )?;
    Ledger::new(db.clone(), dialect)
        .with_bus(bus.clone())
        .with_refusal_window(settings.limits.refusal_window)
        .seal(key, checkpoint_file)
        .await
        .map_err(|e| StartupError::Other(format!("opening the audit ledger failed: {e:?}")))
}

/// Every leader-only chore: what it does and how often. The one loop of
/// [`crate::chores::spawn`] runs them while this replica leads.
fn chores(bus: &Arc<Bus>, throttle: &Arc<Throttle>, db: &Db, engine: &Arc<Engine>) -> Vec<Chore> {
    use std::time::Duration;
    let minute = Duration::from_secs(60);
    let (bus, throttle, sessions) = (bus.clone(), throttle.clone(), DbSessionStore::new(db.clone()));
    let (reverts, orphans, lapsed, intents) = (engine.clone(), engine.clone(), engine.clone(), engine.clone());
    vec![
        // The outbox keeps its last 15 minutes (what a reconnecting stream can ask for).
        Chore::new("prune the event outbox", minute, move || {
            let bus = bus.clone();
            async move { bus.prune().await.map(drop) }
        }),
        Chore::new("sweep the shared sign-in counters", minute, move || {
            let throttle = throttle.clone();
            async move { throttle.sweep().await.map(drop) }
        }),
        // Expired sessions are already refused on load; this only reclaims space.
        Chore::new("delete expired sessions", Duration::from_secs(600), move || {
            let sessions = sessions.clone();
            async move { sessions.delete_expired().await.map_err(|e| crate::error::AppError::Internal(e.to_string())) }
        }),
        // On every fleet change, and at least every second: a quiet cluster sends no
        // watch events, and a change must still go back when its time is up. (The claim
        // in the database keeps a revert single even across a change of leader.)
        Chore::new("revert expired changes", Duration::from_secs(1), move || {
            let engine = reverts.clone();
            async move { engine.revert_expired().await }
        })
        .on_fleet_change(),
        Chore::new("take over stopped replicas' rollouts", ORPHANS_EVERY, move || {
            let engine = orphans.clone();
            async move { engine.adopt_orphans().await.map(drop) }
        }),
        Chore::new("expire lapsed approval requests", ORPHANS_EVERY, move || {
            let engine = lapsed.clone();
            async move { engine.expire_approvals().await.map(drop) }
        }),
        Chore::new("settle stopped replicas' intents", ORPHANS_EVERY, move || {
            let engine = intents.clone();
            async move {
                let settled = engine.reconcile().await?;
                if settled > 0 {
                    tracing::warn!(settled, "settled actions of a replica that stopped mid-action");
                }
                Ok(())
            }
        }),
    ]
}
