//! Read side of the Kubernetes backend: API objects → what the console shows, as pure
//! functions (tested without a cluster), and the slimming applied to watched objects so
//! that tens of thousands of pods fit in a few hundred megabytes.

use crate::fleet::{Autoscaler, GatewayInventory, GatewayState, RolloutState, TimeoutPolicy};
use app::dto::Instance;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Annotation holding a ReplicaSet's (and its Deployment's) revision number.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Label that ties pods to their ReplicaSet's template.
pub const TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotation naming the container `kubectl logs` reads by default.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
/// Template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Label that states an application's version, when present.
const VERSION_LABEL: &str = "app.kubernetes.io/version";

/// A gateway's id in URLs and the audit trail: `namespace:name` (a colon appears in
/// neither, so the id is unambiguous and needs no escaping in a path).
pub fn gateway_id(namespace: &str, name: &str) -> String {
    format!("{namespace}:{name}")
}

/// The inverse of [`gateway_id`].
pub fn split_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':').filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

/// The revision annotation: missing counts as 0, unparseable is `None` (kubectl skips it).
pub fn revision_of(meta: &ObjectMeta) -> Option<u32> {
    match meta.annotations.as_ref().and_then(|a| a.get(REVISION)) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// Whether `owner` is the controller reference to the object with `uid`.
fn controlled_by(owners: Option<&Vec<OwnerReference>>, uid: &str) -> bool {
    owners.into_iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The UID of an object's controller, if any.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.as_str())
}

/// `kubectl`'s label selector string for `matchLabels` and `matchExpressions`.
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> =
        selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    parts.join(",")
}

fn image_tag(image: &str) -> &str {
    // registry:5000/team/gw:1.2.3@sha256:... → 1.2.3
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map_or("latest", |(_, tag)| tag)
}

/// The container kubectl would pick: the default-container annotation, else the first.
pub fn default_container<'a>(
    annotations: Option<&BTreeMap<String, String>>,
    spec: &'a PodSpec,
) -> Option<&'a Container> {
    annotations
        .and_then(|a| a.get(DEFAULT_CONTAINER))
        .and_then(|name| spec.containers.iter().find(|c| &c.name == name))
        .or_else(|| spec.containers.first())
}

/// The version a template runs: its `app.kubernetes.io/version` label, else the image
/// tag of its default container.
pub fn template_version(template: &PodTemplateSpec) -> String {
    let meta = template.metadata.as_ref();
    if let Some(v) = meta.and_then(|m| m.labels.as_ref()).and_then(|l| l.get(VERSION_LABEL)) {
        return v.clone();
    }
    template
        .spec
        .as_ref()
        .and_then(|s| default_container(meta.and_then(|m| m.annotations.as_ref()), s))
        .and_then(|c| c.image.as_deref())
        .map(|i| image_tag(i).to_string())
        .unwrap_or_default()
}

/// What `template` runs, field by field ([`crate::fleet::TemplateFields`]).
pub fn template_fields(template: &PodTemplateSpec) -> crate::fleet::TemplateFields {
    let mut out = crate::fleet::TemplateFields::new();
    if let Some(meta) = &template.metadata {
        for (k, v) in meta.labels.iter().flatten().filter(|(k, _)| *k != TEMPLATE_HASH) {
            out.insert(format!("label {k}"), v.clone());
        }
        for (k, v) in meta.annotations.iter().flatten().filter(|(k, _)| *k != RESTARTED_AT) {
            out.insert(format!("annotation {k}"), v.clone());
        }
    }
    let Some(spec) = &template.spec else { return out };
    let init = spec.init_containers.iter().flatten().map(|c| ("init ", c));
    for (kind, c) in spec.containers.iter().map(|c| ("", c)).chain(init) {
        let name = format!("{kind}{}", c.name);
        if let Some(image) = &c.image {
            out.insert(format!("{name}: image"), image.clone());
        }
        if let Some(command) = &c.command {
            out.insert(format!("{name}: command"), command.join(" "));
        }
        if let Some(args) = &c.args {
            out.insert(format!("{name}: args"), args.join(" "));
        }
        let mut env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        env.sort_unstable();
        if !env.is_empty() {
            out.insert(format!("{name}: env"), env.join(", "));
        }
        if let Some(r) = &c.resources {
            out.insert(format!("{name}: resources"), compact(r));
        }
        for (probe, p) in [
            ("readinessProbe", &c.readiness_probe),
            ("livenessProbe", &c.liveness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(p) = p {
                out.insert(format!("{name}: {probe}"), compact(p));
            }
        }
    }
    // Everything else in the pod spec (volumes, service account, ...) as one field.
    let mut rest = spec.clone();
    rest.containers.clear();
    rest.init_containers = None;
    out.insert("pod spec".into(), compact(&rest));
    out
}

/// Compact JSON of a nested field (a stable, readable form to compare and show).
fn compact<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn pod_version(pod: &Pod) -> String {
    if let Some(v) = pod.metadata.labels.as_ref().and_then(|l| l.get(VERSION_LABEL)) {
        return v.clone();
    }
    pod.spec
        .as_ref()
        .and_then(|s| default_container(pod.metadata.annotations.as_ref(), s))
        .and_then(|c| c.image.as_deref())
        .map(|i| image_tag(i).to_string())
        .unwrap_or_default()
}

/// What the console keeps of a watched pod (about 200 bytes instead of the several
/// kilobytes of a `Pod`): its instance row and the ReplicaSet that controls it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodRow {
    /// UID of the controlling ReplicaSet.
    pub owner: Option<String>,
    /// When it started, Unix seconds.
    pub started_s: Option<i64>,
    /// The container `kubectl logs` reads by default.
    pub container: String,
    /// The row, with `age_s` filled in at read time.
    pub instance: Instance,
}

/// The row of a pod.
pub fn pod_row(pod: &Pod) -> PodRow {
    let mut instance = instance(pod, 0);
    instance.age_s = 0;
    let started_s = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0.as_second());
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| default_container(pod.metadata.annotations.as_ref(), s))
        .map(|c| c.name.clone())
        .unwrap_or_default();
    PodRow { owner: controller_uid(&pod.metadata).map(str::to_string), started_s, container, instance }
}

/// A pod as an instance row. `now_s` is Unix seconds.
pub fn instance(pod: &Pod, now_s: i64) -> Instance {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum());
    let started = status
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0.as_second());
    Instance {
        name: pod.metadata.name.clone().unwrap_or_default(),
        ready,
        restarts,
        age_s: started.map_or(0, |s| (now_s - s).max(0) as u64),
        version: pod_version(pod),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
    }
}

/// Everything a namespace's watches hold, borrowed for one read.
pub struct Objects<'a> {
    /// Gateways.
    pub deployments: &'a [Arc<Deployment>],
    /// Their ReplicaSets (and possibly others with the same labels).
    pub replicasets: &'a [Arc<ReplicaSet>],
    /// Their pods, by UID.
    pub pods: &'a HashMap<String, PodRow>,
    /// Every HPA of the namespace.
    pub hpas: &'a [Arc<HorizontalPodAutoscaler>],
}

impl Objects<'_> {
    /// Every Deployment's inventory, pods grouped through their ReplicaSet's controller
    /// reference (one pass over the pods, not one per Deployment).
    pub fn inventory(&self, now_s: i64) -> Vec<GatewayInventory> {
        let rs_owner: HashMap<&str, &str> = self
            .replicasets
            .iter()
            .filter_map(|rs| Some((rs.metadata.uid.as_deref()?, controller_uid(&rs.metadata)?)))
            .collect();
        let mut pods_of: HashMap<&str, Vec<Instance>> = HashMap::new();
        for pod in self.pods.values() {
            if let Some(deployment) = pod.owner.as_deref().and_then(|rs| rs_owner.get(rs)) {
                let mut row = pod.instance.clone();
                row.age_s = pod.started_s.map_or(0, |s| (now_s - s).max(0) as u64);
                pods_of.entry(deployment).or_default().push(row);
            }
        }
        self.deployments
            .iter()
            .map(|d| {
                let mut instances = d.metadata.uid.as_deref().and_then(|u| pods_of.remove(u)).unwrap_or_default();
                instances.sort_by(|a, b| a.name.cmp(&b.name));
                let name = d.metadata.name.clone().unwrap_or_default();
                let namespace = d.metadata.namespace.clone().unwrap_or_default();
                let spec = Some(&d.spec);
                GatewayInventory {
                    id: gateway_id(&namespace, &name),
                    name,
                    namespace,
                    desired: spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32,
                    version: spec.map(|s| template_version(&s.template)).unwrap_or_default(),
                    instances,
                    probe: probe_of(&d.metadata),
                }
            })
            .collect()
    }

    /// ReplicaSets controlled by `deployment`, with their revision, oldest first.
    pub fn history(&self, deployment: &Deployment) -> Vec<(u32, Arc<ReplicaSet>)> {
        let uid = deployment.metadata.uid.as_deref().unwrap_or_default();
        let mut list: Vec<(u32, Arc<ReplicaSet>)> = self
            .replicasets
            .iter()
            .filter(|rs| controlled_by(rs.metadata.owner_references.as_ref(), uid))
            .filter_map(|rs| Some((revision_of(&rs.metadata)?, rs.clone())))
            .collect();
        list.sort_by_key(|(n, _)| *n);
        list
    }

    /// The HPA whose scale target is `deployment`.
    pub fn autoscaler(&self, deployment: &Deployment) -> Option<Autoscaler> {
        let name = deployment.metadata.name.as_deref()?;
        self.hpas
            .iter()
            .find(|h| {
                let t = &h.spec.scale_target_ref;
                t.kind == "Deployment" && t.name == name
            })
            .map(|h| Autoscaler {
                name: h.metadata.name.clone().unwrap_or_default(),
                min_replicas: h.spec.min_replicas.unwrap_or(1).max(0) as u32,
                max_replicas: h.spec.max_replicas.max(0) as u32,
            })
    }

    /// What a mitigation needs to know about `deployment`. Traffic policy fields are
    /// the gateway adapter's to fill; without one they are empty.
    pub fn state(&self, deployment: &Deployment) -> GatewayState {
        let history = self.history(deployment);
        let revision = revision_of(&deployment.metadata).unwrap_or(0);
        let spec = Some(&deployment.spec);
        let template = history
            .iter()
            .find(|(n, _)| *n == revision)
            .and_then(|(_, rs)| rs.metadata.labels.as_ref()?.get(TEMPLATE_HASH).cloned())
            .unwrap_or_default();
        GatewayState {
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32,
            revision,
            version: spec.map(|s| template_version(&s.template)).unwrap_or_default(),
            template,
            revisions: history
                .iter()
                .map(|(n, rs)| (*n, rs.spec.template.as_ref().map(template_version).unwrap_or_default()))
                .collect(),
            templates: history
                .iter()
                .filter_map(|(n, rs)| Some((*n, template_fields(rs.spec.template.as_ref()?))))
                .collect(),
            routes: vec![],
            rate_limit: None,
            rate_limit_scope: String::new(),
            timeouts: TimeoutPolicy { request_timeout_ms: 0, connect_timeout_ms: 0, retries: 0 },
            circuit_breaker: None,
            services: vec![],
            bypassed: vec![],
            autoscaler: self.autoscaler(deployment),
            paused: spec.and_then(|s| s.paused).unwrap_or(false),
            dns: Vec::new(),
        }
    }
}

/// `kubectl rollout status`'s judgement of a Deployment (kubectl's
/// `DeploymentStatusViewer`, including the observedGeneration check that kube-runtime's
/// `is_deployment_completed` leaves out).
pub fn rollout(deployment: &Deployment) -> RolloutState {
    let desired = deployment.spec.replicas.unwrap_or(1).max(0) as u32;
    let status = deployment.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
    let (updated, total, available) = (n(status.updated_replicas), n(status.replicas), n(status.available_replicas));
    let mut state = RolloutState { desired, updated, ready: available, total, done: false, failed: None };
    let generation = deployment.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return state;
    }
    let deadline = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .filter(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    if deadline.is_some() {
        state.failed = Some(format!("deployment {:?} exceeded its progress deadline", deployment.metadata.name));
        return state;
    }
    state.done = !(updated < desired || total > updated || available < updated);
    state
}

/// An event as a row, with the kind and name of the object it is about.
pub fn event_row(e: &k8s_openapi::api::core::v1::Event) -> (String, String, app::dto::EventRow) {
    let kind = e.involved_object.kind.clone().unwrap_or_default();
    let name = e.involved_object.name.clone().unwrap_or_default();
    let ts = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .map_or(0, |t| t.as_millisecond());
    let row = app::dto::EventRow {
        ts_ms: ts,
        kind: e.type_.clone().unwrap_or_else(|| "Normal".into()),
        reason: e.reason.clone().unwrap_or_default(),
        object: format!("{kind}/{name}"),
        message: e.message.clone().unwrap_or_default(),
        count: e.count.unwrap_or(1).max(1) as u32,
    };
    (kind, name, row)
}

/// Drops managed fields and the last-applied annotation (often the largest parts).
pub fn slim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Annotation: the URL the gateway answers on (a Service's cluster name, usually).
pub const PROBE_URL: &str = "gatewarden.io/probe-url";
/// Annotation: its key paths for synthetic checks, comma-separated (default `/healthz`).
pub const PROBE_PATHS: &str = "gatewarden.io/probe-paths";

fn probe_of(meta: &ObjectMeta) -> Option<(String, Vec<String>)> {
    let a = meta.annotations.as_ref()?;
    let url = a.get(PROBE_URL)?.trim().to_string();
    let paths: Vec<String> = a
        .get(PROBE_PATHS)
        .map(|p| p.split(',').map(str::trim).filter(|p| p.starts_with('/')).map(str::to_string).collect())
        .unwrap_or_default();
    Some((url, if paths.is_empty() { vec!["/healthz".to_string()] } else { paths }))
}

/// ReplicaSets keep their template (the version shown per revision) but not the rest.
pub fn slim_replicaset(rs: &mut ReplicaSet) {
    slim_meta(&mut rs.metadata);
}
