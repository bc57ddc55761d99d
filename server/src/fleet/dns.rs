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
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
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

/// Where a service's clients go while it bypasses the gateway, if it has such a place:
/// (namespace, service) → its direct target.
pub type DirectTargets = Arc<dyn Fn(&str, &str) -> BoxFuture<'static, Option<Direct>> + Send + Sync>;

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
/// `SimFleet::serve_services` on [`simulated_direct_addresses`]) under `<service>.<zone>`,
/// an A record with a 60 s TTL, and its `/healthz` on the listener's port.
pub fn simulated_direct_targets(dns: &Dns, listening: Vec<(String, std::net::SocketAddr)>) -> DirectTargets {
    let dns = dns.clone();
    Arc::new(move |_namespace: &str, service: &str| {
        let found = listening.iter().find(|(s, _)| s == service).map(|(_, at)| {
            let name = dns.name_of(service);
            Direct {
                health: Some(format!("http://{}:{}/healthz", name.trim_end_matches('.'), at.port())),
                record: RecordSet { name, rtype: "A".into(), ttl: 60, values: vec![at.ip().to_string()] },
            }
        });
        Box::pin(async move { found })
    })
}

/// Told after each record change: (gateway, service, towards the service itself, the
/// old record's TTL). The simulator moves its clients with it.
pub type OnMoved = Arc<dyn Fn(&str, &str, bool, u32) + Send + Sync>;

/// Where services' public records live, and how they change.
pub trait Records: Send + Sync {
    /// `service`'s record, direct target and health URL (`None`: it takes no part in DNS
    /// bypasses); a record that cannot be read says why in `problem`.
    fn read<'a>(&'a self, namespace: &'a str, service: &'a str) -> BoxFuture<'a, Option<ServiceRecord>>;
    /// Swaps `from` for `to`, refusing (409) when the record is no longer `from`;
    /// `dry_run`: only validates (where the store can).
    fn swap<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
        from: &'a RecordSet,
        to: &'a RecordSet,
        dry_run: bool,
    ) -> BoxFuture<'a, FleetResult<()>>;
    /// Follows a change made until it is served (or published) everywhere it must be.
    fn follow(
        &self,
        namespace: &str,
        service: &str,
        from: &RecordSet,
        to: &RecordSet,
    ) -> UnboundedReceiver<Propagation>;
}

/// Records on the zone's primary, changed with RFC 2136 UPDATEs (`--dns-server`).
pub struct Rfc2136 {
    dns: Dns,
    direct: DirectTargets,
}

impl Rfc2136 {
    /// The zone `dns`, services' direct targets from `direct`.
    pub fn new(dns: Dns, direct: DirectTargets) -> Self {
        Rfc2136 { dns, direct }
    }
}

impl Records for Rfc2136 {
    fn read<'a>(&'a self, namespace: &'a str, service: &'a str) -> BoxFuture<'a, Option<ServiceRecord>> {
        Box::pin(async move {
            let Direct { record: direct, health } = (self.direct)(namespace, service).await?;
            let read = tokio::time::timeout(READ_BUDGET, self.dns.read(&direct.name)).await;
            let (current, problem) = match read {
                Ok(Ok(current)) => (current, None),
                Ok(Err(e)) => (None, Some(e.to_string())),
                Err(_) => (None, Some(format!("the DNS server at {} did not answer within 2 s", self.dns.server))),
            };
            Some(ServiceRecord { service: service.into(), current, direct, health, problem, note: None })
        })
    }

    fn swap<'a>(
        &'a self,
        _namespace: &'a str,
        _service: &'a str,
        from: &'a RecordSet,
        to: &'a RecordSet,
        dry_run: bool,
    ) -> BoxFuture<'a, FleetResult<()>> {
        Box::pin(async move {
            if dry_run {
                // The UPDATE's prerequisite is the check; there is no dry run in RFC 2136.
                return Ok(());
            }
            self.dns.swap(from, to).await.map_err(fleet_error)
        })
    }

    fn follow(
        &self,
        _namespace: &str,
        _service: &str,
        from: &RecordSet,
        to: &RecordSet,
    ) -> UnboundedReceiver<Propagation> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (dns, old_ttl, expected) = (self.dns.clone(), from.ttl, to.clone());
        tokio::spawn(async move { follow(&dns, old_ttl, &expected, tx).await });
        rx
    }
}

/// The namespace of `gateway` in `fleet`'s inventory ("" when unknown).
async fn namespace_of(fleet: &dyn Fleet, gateway: &str) -> String {
    match fleet.inventory().await {
        Ok(list) => list.iter().find(|g| g.id == gateway).map(|g| g.namespace.clone()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The wrapper.
pub struct DnsFleet {
    inner: Arc<dyn Fleet>,
    records: Arc<dyn Records>,
    moved: Option<OnMoved>,
}

impl DnsFleet {
    /// `inner`, with its services' records in `records`; `moved` hears of every change
    /// made.
    pub fn new(inner: Arc<dyn Fleet>, records: Arc<dyn Records>, moved: Option<OnMoved>) -> Self {
        DnsFleet { inner, records, moved }
    }

    /// The namespace of `gateway` (its services' too), from the inventory.
    async fn namespace(&self, gateway: &str) -> String {
        namespace_of(&*self.inner, gateway).await
    }

    /// `state` with each service's record, read at once, all within [`READ_BUDGET`] (a
    /// DNS server that does not answer delays an action by that much, no more).
    async fn with_records(&self, gateway: &str, mut state: GatewayState) -> GatewayState {
        let namespace = self.namespace(gateway).await;
        let reads = state.services.iter().map(|service| {
            let namespace = namespace.as_str();
            async move { tokio::time::timeout(READ_BUDGET, self.records.read(namespace, service)).await.ok().flatten() }
        });
        state.dns = futures::future::join_all(reads).await.into_iter().flatten().collect();
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
            Ok(self.with_records(&gateway, state).await)
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
                    let namespace = self.namespace(gateway).await;
                    self.records.swap(&namespace, service, from, to, false).await?;
                    if let Some(moved) = &self.moved {
                        let direct = before.dns.iter().any(|r| &r.service == service && &r.direct == to);
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
            Change::DnsRecord { service, from, to } => Box::pin(async move {
                let namespace = self.namespace(gateway).await;
                self.records.swap(&namespace, service, from, to, true).await
            }),
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
    fn propagation(&self, gateway: &str, change: &Change) -> Option<UnboundedReceiver<Propagation>> {
        let Change::DnsRecord { service, from, to } = change else {
            return self.inner.propagation(gateway, change);
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (inner, records) = (Arc::clone(&self.inner), Arc::clone(&self.records));
        let (gateway, service, from, to) = (gateway.to_string(), service.clone(), from.clone(), to.clone());
        tokio::spawn(async move {
            let namespace = namespace_of(&*inner, &gateway).await;
            let mut rounds = records.follow(&namespace, &service, &from, &to);
            while let Some(round) = rounds.recv().await {
                if tx.send(round).is_err() {
                    return;
                }
            }
        });
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
                by: None,
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
                by: None,
            });
        }
        last = Some((serving, pending));
    })
    .await;
    let (serving, pending) = last.unwrap_or_default();
    let _ =
        tx.send(Propagation { serving, pending, finished: Some(done.map_err(|_| deadline)), problem: None, by: None });
}

#[cfg(test)]
mod tests {
    /// The names of the `fn`s in the block of `source` that starts at `header`.
    fn methods(source: &str, header: &str) -> std::collections::BTreeSet<String> {
        let start = source.find(header).unwrap_or_else(|| panic!("no `{header}`"));
        let block = &source[start..];
        let end = block.find("\n}\n").expect("the block ends");
        block[..end]
            .split("fn ")
            .skip(1)
            .filter_map(|rest| rest.split(|c: char| !c.is_alphanumeric() && c != '_').next())
            .map(str::to_string)
            .collect()
    }

    /// A method the trait gains with a default body would otherwise skip the decorator
    /// silently (every DNS-fronted fleet would answer the default, not the real one).
    #[test]
    fn the_dns_decorator_forwards_every_fleet_method() {
        let declared = methods(include_str!("mod.rs"), "pub trait Fleet");
        let forwarded = methods(include_str!("dns.rs"), "impl Fleet for DnsFleet");
        assert!(declared.len() > 10, "{declared:?}");
        assert_eq!(declared, forwarded, "the DNS decorator must forward every Fleet method");
    }
}
