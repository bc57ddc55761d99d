//! The backends a console watches and drives: the fleet (the simulator, or a cluster),
//! its metrics, the DNS records a bypass moves, and the probes that know where gateways
//! answer. Each background task they need joins `background`.

use super::{InjectedClient, Settings, StartupError};
use crate::config::FleetKind;
use crate::db::{Db, Dialect};
use crate::fleet::cluster::{self, KubeFleet, dnsendpoint};
use crate::fleet::dns::{DnsFleet, Rfc2136};
use crate::fleet::prometheus::{NoMetrics, Prometheus};
use crate::fleet::sim::SimFleet;
use crate::fleet::{Fleet, Metrics};
use crate::logs::LogStore;
use crate::probe::Probes;
use crate::replicas::Replicas;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The started backends.
pub(super) struct Backends {
    /// Gateways: inventory, state, changes.
    pub fleet: Arc<dyn Fleet>,
    /// Their numbers.
    pub metrics: Arc<dyn Metrics>,
    /// The simulator, when that is the fleet.
    pub sim: Option<Arc<SimFleet>>,
    /// Endpoint probes and synthetic checks.
    pub probes: Arc<Probes>,
}

/// Starts the fleet, its metrics, DNS and probes for `settings`.
pub(super) async fn start(
    settings: &Settings,
    logs: &Arc<LogStore>,
    (db, dialect): (&Db, Dialect),
    replicas: &Arc<Replicas>,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<Backends, StartupError> {
    let (fleet, metrics, sim, kube_client) = fleet(settings, logs, background).await?;
    let fleet = with_dns(settings, fleet, sim.as_ref(), kube_client, background).await?;
    if let Some(sim) = &sim {
        // Each simulated gateway answers on its own local port.
        let tasks = sim
            .serve_gateways()
            .await
            .map_err(|e| StartupError::Other(format!("starting the simulated gateways' listeners: {e}")))?;
        background.extend(tasks);
    }
    let probes = probes(settings, &fleet, sim.is_some(), (db, dialect), replicas, background).await;
    Ok(Backends { fleet, metrics, sim, probes })
}

type Started = (Arc<dyn Fleet>, Arc<dyn Metrics>, Option<Arc<SimFleet>>, Option<kube::Client>);

/// The simulator (with its clock), or a cluster (with its watches, its log feed and
/// Prometheus).
async fn fleet(
    settings: &Settings,
    logs: &Arc<LogStore>,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<Started, StartupError> {
    match settings.fleet {
        FleetKind::Sim => {
            let sim = SimFleet::new(settings.sim.clone());
            sim.attach_logs(logs.clone());
            if let Some(speed) = settings.sim_speed {
                background.push(sim.spawn_clock(speed));
            }
            Ok((sim.clone(), sim.clone(), Some(sim), None))
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
            let (fleet, tasks) = KubeFleet::start(client.clone(), &namespaces, &settings.kube.selector);
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
            Ok((fleet, metrics, None, Some(client)))
        }
    }
}

/// With `--dns-server` (or external-dns), each service's public record comes with its
/// gateway's state and a DNS bypass changes it (in the simulator, each service's direct
/// address is its own).
async fn with_dns(
    settings: &Settings,
    fleet: Arc<dyn Fleet>,
    sim: Option<&Arc<SimFleet>>,
    kube_client: Option<kube::Client>,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<Arc<dyn Fleet>, StartupError> {
    Ok(match (&settings.dns, sim, kube_client, &settings.external_dns) {
        // In a cluster, records and direct targets come from the downstream Services'
        // annotations; the record lives on the zone's primary or in a DNSEndpoint.
        (Some(dns), None, Some(client), _) => {
            let direct = dnsendpoint::service_direct_targets(client);
            Arc::new(DnsFleet::new(fleet, Arc::new(Rfc2136::new(dns.clone(), direct)), None))
        }
        (None, None, Some(client), Some((owner, deadline))) => {
            let records = dnsendpoint::ExternalDns::new(client, owner.clone(), *deadline);
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
    })
}

/// Probes that know where gateways answer (registered now and whenever the fleet
/// changes), and the synthetic checks (with PostgreSQL the leader checks and every
/// replica shows its results).
async fn probes(
    settings: &Settings,
    fleet: &Arc<dyn Fleet>,
    simulated: bool,
    (db, dialect): (&Db, Dialect),
    replicas: &Arc<Replicas>,
    background: &mut Vec<JoinHandle<()>>,
) -> Arc<Probes> {
    let guard = crate::probe::Guard::new(settings.probe_allow.clone());
    // The simulator's listeners are the console's own, on loopback; a Deployment's
    // annotated address is anyone's word, so loopback there needs --probe-allow.
    let guard = if simulated { guard.own_addresses_on_this_host() } else { guard };
    let probes = Arc::new(Probes::new(guard));
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
        let shared = (dialect == Dialect::Postgres).then(|| crate::probe::Shared {
            db: db.clone(),
            replicas: replicas.clone(),
            keep: every * crate::probe::HISTORY_MAX as u32,
        });
        background.push(probes.spawn_checks(every, shared));
    }
    probes
}
