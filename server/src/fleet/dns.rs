//! A fleet whose services' public DNS records the console also manages (`--dns-server`,
//! issue 17): every call goes to the fleet it wraps, except that a gateway's state also
//! carries each service's record as the zone's primary serves it, and a
//! [`Change::DnsRecord`] is made on the DNS server (a compare-and-swap, see `crate::dns`).

use super::{Change, Fleet, FleetError, FleetResult, GatewayInventory, GatewayState, RolloutState, ServiceRecord};
use crate::dns::{Dns, DnsError, RecordSet};
use futures::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::watch;

/// Where a service's clients go while it bypasses the gateway: its direct RRset, if it
/// has one.
pub type DirectTargets = Arc<dyn Fn(&Dns, &str) -> Option<RecordSet> + Send + Sync>;

/// The simulator's direct targets: each service answers on a loopback address of its own,
/// `127.0.2.N` (N: the service's place among every service name, sorted, from 1), with a
/// 60 s TTL.
pub fn simulated_direct_targets(services: Vec<String>) -> DirectTargets {
    let mut services = services;
    services.sort();
    services.dedup();
    Arc::new(move |dns: &Dns, service: &str| {
        let n = services.iter().position(|s| s == service)? + 1;
        (n < 255).then(|| RecordSet {
            name: dns.name_of(service),
            rtype: "A".into(),
            ttl: 60,
            values: vec![format!("127.0.2.{n}")],
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
            let direct = (self.direct)(&self.dns, service)?;
            Some(async move {
                let read = tokio::time::timeout(READ_BUDGET, self.dns.read(&direct.name)).await;
                let (current, problem) = match read {
                    Ok(Ok(current)) => (current, None),
                    Ok(Err(e)) => (None, Some(e.to_string())),
                    Err(_) => (None, Some(format!("the DNS server at {} did not answer within 2 s", self.dns.server))),
                };
                ServiceRecord { service: service.clone(), current, direct, problem }
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
                        let direct = (self.direct)(&self.dns, service).is_some_and(|d| d.values == to.values);
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
}
