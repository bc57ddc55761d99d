//! The dependency map in Kubernetes: gateways (Deployments, ready pods) → their bound
//! route objects → the Services those send to, with ready endpoints from EndpointSlices.
//! The one read path that calls the API server rather than a watch cache, at most once
//! per [`DEPENDENCIES_TTL`].

use super::{KubeFleet, adapter};
use crate::fleet::{Fleet, FleetResult};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// API reads the dependency map makes at once.
const DEPENDENCY_READS_AT_ONCE: usize = 8;

/// How long a dependency map read from the API server is served again.
pub const DEPENDENCIES_TTL: Duration = Duration::from_secs(10);

impl KubeFleet {
    /// Gateways (Deployments, ready pods) → their bound route objects → the Services those
    /// send to (ready endpoints from EndpointSlices). Route objects and EndpointSlices are
    /// read from the API server (a GET per route object, a LIST per Service), at most
    /// once per [`DEPENDENCIES_TTL`]; traffic numbers come from Prometheus, per gateway.
    pub(super) async fn dependency_graph(&self) -> FleetResult<app::dto::DependencyGraph> {
        use app::dto::{DepEdge, DepNode, DependencyGraph};
        use app::health::node_health;
        let mut cached = self.deps.lock().await;
        if let Some((at, g)) = cached.as_ref()
            && at.elapsed() < DEPENDENCIES_TTL
        {
            return Ok(g.clone());
        }
        let inventory = self.inventory().await?;
        let mut g = DependencyGraph::default();
        let mut services: BTreeSet<(String, String)> = BTreeSet::new();
        let node =
            |id: String, kind: &str, name: String, gateway: Option<String>, ready: Option<u32>, all: Option<u32>| {
                DepNode {
                    id,
                    kind: kind.into(),
                    name,
                    gateway,
                    // No per-route or per-service numbers from a cluster (yet): unknown, or
                    // down when nothing is ready to serve.
                    health: node_health(None, ready),
                    rps: None,
                    error_rate: None,
                    latency_ms: None,
                    ready_endpoints: ready,
                    endpoints: all,
                }
            };
        // The bound route objects of every gateway, a few GETs at a time, in order.
        let mut bound = Vec::new();
        for inv in inventory.iter() {
            let (space, deployment) = self.find(&inv.id)?;
            if let Ok(Some(binding)) = adapter::binding(&deployment) {
                bound.push((inv.id.clone(), space.namespace.clone(), binding));
            }
        }
        // (The futures are collected first: a borrowing closure inside the stream trips
        // the Send check of the boxed future.)
        let reads: Vec<_> = bound.iter().map(|(_, ns, b)| adapter::fetch_routes(&self.client, ns, b)).collect();
        let routes: Vec<Vec<kube::api::DynamicObject>> = futures::stream::iter(reads)
            .buffered(DEPENDENCY_READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<FleetResult<_>>()?;
        let mut routes_of: HashMap<&str, (&str, &adapter::Binding, Vec<kube::api::DynamicObject>)> =
            bound.iter().zip(routes).map(|((id, ns, b), r)| (id.as_str(), (ns.as_str(), b, r))).collect();
        for inv in inventory.iter() {
            let ready = inv.instances.iter().filter(|i| i.ready).count() as u32;
            let gateway_id = format!("gateway:{}", inv.id);
            g.nodes.push(node(
                gateway_id.clone(),
                "gateway",
                inv.name.clone(),
                Some(inv.id.clone()),
                Some(ready),
                Some(inv.instances.len() as u32),
            ));
            let Some((namespace, binding, objects)) = routes_of.remove(inv.id.as_str()) else { continue };
            for object in objects {
                let name = object.metadata.name.clone().unwrap_or_default();
                let route_id = format!("route:{}:{name}", inv.id);
                g.nodes.push(node(route_id.clone(), "route", name, Some(inv.id.clone()), None, None));
                g.edges.push(DepEdge { from: gateway_id.clone(), to: route_id.clone(), rps: None, error_rate: None });
                for service in adapter::backends(binding, &object) {
                    g.edges.push(DepEdge {
                        from: route_id.clone(),
                        to: format!("service:{namespace}/{service}"),
                        rps: None,
                        error_rate: None,
                    });
                    services.insert((namespace.to_string(), service));
                }
            }
        }
        let reads: Vec<_> =
            services.iter().map(|(namespace, service)| adapter::endpoints(&self.client, namespace, service)).collect();
        let counts: Vec<(usize, usize)> = futures::stream::iter(reads)
            .buffered(DEPENDENCY_READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<FleetResult<_>>()?;
        for ((namespace, service), (ready, all)) in services.into_iter().zip(counts) {
            g.nodes.push(node(
                format!("service:{namespace}/{service}"),
                "service",
                service,
                None,
                Some(ready as u32),
                Some(all as u32),
            ));
        }
        *cached = Some((std::time::Instant::now(), g.clone()));
        Ok(g)
    }
}
