//! A fleet whose services' public DNS records the console also manages (`--dns-server`,
//! issue 17): every call goes to the fleet it wraps, except that a gateway's state also
//! carries each service's record as the zone's primary serves it, and a
//! [`Change::DnsRecord`] is made on the DNS server (a compare-and-swap, see `crate::dns`).

use super::{
    Change, Fleet, FleetError, FleetResult, GatewayInventory, GatewayState, Propagation, RolloutState, ServiceRecord,
};
use crate::dns::{Dns, DnsError, RecordSet};
use futures::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

/// A service's direct target: the RRset its clients get while it bypasses the gateway,
/// and the URL (on its public name) that must answer before they are sent there.
#[derive(Clone, Debug, PartialEq)]
pub struct Direct {
    /// The RRset.
    pub record: RecordSet,
    /// `http(s)://<public name>[:port]<health path>`, asked at the RRset's address.
    pub health: Option<String>,
}

/// Where a service's clients go while it bypasses the gateway, if it has such a place.
pub type DirectTargets = Arc<dyn Fn(&Dns, &str) -> Option<Direct> + Send + Sync>;

/// The simulator's direct addresses: each service answers on a loopback address of its
/// own, `127.0.2.N` (N: the service's place among every service name, sorted, from 1).
pub fn simulated_direct_addresses(services: Vec<String>) -> Vec<(String, std::net::IpAddr)> {
    let mut services = services;
    services.sort();
    services.dedup();
    services
        .into_iter()
        .take(254)
        .enumerate()
        .map(|(i, s)| (s, std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 2, i as u8 + 1))))
        .collect()
}

/// The simulator's direct targets: each service's own listener (`listening`, from
/// `SimFleet::serve_services` on [`simulated_direct_addresses`]), an A record with a 60 s
/// TTL, and its `/healthz` on the listener's port.
pub fn simulated_direct_targets(listening: Vec<(String, std::net::SocketAddr)>) -> DirectTargets {
    Arc::new(move |dns: &Dns, service: &str| {
        let (_, at) = listening.iter().find(|(s, _)| s == service)?;
        let name = dns.name_of(service);
        Some(Direct {
            health: Some(format!("http://{}:{}/healthz", name.trim_end_matches('.'), at.port())),
            record: RecordSet { name, rtype: "A".into(), ttl: 60, values: vec![at.ip().to_string()] },
        })
    })
}

/// Told after each record change: (gateway, service, towards the service itself, the
/// old record's TTL). The simulator moves its clients with it.
pub type OnMoved = Arc<dyn Fn(&str, &str, bool, u32) + Send + Sync>;

/// The wrapper.
pub struct DnsFleet {
    inner: Arc<dyn Fleet>,
    dns: Dns,
    direct: DirectTargets,
    moved: Option<OnMoved>,
}

impl DnsFleet {
    /// `inner`, with its services' records on `dns`; `moved` hears of every change made.
    pub fn new(inner: Arc<dyn Fleet>, dns: Dns, direct: DirectTargets, moved: Option<OnMoved>) -> Self {
        DnsFleet { inner, dns, direct, moved }
    }

    /// `state` with each service's record, read at once, all within [`READ_BUDGET`] (a
    /// DNS server that does not answer delays an action by that much, no more).
    async fn with_records(&self, mut state: GatewayState) -> GatewayState {
        let reads = state.services.iter().filter_map(|service| {
            let Direct { record: direct, health } = (self.direct)(&self.dns, service)?;
            Some(async move {
                let read = tokio::time::timeout(READ_BUDGET, self.dns.read(&direct.name)).await;
                let (current, problem) = match read {
                    Ok(Ok(current)) => (current, None),
                    Ok(Err(e)) => (None, Some(e.to_string())),
                    Err(_) => (None, Some(format!("the DNS server at {} did not answer within 2 s", self.dns.server))),
                };
                ServiceRecord { service: service.clone(), current, direct, health, problem }
            })
        });
        state.dns = futures::future::join_all(reads).await;
        state
    }
}

/// How long reading the services' records may take, in all.
pub const READ_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

fn fleet_error(e: DnsError) -> FleetError {
    match e {
        DnsError::Changed(m) => FleetError::Conflict(m),
        DnsError::Refused(m) => FleetError::Forbidden(m),
        DnsError::Invalid(m) => FleetError::Rejected(m),
        // Said as it is (a 502 with the sentence), not as "the fleet backend is unavailable".
        e @ DnsError::Unreachable(..) => FleetError::Rejected(e.to_string()),
    }
}

impl Fleet for DnsFleet {
    fn inventory(&self) -> BoxFuture<'_, FleetResult<Arc<Vec<GatewayInventory>>>> {
        self.inner.inventory()
    }
    fn updates(&self) -> watch::Receiver<u64> {
        self.inner.updates()
    }
    fn clock_s(&self) -> i64 {
        self.inner.clock_s()
    }
    fn state(&self, gateway: &str) -> BoxFuture<'_, FleetResult<GatewayState>> {
        let gateway = gateway.to_string();
        Box::pin(async move {
            let state = self.inner.state(&gateway).await?;
            Ok(self.with_records(state).await)
        })
    }
    fn apply<'a>(
        &'a self,
        gateway: &'a str,
        change: &'a Change,
        before: &'a GatewayState,
    ) -> BoxFuture<'a, FleetResult<GatewayState>> {
        Box::pin(async move {
            match change {
                Change::DnsRecord { service, from, to } => {
                    self.dns.swap(from, to).await.map_err(fleet_error)?;
                    if let Some(moved) = &self.moved {
                        let direct = (self.direct)(&self.dns, service).is_some_and(|d| d.record.values == to.values);
                        moved(gateway, service, direct, from.ttl);
                    }
                    self.state(gateway).await
                }
                other => {
                    // Nothing in DNS changed: the records read for `before` still hold.
                    let mut state = self.inner.apply(gateway, other, before).await?;
                    state.dns = before.dns.clone();
                    Ok(state)
                }
            }
        })
    }
    fn check<'a>(
        &'a self,
        gateway: &'a str,
        change: &'a Change,
        before: &'a GatewayState,
    ) -> BoxFuture<'a, FleetResult<()>> {
        match change {
            // The UPDATE's prerequisite is the check; there is no dry run in RFC 2136.
            Change::DnsRecord { .. } => Box::pin(async { Ok(()) }),
            other => self.inner.check(gateway, other, before),
        }
    }
    fn dependencies(&self) -> BoxFuture<'_, FleetResult<app::dto::DependencyGraph>> {
        self.inner.dependencies()
    }
    fn maps_traffic(&self) -> bool {
        self.inner.maps_traffic()
    }
    fn synced(&self, limit: std::time::Duration) -> BoxFuture<'_, ()> {
        self.inner.synced(limit)
    }
    fn listed(&self) -> bool {
        self.inner.listed()
    }
    fn problem(&self) -> Option<String> {
        self.inner.problem()
    }
    fn logs(
        &self,
        gateway: &str,
        tail: i64,
        since_seconds: Option<i64>,
    ) -> BoxFuture<'_, FleetResult<Vec<app::dto::PodLogLine>>> {
        self.inner.logs(gateway, tail, since_seconds)
    }
    fn events(&self, gateway: &str) -> Vec<app::dto::EventRow> {
        self.inner.events(gateway)
    }
    fn revision_times(&self, gateway: &str) -> Vec<(i64, u32, String)> {
        self.inner.revision_times(gateway)
    }
    fn ts_ms_of(&self, clock_s: i64) -> i64 {
        self.inner.ts_ms_of(clock_s)
    }
    fn rollout(&self, gateway: &str) -> BoxFuture<'_, FleetResult<RolloutState>> {
        self.inner.rollout(gateway)
    }
    fn service_impact(&self, gateway: &str, service: &str) -> Option<app::dto::ServiceImpact> {
        self.inner.service_impact(gateway, service)
    }
    fn bypasses(&self, gateway: &str) -> Vec<(String, &'static str)> {
        self.inner.bypasses(gateway)
    }
    fn propagation(&self, change: &Change) -> Option<tokio::sync::mpsc::UnboundedReceiver<Propagation>> {
        let Change::DnsRecord { from, to, .. } = change else {
            return self.inner.propagation(change);
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (dns, old_ttl, expected) = (self.dns.clone(), from.ttl, to.clone());
        tokio::spawn(async move { follow(&dns, old_ttl, &expected, tx).await });
        Some(rx)
    }
}

/// Asks the zone's authoritative servers (and `--dns-check-resolver`s) until each serves
/// `expected` or the deadline passes, reporting each round that differs from the last.
async fn follow(dns: &Dns, old_ttl: u32, expected: &crate::dns::RecordSet, tx: UnboundedSender<Propagation>) {
    let listed = (!dns.name_servers.is_empty()).then(|| {
        let mut servers = vec![dns.server];
        servers.extend(dns.name_servers.iter().copied().filter(|s| *s != dns.server));
        servers
    });
    let found = match listed {
        Some(servers) => Ok(servers),
        None => dns.authoritative().await,
    };
    let mut servers = match found {
        Ok(servers) => servers,
        Err(e) => {
            let _ = tx.send(Propagation {
                serving: vec![],
                pending: vec![dns.server.to_string()],
                finished: Some(Err(std::time::Duration::ZERO)),
                problem: Some(format!("the zone's name servers could not be listed: {e}")),
            });
            return;
        }
    };
    let mut deadline = dns.deadline;
    if !dns.resolvers.is_empty() {
        // A resolver serves its cached copy of the old record until that expires.
        deadline = deadline.max(std::time::Duration::from_secs(u64::from(old_ttl) + 30));
        let extra: Vec<std::net::SocketAddr> = dns.resolvers.iter().copied().filter(|r| !servers.contains(r)).collect();
        servers.extend(extra);
    }
    let mut last = None;
    let split = |answers: &[(std::net::SocketAddr, bool)]| {
        let names = |ok: bool| answers.iter().filter(|a| a.1 == ok).map(|a| a.0.to_string()).collect::<Vec<_>>();
        (names(true), names(false))
    };
    let done = crate::dns::wait_served(dns, &servers, expected, deadline, |answers| {
        let (serving, pending) = split(answers);
        if last.as_ref() != Some(&(serving.clone(), pending.clone())) && !pending.is_empty() {
            let _ = tx.send(Propagation {
                serving: serving.clone(),
                pending: pending.clone(),
                finished: None,
                problem: None,
            });
        }
        last = Some((serving, pending));
    })
    .await;
    let (serving, pending) = last.unwrap_or_default();
    let _ = tx.send(Propagation { serving, pending, finished: Some(done.map_err(|_| deadline)), problem: None });
}
