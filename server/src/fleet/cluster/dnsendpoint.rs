//! A DNS bypass in a cluster (issue 17): which record and which direct target come from
//! the downstream Service's annotations, and the record itself may live in an
//! external-dns `DNSEndpoint` (`externaldns.k8s.io/v1alpha1`) that external-dns publishes
//! to whatever provider the cluster uses (Route 53, Cloud DNS, ...).
//!
//! On the Service:
//! - `gatewarden.io/dns-name`: its public name (without it the Service takes no part);
//! - `gatewarden.io/direct-target`: where its clients go around the gateway: addresses
//!   (`192.0.2.7,192.0.2.8`, an A or AAAA set) or one host name (a CNAME); by default its
//!   LoadBalancer ingress (the `ip`s, or the `hostname`);
//! - `gatewarden.io/direct-health-url`: what must answer there first (default
//!   `https://<dns-name>/healthz`);
//! - `gatewarden.io/dns-endpoint`: with `--dns-provider external-dns`, the DNSEndpoint (in
//!   the Service's namespace) whose endpoint for the public name is the record.
//!
//! A change to a DNSEndpoint is a JSON patch that first tests the object's
//! resourceVersion as read just before and the endpoint's name, type, targets and TTL as
//! planned, so a record someone changed since is never overwritten (422 → 409). An
//! endpoint whose `owner` label names another external-dns owner than ours
//! (`--external-dns-owner-id`, external-dns' `--txt-owner-id`) is left alone.

use super::ops::{CALL_TIMEOUT, FIELD_MANAGER, error};
use crate::dns::RecordSet;
use crate::fleet::dns::{Direct, Records};
use crate::fleet::{FleetError, FleetResult, Propagation, ServiceRecord};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// The Service's public name.
pub const DNS_NAME: &str = "gatewarden.io/dns-name";
/// Where its clients go around the gateway.
pub const DIRECT_TARGET: &str = "gatewarden.io/direct-target";
/// What must answer there before they are sent.
pub const DIRECT_HEALTH_URL: &str = "gatewarden.io/direct-health-url";
/// The DNSEndpoint holding the record.
pub const DNS_ENDPOINT: &str = "gatewarden.io/dns-endpoint";
/// TTL of the direct record (clients come back within this long after an undo).
const DIRECT_TTL: u32 = 60;

/// The `DNSEndpoint` resource.
pub fn dns_endpoint_resource() -> ApiResource {
    ApiResource {
        group: "externaldns.k8s.io".into(),
        version: "v1alpha1".into(),
        api_version: "externaldns.k8s.io/v1alpha1".into(),
        kind: "DNSEndpoint".into(),
        plural: "dnsendpoints".into(),
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_string() } else { format!("{name}.") }
}

/// A Service's direct target and health URL, from its annotations (`None`: it has no
/// public name, or nowhere to send its clients).
pub fn direct_of(service: &Service) -> Option<Direct> {
    let annotations = service.metadata.annotations.as_ref()?;
    let name = fqdn(annotations.get(DNS_NAME)?.trim());
    let listed: Vec<String> = match annotations.get(DIRECT_TARGET) {
        Some(v) => v.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
        None => {
            let ingress = service.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?;
            let ips: Vec<String> = ingress.iter().filter_map(|i| i.ip.clone()).collect();
            if ips.is_empty() { ingress.iter().filter_map(|i| i.hostname.clone()).take(1).collect() } else { ips }
        }
    };
    let first = listed.first()?;
    let (rtype, mut values) = match first.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => ("A", listed.clone()),
        Ok(std::net::IpAddr::V6(_)) => ("AAAA", listed.clone()),
        // A host name: one CNAME (a set of names is not a record).
        Err(_) => ("CNAME", vec![fqdn(first)]),
    };
    values.sort();
    let health = annotations
        .get(DIRECT_HEALTH_URL)
        .cloned()
        .unwrap_or_else(|| format!("https://{}/healthz", name.trim_end_matches('.')));
    Some(Direct { record: RecordSet { name, rtype: rtype.into(), ttl: DIRECT_TTL, values }, health: Some(health) })
}

/// The endpoint for `name` in a DNSEndpoint: its index, its record, and its `owner` label.
pub fn endpoint_of(object: &Value, name: &str) -> Option<(usize, RecordSet, Option<String>)> {
    let endpoints = object["spec"]["endpoints"].as_array()?;
    endpoints.iter().enumerate().find_map(|(i, e)| {
        let dns_name = e["dnsName"].as_str()?;
        if fqdn(dns_name) != fqdn(name) {
            return None;
        }
        let rtype = e["recordType"].as_str().unwrap_or("A").to_string();
        let mut values: Vec<String> = e["targets"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(|t| if rtype == "CNAME" { fqdn(t) } else { t.to_string() })
            .collect();
        values.sort();
        // external-dns' default TTL when none is set.
        let ttl = e["recordTTL"].as_u64().unwrap_or(300) as u32;
        let owner = e["labels"]["owner"].as_str().map(String::from);
        Some((i, RecordSet { name: fqdn(dns_name), rtype, ttl, values }, owner))
    })
}

/// The JSON patch that swaps endpoint `index` (as `object` holds it now) for `to`: tests
/// first (the object's resourceVersion, the endpoint's name, type, targets and TTL as
/// they are), then the new targets and TTL.
pub fn swap_patch(object: &Value, index: usize, to: &RecordSet) -> Value {
    let at = format!("/spec/endpoints/{index}");
    let endpoint = &object["spec"]["endpoints"][index];
    let targets: Vec<String> = to
        .values
        .iter()
        .map(|v| if to.rtype == "CNAME" { v.trim_end_matches('.').to_string() } else { v.clone() })
        .collect();
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": object["metadata"]["resourceVersion"]}),
        json!({"op": "test", "path": format!("{at}/dnsName"), "value": endpoint["dnsName"]}),
        json!({"op": "test", "path": format!("{at}/targets"), "value": endpoint["targets"]}),
    ];
    if endpoint.get("recordType").is_some() {
        ops.push(json!({"op": "test", "path": format!("{at}/recordType"), "value": endpoint["recordType"]}));
    }
    let ttl_op = if endpoint.get("recordTTL").is_some() {
        ops.push(json!({"op": "test", "path": format!("{at}/recordTTL"), "value": endpoint["recordTTL"]}));
        "replace"
    } else {
        "add"
    };
    ops.push(json!({"op": "replace", "path": format!("{at}/targets"), "value": targets}));
    ops.push(json!({"op": ttl_op, "path": format!("{at}/recordTTL"), "value": to.ttl}));
    Value::Array(ops)
}

/// The Service `service` in `namespace` (`None`: there is none).
pub async fn read_service(client: &kube::Client, namespace: &str, service: &str) -> FleetResult<Option<Service>> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let what = format!("get Service {namespace}/{service}");
    tokio::time::timeout(CALL_TIMEOUT, api.get_opt(service))
        .await
        .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
        .map_err(|e| error(&what, e))
}

/// Services' direct targets from their annotations (a GET of the Service each time, so an
/// annotation changed a moment ago counts).
pub fn service_direct_targets(client: kube::Client) -> crate::fleet::dns::DirectTargets {
    std::sync::Arc::new(move |namespace: &str, service: &str| {
        let (client, namespace, service) = (client.clone(), namespace.to_string(), service.to_string());
        Box::pin(async move {
            read_service(&client, &namespace, &service).await.ok().flatten().as_ref().and_then(direct_of)
        })
    })
}

/// Records kept in external-dns `DNSEndpoint`s (`--dns-provider external-dns`).
pub struct ExternalDns {
    client: kube::Client,
    /// `--external-dns-owner-id`: endpoints owned by another owner are left alone.
    owner: Option<String>,
    /// How long external-dns may take to publish a change (`--dns-propagation-deadline`).
    deadline: Duration,
}

impl ExternalDns {
    /// Records in DNSEndpoints, through `client`.
    pub fn new(client: kube::Client, owner: Option<String>, deadline: Duration) -> Self {
        ExternalDns { client, owner, deadline }
    }

    fn api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &dns_endpoint_resource())
    }

    /// The DNSEndpoint named by `service`'s annotation, as JSON, and the annotation.
    async fn holder(&self, namespace: &str, service: &Service) -> FleetResult<(String, Value)> {
        let svc = service.metadata.name.clone().unwrap_or_default();
        let name = service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DNS_ENDPOINT))
            .ok_or_else(|| {
                FleetError::Refused(format!(
                    "Service {namespace}/{svc} has no {DNS_ENDPOINT} annotation naming its DNSEndpoint"
                ))
            })?
            .clone();
        let what = format!("get DNSEndpoint {namespace}/{name}");
        let object = tokio::time::timeout(CALL_TIMEOUT, self.api(namespace).get_opt(&name))
            .await
            .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
            .map_err(|e| error(&what, e))?
            .ok_or_else(|| FleetError::Refused(format!("{what}: not found (named by Service {namespace}/{svc})")))?;
        Ok((name, serde_json::to_value(object).map_err(|e| FleetError::Rejected(e.to_string()))?))
    }

    /// The endpoint for `name` in `object`, if it is ours to change.
    fn ours(&self, holder: &str, object: &Value, name: &str) -> FleetResult<(usize, RecordSet)> {
        let (index, record, owner) = endpoint_of(object, name)
            .ok_or_else(|| FleetError::Refused(format!("DNSEndpoint {holder} has no endpoint for {name}")))?;
        match (owner, &self.owner) {
            (Some(theirs), Some(ours)) if &theirs != ours => Err(FleetError::Conflict(format!(
                "{name} in DNSEndpoint {holder} belongs to external-dns owner '{theirs}', not '{ours}' \
                 (--external-dns-owner-id); it is left alone"
            ))),
            _ => Ok((index, record)),
        }
    }

    async fn read_one(&self, namespace: &str, service: &str) -> FleetResult<Option<ServiceRecord>> {
        let Some(svc) = read_service(&self.client, namespace, service).await? else { return Ok(None) };
        let Some(direct) = direct_of(&svc) else { return Ok(None) };
        let mut record = ServiceRecord {
            service: service.into(),
            current: None,
            direct: direct.record.clone(),
            health: direct.health,
            problem: None,
            note: Some(
                "external-dns publishes it at its next sync (its --interval, 1 minute by default), then resolvers \
                 move as the old record's TTL runs out."
                    .into(),
            ),
        };
        match self.holder(namespace, &svc).await.and_then(|(holder, o)| self.ours(&holder, &o, &direct.record.name)) {
            Ok((_, current)) => record.current = Some(current),
            Err(e) => record.problem = Some(e.to_string()),
        }
        Ok(Some(record))
    }
}

impl Records for ExternalDns {
    fn read<'a>(&'a self, namespace: &'a str, service: &'a str) -> BoxFuture<'a, Option<ServiceRecord>> {
        Box::pin(async move {
            match self.read_one(namespace, service).await {
                Ok(record) => record,
                Err(e) => {
                    tracing::warn!(namespace, service, error = %e, "reading a service's DNS record failed");
                    None
                }
            }
        })
    }

    fn swap<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
        from: &'a RecordSet,
        to: &'a RecordSet,
        dry_run: bool,
    ) -> BoxFuture<'a, FleetResult<()>> {
        Box::pin(async move {
            let svc = read_service(&self.client, namespace, service)
                .await?
                .ok_or_else(|| FleetError::NotFound(format!("Service {namespace}/{service} is gone")))?;
            let (holder, object) = self.holder(namespace, &svc).await?;
            let (index, current) = self.ours(&holder, &object, &from.name)?;
            if &current != from {
                return Err(FleetError::Conflict(format!(
                    "{} in DNSEndpoint {namespace}/{holder} changed since it was read; nothing was changed",
                    from.name
                )));
            }
            let patch: json_patch::Patch = serde_json::from_value(swap_patch(&object, index, to))
                .map_err(|e| FleetError::Rejected(e.to_string()))?;
            let pp = PatchParams { dry_run, field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
            let what = format!("patch DNSEndpoint {namespace}/{holder}");
            tokio::time::timeout(CALL_TIMEOUT, self.api(namespace).patch(&holder, &pp, &Patch::Json::<()>(patch)))
                .await
                .map_err(|_| FleetError::Unavailable(format!("{what}: no answer")))?
                .map_err(|e| error(&what, e))?;
            Ok(())
        })
    }

    fn follow(
        &self,
        namespace: &str,
        service: &str,
        _from: &RecordSet,
        _to: &RecordSet,
    ) -> UnboundedReceiver<Propagation> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (client, owner, deadline) = (self.client.clone(), self.owner.clone(), self.deadline);
        let (namespace, service) = (namespace.to_string(), service.to_string());
        tokio::spawn(async move {
            let records = ExternalDns { client, owner, deadline };
            let started = tokio::time::Instant::now();
            let who = "external-dns".to_string();
            let mut said = false;
            loop {
                // Published when external-dns has observed the generation the change made.
                let seen = async {
                    let svc = read_service(&records.client, &namespace, &service).await.ok()??;
                    let (_, object) = records.holder(&namespace, &svc).await.ok()?;
                    let generation = object["metadata"]["generation"].as_i64()?;
                    Some(object["status"]["observedGeneration"].as_i64().unwrap_or(0) >= generation)
                }
                .await;
                if seen == Some(true) {
                    let _ = tx.send(Propagation {
                        serving: vec![who.clone()],
                        pending: vec![],
                        finished: Some(Ok(started.elapsed())),
                        problem: None,
                        by: Some(who.clone()),
                    });
                    return;
                }
                if started.elapsed() >= records.deadline {
                    let _ = tx.send(Propagation {
                        serving: vec![],
                        pending: vec![who.clone()],
                        finished: Some(Err(records.deadline)),
                        problem: None,
                        by: Some(who.clone()),
                    });
                    return;
                }
                if !said {
                    said = true;
                    let _ = tx.send(Propagation {
                        serving: vec![],
                        pending: vec![who.clone()],
                        finished: None,
                        problem: None,
                        by: Some(who.clone()),
                    });
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        rx
    }
}
