//! A DNS bypass in a cluster: direct targets from Service annotations, and records in
//! external-dns DNSEndpoints read and patched exactly as asserted here.

use super::*;
use crate::dns::RecordSet;
use crate::fleet::cluster::dnsendpoint::{ExternalDns, direct_of, endpoint_of, swap_patch};
use crate::fleet::dns::Records;
use k8s_openapi::api::core::v1::Service;

const SERVICE: &str = "/api/v1/namespaces/prod/services/payments";
const ENDPOINT: &str = "/apis/externaldns.k8s.io/v1alpha1/namespaces/prod/dnsendpoints/public-records";

fn service(annotations: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "payments", "namespace": "prod", "annotations": annotations},
        "spec": {"ports": [{"port": 443}]},
        "status": status
    })
}

fn annotated() -> Value {
    service(
        json!({
            "gatewarden.io/dns-name": "payments.example.com",
            "gatewarden.io/direct-target": "192.0.2.8, 192.0.2.7",
            "gatewarden.io/dns-endpoint": "public-records"
        }),
        json!({}),
    )
}

fn dns_endpoint(targets: Value, owner: Option<&str>) -> Value {
    let mut payments =
        json!({"dnsName": "payments.example.com", "recordType": "A", "targets": targets, "recordTTL": 300});
    if let Some(owner) = owner {
        payments["labels"] = json!({"owner": owner});
    }
    json!({
        "apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
        "metadata": {"name": "public-records", "namespace": "prod", "resourceVersion": "4711", "generation": 3},
        "spec": {"endpoints": [
            {"dnsName": "www.example.com", "recordType": "CNAME", "targets": ["edge-lb.example.net"]},
            payments
        ]},
        "status": {"observedGeneration": 3}
    })
}

fn set(ttl: u32, values: &[&str]) -> RecordSet {
    RecordSet {
        name: "payments.example.com.".into(),
        rtype: "A".into(),
        ttl,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn a_services_annotations_or_its_load_balancer_say_where_its_clients_go_around_the_gateway() {
    let direct = direct_of(&serde_json::from_value::<Service>(annotated()).unwrap()).unwrap();
    assert_eq!(direct.record, set(60, &["192.0.2.7", "192.0.2.8"]));
    assert_eq!(direct.health.as_deref(), Some("https://payments.example.com/healthz"));
    // Without a target annotation: the LoadBalancer's addresses, or its host name.
    let lb = |ingress: Value| {
        let s = service(
            json!({"gatewarden.io/dns-name": "payments.example.com.", "gatewarden.io/direct-health-url": "http://payments.example.com:8080/ready"}),
            json!({"loadBalancer": {"ingress": ingress}}),
        );
        direct_of(&serde_json::from_value::<Service>(s).unwrap())
    };
    let by_ip = lb(json!([{"ip": "198.51.100.4"}])).unwrap();
    assert_eq!(by_ip.record.values, ["198.51.100.4"]);
    assert_eq!(by_ip.health.as_deref(), Some("http://payments.example.com:8080/ready"));
    let by_name = lb(json!([{"hostname": "payments-nlb.elb.example.net"}])).unwrap();
    assert_eq!(
        (by_name.record.rtype.as_str(), by_name.record.values[0].as_str()),
        ("CNAME", "payments-nlb.elb.example.net.")
    );
    assert_eq!(lb(json!([])), None, "nowhere to send its clients");
    let unnamed = service(json!({"gatewarden.io/direct-target": "192.0.2.7"}), json!({}));
    assert_eq!(direct_of(&serde_json::from_value::<Service>(unnamed).unwrap()), None, "no public name: no part in it");
}

#[test]
fn the_patch_tests_the_version_and_the_record_as_read_before_it_changes_targets_and_ttl() {
    let object = dns_endpoint(json!(["10.0.0.9", "10.0.0.8"]), None);
    let (index, record, owner) = endpoint_of(&object, "payments.example.com.").unwrap();
    assert_eq!((index, owner), (1, None));
    assert_eq!(record, set(300, &["10.0.0.8", "10.0.0.9"]));
    assert_eq!(
        swap_patch(&object, 1, &set(60, &["192.0.2.7", "192.0.2.8"])),
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "4711"},
            {"op": "test", "path": "/spec/endpoints/1/dnsName", "value": "payments.example.com"},
            {"op": "test", "path": "/spec/endpoints/1/targets", "value": ["10.0.0.9", "10.0.0.8"]},
            {"op": "test", "path": "/spec/endpoints/1/recordType", "value": "A"},
            {"op": "test", "path": "/spec/endpoints/1/recordTTL", "value": 300},
            {"op": "replace", "path": "/spec/endpoints/1/targets", "value": ["192.0.2.7", "192.0.2.8"]},
            {"op": "replace", "path": "/spec/endpoints/1/recordTTL", "value": 60}
        ])
    );
    assert_eq!(endpoint_of(&object, "orders.example.com"), None);
}

fn external_dns(owner: Option<&str>) -> (ExternalDns, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "prod");
    (ExternalDns::new(client, owner.map(String::from), Duration::from_secs(5)), handle)
}

#[tokio::test]
async fn a_record_is_read_from_the_dns_endpoint_the_service_names() {
    let (records, handle) = external_dns(Some("prod-cluster"));
    let server = verifier(
        handle,
        vec![
            expect("GET", SERVICE).reply(200, annotated()),
            expect("GET", ENDPOINT).reply(200, dns_endpoint(json!(["10.0.0.8"]), Some("prod-cluster"))),
        ],
    );
    let record = records.read("prod", "payments").await.unwrap();
    drop(records);
    finish(server).await;
    assert_eq!(record.current, Some(set(300, &["10.0.0.8"])));
    assert_eq!(record.direct, set(60, &["192.0.2.7", "192.0.2.8"]));
    assert_eq!(record.problem, None);
    assert!(record.note.unwrap().contains("external-dns publishes it at its next sync"));
}

#[tokio::test]
async fn a_preview_is_a_dry_run_patch_and_the_change_the_same_patch_for_real() {
    for dry_run in [true, false] {
        let (records, handle) = external_dns(None);
        let uri = if dry_run {
            "/apis/externaldns.k8s.io/v1alpha1/namespaces/prod/dnsendpoints/public-records?&dryRun=All&fieldManager=gatewarden"
        } else {
            "/apis/externaldns.k8s.io/v1alpha1/namespaces/prod/dnsendpoints/public-records?&fieldManager=gatewarden"
        };
        let object = dns_endpoint(json!(["10.0.0.8"]), None);
        let server = verifier(
            handle,
            vec![
                expect("GET", SERVICE).reply(200, annotated()),
                expect("GET", ENDPOINT).reply(200, object.clone()),
                expect("PATCH", uri)
                    .body(JSON_PATCH, swap_patch(&object, 1, &set(60, &["192.0.2.7", "192.0.2.8"])))
                    .reply(200, object.clone()),
            ],
        );
        let (from, to) = (set(300, &["10.0.0.8"]), set(60, &["192.0.2.7", "192.0.2.8"]));
        records.swap("prod", "payments", &from, &to, dry_run).await.unwrap();
        drop(records);
        finish(server).await;
    }
}

#[tokio::test]
async fn a_record_changed_since_or_owned_by_another_external_dns_is_not_patched() {
    let (from, to) = (set(300, &["10.0.0.8"]), set(60, &["192.0.2.7", "192.0.2.8"]));
    // Someone pointed it elsewhere after the preview: refused before any PATCH.
    let (records, handle) = external_dns(None);
    let server = verifier(
        handle,
        vec![
            expect("GET", SERVICE).reply(200, annotated()),
            expect("GET", ENDPOINT).reply(200, dns_endpoint(json!(["10.9.9.9"]), None)),
        ],
    );
    let e = records.swap("prod", "payments", &from, &to, false).await.unwrap_err();
    drop(records);
    finish(server).await;
    assert!(matches!(&e, FleetError::Conflict(m) if m.contains("changed since it was read")), "{e:?}");

    // Another external-dns instance's record: left alone.
    let (records, handle) = external_dns(Some("prod-cluster"));
    let server = verifier(
        handle,
        vec![
            expect("GET", SERVICE).reply(200, annotated()),
            expect("GET", ENDPOINT).reply(200, dns_endpoint(json!(["10.0.0.8"]), Some("staging-cluster"))),
        ],
    );
    let e = records.swap("prod", "payments", &from, &to, false).await.unwrap_err();
    drop(records);
    finish(server).await;
    assert!(
        matches!(&e, FleetError::Conflict(m) if m.contains("belongs to external-dns owner 'staging-cluster'")),
        "{e:?}"
    );

    // The API server's own test failing (a write between our GET and PATCH): 409.
    let (records, handle) = external_dns(None);
    let object = dns_endpoint(json!(["10.0.0.8"]), None);
    let server = verifier(
        handle,
        vec![
            expect("GET", SERVICE).reply(200, annotated()),
            expect("GET", ENDPOINT).reply(200, object.clone()),
            expect("PATCH", "/apis/externaldns.k8s.io/v1alpha1/namespaces/prod/dnsendpoints/public-records?&fieldManager=gatewarden")
                .body(JSON_PATCH, swap_patch(&object, 1, &to))
                .reply(422, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
                    "reason": "Invalid", "message": "the server rejected our request due to an error in our request: test operation failed"})),
        ],
    );
    let e = records.swap("prod", "payments", &from, &to, false).await.unwrap_err();
    drop(records);
    finish(server).await;
    assert!(matches!(e, FleetError::Conflict(_)), "{e:?}");
}

#[tokio::test]
async fn publication_is_followed_until_external_dns_has_observed_the_change() {
    let (records, handle) = external_dns(None);
    let mut unseen = dns_endpoint(json!(["192.0.2.7"]), None);
    unseen["metadata"]["generation"] = json!(4);
    let mut seen = unseen.clone();
    seen["status"]["observedGeneration"] = json!(4);
    let server = verifier(
        handle,
        vec![
            expect("GET", SERVICE).reply(200, annotated()),
            expect("GET", ENDPOINT).reply(200, unseen),
            expect("GET", SERVICE).reply(200, annotated()),
            expect("GET", ENDPOINT).reply(200, seen),
        ],
    );
    let mut rounds = records.follow("prod", "payments", &set(300, &["10.0.0.8"]), &set(60, &["192.0.2.7"]));
    let first = rounds.recv().await.unwrap();
    assert_eq!((first.finished, first.by.as_deref()), (None, Some("external-dns")));
    let last = rounds.recv().await.unwrap();
    assert!(matches!(last.finished, Some(Ok(_))), "{last:?}");
    assert_eq!(last.serving, ["external-dns"]);
    drop(records);
    finish(server).await;
}
