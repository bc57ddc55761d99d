//! Write side of the Kubernetes backend: the runbook's actions sent exactly as kubectl
//! sends them (see KUBERNETES.md), with the preconditions kubectl leaves out.
//!
//! Every function here takes the API handles and returns the object the API server
//! answered with; `dry_run` adds `dryRun=All` so a preview is validated by the server
//! (admission, RBAC, schema) without changing anything.

use super::view::{REVISION, TEMPLATE_HASH, revision_of, selector_string};
use crate::fleet::{FleetError, FleetResult};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// The field manager of every write, so `managedFields` say who changed what.
pub const FIELD_MANAGER: &str = "gatewarden";

/// How long one API call may take before the action fails as "unavailable".
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Annotations a rollback keeps from the Deployment instead of taking them from the
/// ReplicaSet (kubectl's `annotationsToSkip`).
const KEEP_ON_ROLLBACK: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The API handles one gateway's actions use.
#[derive(Clone)]
pub struct Target {
    /// Deployments of the gateway's namespace.
    pub deployments: Api<Deployment>,
    /// ReplicaSets of the namespace.
    pub replicasets: Api<ReplicaSet>,
    /// HPAs of the namespace.
    pub hpas: Api<HorizontalPodAutoscaler>,
    /// The Deployment's name.
    pub name: String,
}

fn patch_params(dry_run: bool) -> PatchParams {
    PatchParams { dry_run, field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// Runs one API call under [`CALL_TIMEOUT`] and maps its error.
async fn call<T>(what: &str, fut: impl Future<Output = kube::Result<T>>) -> FleetResult<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(result) => result.map_err(|e| error(what, e)),
        Err(_) => Err(FleetError::Unavailable(format!("{what}: no answer from the API server in {CALL_TIMEOUT:?}"))),
    }
}

/// Maps an API error to what the console tells its user.
pub fn error(what: &str, e: kube::Error) -> FleetError {
    match e {
        kube::Error::Api(status) => {
            let msg = if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
            match status.code {
                404 => FleetError::NotFound(format!("{what}: {msg}")),
                403 | 401 => FleetError::Forbidden(format!("{what}: the cluster refused: {msg}")),
                409 => FleetError::Conflict(format!("{what}: changed by someone else since it was read ({msg})")),
                // A failed JSON-patch `test` is how our preconditions report a race.
                422 if msg.contains("test") => {
                    FleetError::Conflict(format!("{what}: changed by someone else since it was read ({msg})"))
                }
                422 | 400 => FleetError::Rejected(format!("{what}: the cluster rejected the change: {msg}")),
                _ => FleetError::Unavailable(format!("{what}: HTTP {} {msg}", status.code)),
            }
        }
        other => FleetError::Unavailable(format!("{what}: {other}")),
    }
}

/// `kubectl rollout restart`: refuses a paused Deployment, then a strategic merge patch
/// of the `kubectl.kubernetes.io/restartedAt` template annotation (`now` in RFC 3339).
pub async fn restart(t: &Target, now: &str, dry_run: bool) -> FleetResult<Deployment> {
    let d = call("get deployment", t.deployments.get(&t.name)).await?;
    if d.spec.paused.unwrap_or(false) {
        return Err(FleetError::Refused(format!(
            "can't restart paused deployment {} (run rollout resume first)",
            t.name
        )));
    }
    let body = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
    call("restart", t.deployments.patch(&t.name, &patch_params(dry_run), &Patch::Strategic(body))).await
}

/// `kubectl scale --current-replicas=expected`: GET the scale subresource, compare, PUT
/// it back with the same resourceVersion (409 if it changed in between). Refuses when
/// an HPA manages the Deployment, since the HPA would undo a manual scale.
pub async fn scale(t: &Target, replicas: u32, expected: u32, dry_run: bool) -> FleetResult<Scale> {
    if let Some(hpa) = find_autoscaler(t).await? {
        let spec = hpa.spec;
        return Err(FleetError::Refused(format!(
            "the HorizontalPodAutoscaler {} manages {}'s replicas (min {}, max {}) and would undo a manual scale \
             within about 15 s; change its bounds instead (min_replicas / max_replicas)",
            hpa.metadata.name.unwrap_or_default(),
            t.name,
            spec.min_replicas.unwrap_or(1),
            spec.max_replicas
        )));
    }
    let mut current = call("get deployment scale", t.deployments.get_scale(&t.name)).await?;
    let now = current.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if now != expected as i32 {
        return Err(FleetError::Conflict(format!(
            "{} has {now} replicas, not the {expected} the preview was based on; review and try again",
            t.name
        )));
    }
    current.spec.get_or_insert_with(Default::default).replicas = Some(replicas as i32);
    let pp = PostParams { dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    call("scale", t.deployments.replace_scale(&t.name, &pp, &current)).await
}

/// The HPA (autoscaling/v2) whose `scaleTargetRef` is the Deployment.
pub async fn find_autoscaler(t: &Target) -> FleetResult<Option<HorizontalPodAutoscaler>> {
    let list = call("list horizontalpodautoscalers", t.hpas.list(&ListParams::default())).await?;
    Ok(list.items.into_iter().find(|h| {
        let r = &h.spec.scale_target_ref;
        r.kind == "Deployment" && r.name == t.name
    }))
}

/// Changes an HPA's bounds, guarded by `test` operations on the values the preview was
/// based on, so a concurrent edit fails (422) instead of being overwritten.
pub async fn autoscale(
    t: &Target,
    hpa: &str,
    from: (u32, u32),
    to: (u32, u32),
    dry_run: bool,
) -> FleetResult<HorizontalPodAutoscaler> {
    let ops = json!([
        {"op": "test", "path": "/spec/minReplicas", "value": from.0},
        {"op": "test", "path": "/spec/maxReplicas", "value": from.1},
        {"op": "replace", "path": "/spec/minReplicas", "value": to.0},
        {"op": "replace", "path": "/spec/maxReplicas", "value": to.1},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(|e| FleetError::Rejected(e.to_string()))?;
    call("change autoscaler bounds", t.hpas.patch(hpa, &patch_params(dry_run), &Patch::Json::<()>(patch))).await
}

/// What `rollback` did.
#[derive(Debug, PartialEq)]
pub enum Rollback {
    /// Patched to the target revision's template.
    Patched {
        /// The revision returned to.
        revision: u32,
    },
    /// The current template already is the target's: nothing sent (kubectl: "skipped rollback").
    Skipped {
        /// The target revision.
        revision: u32,
    },
}

/// `kubectl rollout undo [--to-revision=N]` (0 = the previous revision), with a `test`
/// of the Deployment's resourceVersion before the replace (kubectl sends none).
pub async fn rollback(t: &Target, to_revision: u32, dry_run: bool) -> FleetResult<Rollback> {
    let d = call("get deployment", t.deployments.get(&t.name)).await?;
    let spec = d.spec.clone();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let lp = ListParams::default().labels(&selector_string(&spec.selector));
    let list = call("list replicasets", t.replicasets.list(&lp)).await?;
    let mut history: Vec<(u32, ReplicaSet)> = list
        .items
        .into_iter()
        .filter(|rs| super::view::controller_uid(&rs.metadata) == Some(uid.as_str()))
        .filter_map(|rs| Some((revision_of(&rs.metadata)?, rs)))
        .collect();
    history.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let target = if to_revision == 0 {
        // The second-highest revision: the one before the current.
        history.get(1)
    } else {
        history.iter().find(|(n, _)| *n == to_revision)
    };
    let Some((revision, rs)) = target else {
        return Err(FleetError::Refused(if to_revision == 0 || history.is_empty() {
            format!("no rollout history found for deployment {}", t.name)
        } else {
            format!("unable to find the specified revision {to_revision} in the history of deployment {}", t.name)
        }));
    };
    let revision = *revision;
    if spec.paused.unwrap_or(false) {
        return Err(FleetError::Refused(format!(
            "you cannot rollback a paused deployment {}; resume it first",
            t.name
        )));
    }
    let mut template = rs.spec.template.clone().unwrap_or_default();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(TEMPLATE_HASH);
    }
    if equal_ignoring_hash(&template, &spec.template) {
        return Ok(Rollback::Skipped { revision });
    }
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    let own = d.metadata.annotations.clone().unwrap_or_default();
    for k in KEEP_ON_ROLLBACK {
        if let Some(v) = own.get(k) {
            annotations.insert(k.into(), v.clone());
        }
    }
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !KEEP_ON_ROLLBACK.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let ops = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": d.metadata.resource_version},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(|e| FleetError::Rejected(e.to_string()))?;
    call("rollback", t.deployments.patch(&t.name, &patch_params(dry_run), &Patch::Json::<()>(patch))).await?;
    Ok(Rollback::Patched { revision })
}

/// kubectl's `EqualIgnoreHash`: templates equal once `pod-template-hash` is removed.
fn equal_ignoring_hash(
    a: &k8s_openapi::api::core::v1::PodTemplateSpec,
    b: &k8s_openapi::api::core::v1::PodTemplateSpec,
) -> bool {
    let strip = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| -> Value {
        let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
        if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
            labels.remove(TEMPLATE_HASH);
            if labels.is_empty() {
                v["metadata"].as_object_mut().map(|m| m.remove("labels"));
            }
        }
        v
    };
    strip(a) == strip(b)
}
