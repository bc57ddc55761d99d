//! The DNS layer of the bypass (issue 17) against a real authoritative server: Debian's
//! BIND 9 (`named`), started here on a loopback port with a zone, a TSIG key and an
//! update policy that lets that key change A records in the zone.

use crate::support::{Backend, Options, Session, TestApp, assert_error};
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::dns::{Dns, DnsError, RecordSet, TsigKey};
use server::fleet::sim::Scenario;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ZONE: &str = "gw.test.";

/// A `named` serving `gw.test` from a temporary directory.
struct Named {
    addr: SocketAddr,
    key: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both TCP and UDP on 127.0.0.1.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn tsig_keygen(name: &str) -> String {
    let out = Command::new("tsig-keygen")
        .args(["-a", "hmac-sha256", name])
        .output()
        .expect("tsig-keygen (Debian's bind9 package; the README's test command installs it)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

impl Named {
    /// Starts `named` as the zone's primary and waits until it serves the zone (it listens
    /// before the zone has loaded, answering SERVFAIL meanwhile).
    async fn start() -> Named {
        Self::start_on(free_port(), None, None).await
    }

    /// `named` on `port`: a primary that notifies a secondary on port `notify` of every
    /// change, or (with `primary`) a secondary that transfers the zone from that port.
    async fn start_on(port: u16, notify: Option<u16>, primary: Option<u16>) -> Named {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let key = tsig_keygen("gatewarden");
        std::fs::write(dir.path().join("key.conf"), &key).unwrap();
        std::fs::write(
            dir.path().join("zone"),
            "$TTL 300\n@ IN SOA ns.gw.test. admin.gw.test. 1 60 60 600 60\n@ IN NS ns.gw.test.\nns IN A 127.0.0.1\n\
             payments 300 IN A 127.0.1.1\npayments-direct 60 IN A 127.0.2.1\nbilling 120 IN A 127.0.1.1\n\
             billing 120 IN A 127.0.1.2\ncart 4 IN A 127.0.1.1\n",
        )
        .unwrap();
        let zone = match (notify, primary) {
            (_, Some(primary)) => format!(
                "zone \"gw.test\" {{ type secondary; file \"{d}/secondary\"; primaries {{ 127.0.0.1 port {primary}; }}; }};\n"
            ),
            (Some(secondary), None) => format!(
                "zone \"gw.test\" {{ type primary; file \"{d}/zone\"; update-policy {{ grant gatewarden zonesub A; }};\n\
                 notify explicit; also-notify {{ 127.0.0.1 port {secondary}; }}; allow-transfer {{ 127.0.0.1; }}; }};\n"
            ),
            (None, None) => format!(
                "zone \"gw.test\" {{ type primary; file \"{d}/zone\"; update-policy {{ grant gatewarden zonesub A; }}; }};\n"
            ),
        };
        std::fs::write(
            dir.path().join("named.conf"),
            format!(
                "include \"{d}/key.conf\";\n\
                 options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }};\n\
                 listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; notify-source 127.0.0.1;\n\
                 transfer-source 127.0.0.1; }};\n\
                 controls {{ }};\n{zone}"
            ),
        )
        .unwrap();
        let child = Command::new("named")
            .args(["-g", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("named (Debian's bind9 package; the README's test command installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        let named = Named { addr, key, child, _dir: dir };
        while named.dns().read("payments.gw.test.").await.ok().flatten().is_none() {
            assert!(started.elapsed() < Duration::from_secs(20), "named on {addr} did not serve the zone");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        named
    }

    /// A primary and a secondary on two ports of 127.0.0.1, the primary notifying the
    /// secondary of every change (after BIND's notify delay of 5 s). The zone's NS records
    /// name 127.0.0.1 and 127.0.0.2, as a real zone's two name servers would be named (on
    /// one port); BIND cannot listen on 127.0.0.2 unless it is configured on `lo`, so the
    /// secondary is not there but on the second port.
    async fn start_pair() -> (Named, Named) {
        let (port, second) = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        let key = tsig_keygen("gatewarden");
        let conf = |dir: &std::path::Path, port: u16, zone: String| {
            let ip = "127.0.0.1";
            let d = dir.display();
            std::fs::write(dir.join("key.conf"), &key).unwrap();
            std::fs::write(
                dir.join("named.conf"),
                format!(
                    "include \"{d}/key.conf\";\n\
                     options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ {ip}; }};\n\
                     listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; notify-source {ip};\n\
                     transfer-source {ip}; }};\ncontrols {{ }};\n{zone}"
                ),
            )
            .unwrap();
        };
        let (primary_dir, secondary_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(
            primary_dir.path().join("zone"),
            "$TTL 300\n@ IN SOA ns1.gw.test. admin.gw.test. 1 60 60 600 60\n@ IN NS ns1.gw.test.\n\
             @ IN NS ns2.gw.test.\nns1 IN A 127.0.0.1\nns2 IN A 127.0.0.2\npayments 300 IN A 127.0.1.1\n",
        )
        .unwrap();
        let d = primary_dir.path().display();
        conf(
            primary_dir.path(),
            port,
            format!(
                "zone \"gw.test\" {{ type primary; file \"{d}/zone\"; update-policy {{ grant gatewarden zonesub A; }};\n\
                 notify explicit; also-notify {{ 127.0.0.1 port {second}; }}; allow-transfer {{ 127.0.0.1; }}; }};\n"
            ),
        );
        let d = secondary_dir.path().display();
        conf(
            secondary_dir.path(),
            second,
            format!(
                "zone \"gw.test\" {{ type secondary; file \"{d}/secondary\"; primaries {{ 127.0.0.1 port {port}; }}; }};\n"
            ),
        );
        let mut pair = Vec::new();
        for (port, dir) in [(port, primary_dir), (second, secondary_dir)] {
            let child = Command::new("named")
                .args(["-g", "-c"])
                .arg(dir.path().join("named.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("named (Debian's bind9 package; the README's test command installs it)");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let named = Named { addr, key: key.clone(), child, _dir: dir };
            let started = Instant::now();
            while named.dns().read_at(addr, "payments.gw.test.").await.ok().flatten().is_none() {
                assert!(started.elapsed() < Duration::from_secs(20), "named on {addr} did not serve the zone");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pair.push(named);
        }
        let secondary = pair.pop().unwrap();
        (pair.pop().unwrap(), secondary)
    }

    /// Stops `named` (the zone and its journal stay on disk).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, from what it had written.
    async fn restart(&mut self) {
        self.child = Command::new("named")
            .args(["-g", "-c"])
            .arg(self._dir.path().join("named.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("named starts again");
        let started = Instant::now();
        while self.dns().read("payments.gw.test.").await.ok().flatten().is_none() {
            assert!(started.elapsed() < Duration::from_secs(20), "named did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn dns(&self) -> Dns {
        Dns::new(self.addr, ZONE, Some(TsigKey::parse(&self.key).unwrap())).unwrap()
    }
}

fn set(name: &str, ttl: u32, values: &[&str]) -> RecordSet {
    RecordSet { name: name.into(), rtype: "A".into(), ttl, values: values.iter().map(|v| v.to_string()).collect() }
}

#[tokio::test]
async fn a_signed_swap_changes_the_record_and_the_swap_back_restores_it_exactly() {
    let named = Named::start().await;
    let dns = named.dns();
    let before = dns.read("payments.gw.test.").await.unwrap().expect("the record exists");
    assert_eq!(before, set("payments.gw.test.", 300, &["127.0.1.1"]));
    let direct = dns.read("payments-direct.gw.test.").await.unwrap().unwrap();
    // Clients go to the service's own address, with the direct record's values.
    let bypassed = RecordSet { name: before.name.clone(), ttl: 60, ..direct };
    dns.swap(&before, &bypassed).await.unwrap();
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), bypassed);
    // And back: the exact records and TTL it had.
    dns.swap(&bypassed, &before).await.unwrap();
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), before);
    // A set of two is read and swapped whole.
    let billing = dns.read("billing.gw.test.").await.unwrap().unwrap();
    assert_eq!(billing, set("billing.gw.test.", 120, &["127.0.1.1", "127.0.1.2"]));
    dns.swap(&billing, &set("billing.gw.test.", 30, &["127.0.2.9"])).await.unwrap();
    assert_eq!(dns.read("billing.gw.test.").await.unwrap().unwrap(), set("billing.gw.test.", 30, &["127.0.2.9"]));
    assert_eq!(dns.read("nothing-here.gw.test.").await.unwrap(), None);
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_changes_nothing() {
    let named = Named::start().await;
    let right = named.dns();
    let before = right.read("payments.gw.test.").await.unwrap().unwrap();
    // The same key name with another secret; then a key the server does not know.
    for key in [tsig_keygen("gatewarden"), tsig_keygen("someone-else")] {
        let wrong = Dns::new(named.addr, ZONE, Some(TsigKey::parse(&key).unwrap())).unwrap();
        let e = wrong.swap(&before, &set("payments.gw.test.", 60, &["127.0.2.1"])).await.unwrap_err();
        assert!(matches!(e, DnsError::Refused(_)), "{e:?}");
        assert!(e.to_string().contains("TSIG key"), "{e}");
        assert_eq!(right.read("payments.gw.test.").await.unwrap().unwrap(), before, "nothing changed");
    }
    // No key at all: the update policy refuses it.
    let unsigned = Dns::new(named.addr, ZONE, None).unwrap();
    let e = unsigned.swap(&before, &set("payments.gw.test.", 60, &["127.0.2.1"])).await.unwrap_err();
    assert!(matches!(e, DnsError::Refused(_)), "{e:?}");
    assert_eq!(right.read("payments.gw.test.").await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn a_record_changed_behind_the_consoles_back_is_not_overwritten() {
    let named = Named::start().await;
    let dns = named.dns();
    let read = dns.read("payments.gw.test.").await.unwrap().unwrap();
    // Someone else moves it after the console read it.
    let theirs = set("payments.gw.test.", 300, &["127.0.9.9"]);
    dns.swap(&read, &theirs).await.unwrap();
    let e = dns.swap(&read, &set("payments.gw.test.", 60, &["127.0.2.1"])).await.unwrap_err();
    assert!(matches!(e, DnsError::Changed(_)), "{e:?}");
    assert!(e.to_string().contains("changed on the DNS server since it was read"), "{e}");
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), theirs, "theirs stays");
    // A server that does not answer: a clear error within the exchange timeout.
    let outside = Dns::new("127.0.0.1:9".parse().unwrap(), ZONE, None).unwrap();
    let started = Instant::now();
    let e = outside.read("payments.gw.test.").await.unwrap_err();
    assert!(matches!(e, DnsError::Unreachable(..)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "gives up within the exchange timeout");
}

#[tokio::test]
async fn propagation_is_followed_until_every_authoritative_server_serves_the_new_answer() {
    // A primary that notifies its secondary of every change, as a real zone's would.
    let (primary_port, secondary_port) = loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            break (a, b);
        }
    };
    let primary = Named::start_on(primary_port, Some(secondary_port), None).await;
    let secondary = Named::start_on(secondary_port, None, Some(primary_port)).await;
    let dns = primary.dns();
    let before = dns.read("payments.gw.test.").await.unwrap().unwrap();
    let after = set("payments.gw.test.", 60, &["127.0.2.1"]);
    dns.swap(&before, &after).await.unwrap();
    let servers = [primary.addr, secondary.addr];
    let mut rounds = Vec::new();
    let took = server::dns::wait_served(&dns, &servers, &after, Duration::from_secs(15), |answers| {
        rounds.push(answers.iter().filter(|(_, ok)| *ok).count())
    })
    .await
    .expect("both serve the new answer");
    assert_eq!(rounds.last(), Some(&2), "{rounds:?}");
    assert_eq!(dns.read_at(secondary.addr, "payments.gw.test.").await.unwrap().unwrap().values, ["127.0.2.1"]);
    eprintln!("propagated to the secondary in {took:?} ({} rounds)", rounds.len());

    // A server that never gets the change (stopped): the wait gives up and names it.
    drop(secondary);
    dns.swap(&after, &before).await.unwrap();
    let pending = server::dns::wait_served(&dns, &servers, &before, Duration::from_secs(1), |_| {}).await.unwrap_err();
    assert_eq!(pending, [servers[1]]);
}

#[tokio::test]
async fn the_zones_name_servers_are_found_from_its_ns_records() {
    let (primary, _secondary) = Named::start_pair().await;
    let ns2: SocketAddr = format!("127.0.0.2:{}", primary.addr.port()).parse().unwrap();
    assert_eq!(primary.dns().authoritative().await.unwrap(), [primary.addr, ns2], "ns1 is the primary itself");
    // A bypass waits for both; nothing answers at 127.0.0.2, so it fails when its deadline
    // passes, naming that server (the record itself is changed on the primary).
    let mut dns = primary.dns();
    dns.deadline = Duration::from_secs(2);
    let app = bypass_app(dns).await;
    let admin = app.signed_in(Role::Admin).await;
    let response =
        bypass(&admin, json!({"reason": "auth layer down", "service": "payments", "method": "dns", "confirm": "edge"}))
            .await;
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let action = crate::support::eventually_within(Duration::from_secs(15), "the deadline", || async {
        let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        (action["status"] != "running").then_some(action)
    })
    .await;
    assert_eq!(action["status"], "failed", "{action}");
    let detail = action["detail"].as_str().unwrap();
    assert!(detail.starts_with(&format!("not served by {ns2} after 2 s (1 of 2 serve it)")), "{detail}");
    assert!(detail.ends_with("the primary has the new record, and undo puts the old one back"), "{detail}");
    assert_eq!(action["undo_available"], true, "the record was changed on the primary, and can be put back");
    assert_eq!(primary.dns().read("payments.gw.test.").await.unwrap().unwrap().values, ["127.0.2.7"]);
    let single = Named::start().await;
    assert_eq!(single.dns().authoritative().await.unwrap(), [single.addr], "ns.gw.test is the primary itself");
}

#[tokio::test]
async fn a_dns_bypass_runs_until_every_name_server_serves_it_and_the_record_says_how_long_it_took() {
    let (primary, mut secondary) = Named::start_pair().await;
    let mut dns = primary.dns();
    dns.deadline = Duration::from_secs(8);
    // `--dns-check-server`: the zone's NS records name 127.0.0.2, where no server listens.
    dns.name_servers = vec![secondary.addr];
    let app = bypass_app(dns).await;
    let admin = app.signed_in(Role::Admin).await;
    let mut events = Events { stream: crate::replicas::open(&admin, None).await, buffer: String::new() };
    let response =
        bypass(&admin, json!({"reason": "auth layer down", "service": "payments", "method": "dns", "confirm": "edge"}))
            .await;
    assert_eq!(response.status(), 202);
    let started = response.json::<Value>().await.unwrap();
    assert_eq!(started["status"], "running", "served by the primary only, so far: {started}");
    let id = started["id"].as_i64().unwrap();

    // While the secondary has not picked it up (BIND notifies after 5 s), the action says
    // who serves it and who does not, live.
    let waiting = events
        .next_action(|a| a["id"] == id && a["detail"].as_str().unwrap_or_default().starts_with("propagating"))
        .await;
    assert_eq!(waiting["status"], "running");
    assert_eq!(
        waiting["detail"],
        format!("propagating: 1 of 2 DNS servers serve the new record; waiting for {}", secondary.addr)
    );
    let done = events.next_action(|a| a["id"] == id && a["status"] != "running").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let detail = done["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("served by all 2 DNS servers asked ({}, {}) after ", primary.addr, secondary.addr)),
        "{detail}"
    );
    let on_record = admin.get_json("/api/v1/audit?kind=propagation").await;
    let entry = &on_record["entries"][0];
    assert_eq!((entry["outcome"].as_str(), entry["actor"].as_str()), (Some("succeeded"), Some("system")), "{entry}");
    let params: Value = serde_json::from_str(entry["params"].as_str().unwrap()).unwrap();
    let elapsed = params["elapsed_ms"].as_u64().unwrap();
    assert!((4_000..8_000).contains(&elapsed), "BIND notifies after 5 s: {elapsed} ms");
    assert_eq!(entry["intent_id"], admin.get_json(&format!("/api/v1/actions/{id}")).await["intent_id"]);

    // The secondary stops: the undo is made on the primary, never served by the
    // secondary, and fails when the deadline passes, saying who did not serve it.
    secondary.stop();
    let undo =
        admin.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "auth is back", "confirm": "edge"})).await;
    assert_eq!(undo.status(), 202);
    let undo_id = undo.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let failed = events.next_action(|a| a["id"] == undo_id && a["status"] != "running").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.starts_with(&format!("not served by {} after 8 s (1 of 2 serve it)", secondary.addr)), "{detail}");
    assert!(detail.ends_with("the primary has the new record"), "{detail}");
    assert_eq!(primary.dns().read("payments.gw.test.").await.unwrap().unwrap().values, ["127.0.1.1"]);
    let on_record = admin.get_json("/api/v1/audit?kind=propagation").await;
    assert_eq!(on_record["entries"][0]["outcome"], "failed", "{on_record}");
    let params: Value = serde_json::from_str(on_record["entries"][0]["params"].as_str().unwrap()).unwrap();
    assert_eq!(params["pending"], json!([secondary.addr.to_string()]));
}

/// The signed-in user's event stream.
struct Events {
    stream: crate::replicas::Bytes,
    buffer: String,
}

impl Events {
    /// The next `action` event whose record matches `wanted`.
    async fn next_action(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let (_, data) = crate::replicas::next_event(&mut self.stream, &mut self.buffer, "action").await;
            let record: Value = serde_json::from_str(&data).unwrap();
            if wanted(&record) {
                return record;
            }
        }
    }
}

async fn bypass_app(dns: Dns) -> TestApp {
    let mut options = Options::new(Backend::Sqlite).scenario(Scenario::AuthFailure);
    options.dns = Some(dns);
    TestApp::spawn_with(options).await
}

/// A DNS bypass of payments around edge, with `extra` fields.
fn payments_by_dns(extra: Value) -> Value {
    let mut b = json!({"reason": "auth layer down", "service": "payments", "method": "dns", "confirm": "edge"});
    b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    b
}

async fn bypass(admin: &Session, body: Value) -> reqwest::Response {
    admin.post("/api/v1/gateways/edge/actions/bypass", &body).await
}

#[tokio::test]
async fn an_admin_bypasses_payments_by_dns_and_undo_restores_the_record_exactly() {
    let named = Named::start().await;
    let dns = named.dns();
    let original = dns.read("payments.gw.test.").await.unwrap().unwrap();
    let app = bypass_app(named.dns()).await;
    let admin = app.signed_in(Role::Admin).await;
    let body = payments_by_dns;

    // The preview shows the RRset before and after, and when clients will have moved.
    let preview: Value = bypass(&admin, body(json!({"dry_run": true}))).await.json().await.unwrap();
    let change = &preview["preview"]["changes"][0];
    assert_eq!(change["field"], "DNS payments.gw.test. A", "{preview}");
    assert_eq!(change["before"], "payments.gw.test. 300 IN A 127.0.1.1");
    assert_eq!(change["after"], "payments.gw.test. 60 IN A 127.0.2.7", "payments' own loopback address");
    let warnings = preview["preview"]["warnings"].to_string();
    assert!(warnings.contains("all within 300 s"), "{warnings}");
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), original, "a preview changes nothing");

    let response = bypass(&admin, body(json!({}))).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let bypassed = dns.read("payments.gw.test.").await.unwrap().unwrap();
    assert_eq!(bypassed, set("payments.gw.test.", 60, &["127.0.2.7"]));
    // The zone has one name server, the primary: served everywhere at once.
    let action = crate::support::eventually("the propagation", || async {
        let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        (action["status"] != "running").then_some(action)
    })
    .await;
    assert_eq!(action["status"], "succeeded", "{action}");
    assert!(action["detail"].as_str().unwrap().starts_with("served by the one DNS server asked"), "{action}");

    // Undo puts back exactly what was there: records and TTL.
    let undo =
        admin.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "auth is back", "confirm": "edge"})).await;
    assert_eq!(undo.status(), 202, "{}", undo.text().await.unwrap());
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), original);

    // Again; then someone moves the record behind the console's back: undo refuses and
    // leaves theirs, on the record.
    let id = bypass(&admin, body(json!({}))).await.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let theirs = set("payments.gw.test.", 300, &["127.0.9.9"]);
    dns.swap(&bypassed, &theirs).await.unwrap();
    let undo = admin.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "done", "confirm": "edge"})).await;
    let message = assert_error(undo, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("changed since"), "{message}");
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), theirs);
    let audit = admin.get_json("/api/v1/audit?action=bypass").await;
    assert!(audit["entries"].as_array().unwrap().len() >= 4, "{audit}");
}

#[tokio::test]
async fn a_dns_bypass_with_a_key_the_server_refuses_is_a_502_on_the_record_and_changes_nothing() {
    let named = Named::start().await;
    let original = named.dns().read("payments.gw.test.").await.unwrap().unwrap();
    let wrong = Dns::new(named.addr, ZONE, Some(TsigKey::parse(&tsig_keygen("gatewarden")).unwrap())).unwrap();
    let app = bypass_app(wrong).await;
    let admin = app.signed_in(Role::Admin).await;
    let response =
        bypass(&admin, json!({"reason": "auth layer down", "service": "payments", "method": "dns", "confirm": "edge"}))
            .await;
    let message = assert_error(response, StatusCode::BAD_GATEWAY, "backend_refused").await;
    assert!(message.contains("refused the console's TSIG key gatewarden"), "{message}");
    assert_eq!(named.dns().read("payments.gw.test.").await.unwrap().unwrap(), original, "nothing changed");
    let audit = admin.get_json("/api/v1/audit?action=bypass").await;
    let outcomes: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["failed", "pending"], "the intent before, the failure after: {audit}");
}

#[tokio::test]
async fn without_a_dns_server_a_dns_bypass_says_what_to_configure_and_route_stays_the_default() {
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).scenario(Scenario::AuthFailure)).await;
    let admin = app.signed_in(Role::Admin).await;
    let response = bypass(
        &admin,
        json!({"reason": "r", "service": "payments", "method": "dns", "confirm": "edge", "dry_run": true}),
    )
    .await;
    let message = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("--dns-server and --dns-zone"), "{message}");
    let response =
        bypass(&admin, json!({"reason": "r", "service": "payments", "method": "carrier-pigeon", "confirm": "edge"}))
            .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let preview: Value =
        bypass(&admin, json!({"reason": "r", "service": "payments", "confirm": "edge", "dry_run": true}))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(preview["preview"]["changes"][0]["after"], "direct", "a route bypass: {preview}");
}

#[tokio::test]
async fn after_a_dns_bypass_clients_move_as_caches_expire_not_at_once() {
    let named = Named::start().await;
    let app = bypass_app(named.dns()).await;
    let admin = app.signed_in(Role::Admin).await;
    let before = app.gateway("edge").await;
    // Payments' clients through edge fail at its broken auth layer (those through partner
    // do not): `failing` is the share of them that fails.
    let served = app.sim().client_success("payments").unwrap();
    assert!(served < 0.5, "payments fails through edge's broken auth layer: {served}");
    let failing = 1.0 - served;
    let response =
        bypass(&admin, json!({"reason": "auth layer down", "service": "payments", "method": "dns", "confirm": "edge"}))
            .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    // The old record's TTL is 300 s: a tenth of the way in, about a tenth of edge's
    // payments clients have moved; 180 s in, about 60 %; after 300 s, all.
    let moved = |success: f64| (success - served) / failing;
    app.advance(30).await;
    let early = moved(app.sim().client_success("payments").unwrap());
    assert!((0.03..0.25).contains(&early), "30 s in: {early:.2} moved");
    app.advance(150).await;
    let half = moved(app.sim().client_success("payments").unwrap());
    assert!((0.45..0.75).contains(&half), "180 s in: {half:.2} moved");
    app.advance(150).await;
    let all = app.sim().client_success("payments").unwrap();
    assert!(all > 0.99, "every cache has expired: {all}");
    let after = app.gateway("edge").await;
    assert!(
        after.rps.unwrap() < before.rps.unwrap() * 0.97,
        "payments no longer passes the gateway: {} -> {}",
        before.rps.unwrap(),
        after.rps.unwrap()
    );
}

/// A DNS bypass of payments with a 60 s time limit, accepted; its action id.
async fn bypass_payments_for_a_minute(admin: &Session) -> i64 {
    let response = bypass(
        admin,
        json!({"reason": "auth layer down", "service": "payments", "method": "dns", "confirm": "edge",
               "ttl_seconds": 60}),
    )
    .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_dns_bypass_with_a_time_limit_puts_the_record_back_exactly_when_it_expires() {
    let named = Named::start().await;
    let dns = named.dns();
    let original = dns.read("payments.gw.test.").await.unwrap().unwrap();
    let app = bypass_app(named.dns()).await;
    let admin = app.signed_in(Role::Admin).await;
    let id = bypass_payments_for_a_minute(&admin).await;
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap().values, ["127.0.2.7"]);
    app.advance(61).await;
    crate::support::eventually("the revert", || async {
        let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        action["detail"].as_str().unwrap_or_default().contains("reverted when its time limit").then_some(())
    })
    .await;
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), original, "records and TTL as they were");
    let reverts = admin.get_json("/api/v1/audit?kind=ttl_revert").await;
    assert_eq!(reverts["entries"].as_array().unwrap().len(), 1, "{reverts}");
    assert_eq!(reverts["entries"][0]["actor"], "system");
}

#[tokio::test]
async fn an_expiry_while_the_dns_server_is_down_is_retried_not_abandoned() {
    let mut named = Named::start().await;
    let original = named.dns().read("payments.gw.test.").await.unwrap().unwrap();
    let app = bypass_app(named.dns()).await;
    let admin = app.signed_in(Role::Admin).await;
    let id = bypass_payments_for_a_minute(&admin).await;
    crate::support::eventually("the propagation", || async {
        let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        (action["status"] == "succeeded").then_some(())
    })
    .await;

    // The DNS server is down when the time limit passes: the revert waits and says why
    // (it was not "changed since"), and an undo is refused with the reason.
    named.stop();
    app.advance(61).await;
    let detail = crate::support::eventually_within(Duration::from_secs(15), "the revert to wait", || async {
        let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        let detail = action["detail"].as_str().unwrap_or_default().to_string();
        detail.starts_with("revert pending").then_some(detail)
    })
    .await;
    assert!(detail.contains("did not answer"), "{detail}");
    let undo = admin.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "now", "confirm": "edge"})).await;
    let message = assert_error(undo, StatusCode::BAD_GATEWAY, "backend_refused").await;
    assert!(message.contains("cannot be undone now"), "{message}");

    // Back up: the next try puts the record back exactly.
    named.restart().await;
    assert_eq!(named.dns().read("payments.gw.test.").await.unwrap().unwrap().values, ["127.0.2.7"]);
    app.advance(10).await;
    crate::support::eventually("the revert", || async {
        let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        action["detail"].as_str().unwrap_or_default().contains("reverted when its time limit").then_some(())
    })
    .await;
    assert_eq!(named.dns().read("payments.gw.test.").await.unwrap().unwrap(), original);
}

#[tokio::test]
async fn a_direct_target_that_fails_its_preflight_is_refused_on_the_record_unless_an_admin_says_why_to_go_ahead() {
    let named = Named::start().await;
    let dns = named.dns();
    let original = dns.read("payments.gw.test.").await.unwrap().unwrap();
    let app = bypass_app(named.dns()).await;
    let admin = app.signed_in(Role::Admin).await;
    let body = payments_by_dns;

    // Payments answers its health path on its own address: the preview says so.
    let preview: Value = bypass(&admin, body(json!({"dry_run": true}))).await.json().await.unwrap();
    let first = preview["preview"]["warnings"][0].as_str().unwrap();
    assert!(first.starts_with("Preflight passed: GET http://payments.gw.test:"), "{first}");
    assert!(first.contains("/healthz at 127.0.2.7:") && first.contains("answered 200"), "{first}");

    // Payments itself goes down: sending its clients there would not help them.
    app.sim().fail_service("payments", 0.9, 3600);
    for extra in [json!({}), json!({"dry_run": true})] {
        let response = bypass(&admin, body(extra)).await;
        let message = assert_error(response, StatusCode::CONFLICT, "conflict").await;
        assert!(message.starts_with("preflight failed: GET http://payments.gw.test:"), "{message}");
        assert!(message.contains("answered 503, not 2xx; nothing was changed"), "{message}");
    }
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap(), original, "nothing changed");
    let denied = admin.get_json("/api/v1/audit?action=bypass&outcome=denied").await;
    let refused = denied["entries"][0]["params"].as_str().unwrap();
    assert!(refused.contains("preflight failed") && refused.contains("answered 503"), "{denied}");

    // `force` must say why; then it goes ahead, and the record says what was overridden.
    for bad in [json!({"force": "x"}), json!({"force": true})] {
        assert_error(bypass(&admin, body(bad)).await, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    }
    let route =
        bypass(&admin, json!({"reason": "r", "service": "payments", "confirm": "edge", "force": "because"})).await;
    assert_error(route, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let forced = bypass(&admin, body(json!({"force": "its health check is broken, orders still go through"}))).await;
    assert_eq!(forced.status(), 202, "{}", forced.text().await.unwrap());
    let forced: Value = forced.json().await.unwrap();
    let first = forced["preview"]["warnings"][0].as_str().unwrap();
    assert!(
        first.starts_with(
            "Preflight failed and is overridden (force: its health check is broken, orders still go through): GET"
        ),
        "{first}"
    );
    assert_eq!(dns.read("payments.gw.test.").await.unwrap().unwrap().values, ["127.0.2.7"]);
    let intents = admin.get_json("/api/v1/audit?action=bypass&kind=action_intent&outcome=pending").await;
    assert!(intents["entries"][0]["after_state"].as_str().unwrap().contains("Preflight failed and is overridden"));
}

#[tokio::test]
async fn the_impact_reading_and_the_gateway_page_show_a_bypassed_services_own_clients_both_ways() {
    let named = Named::start().await;
    let app = bypass_app(named.dns()).await;
    let admin = app.signed_in(Role::Admin).await;
    // Edge's auth layer fails every request: orders is bypassed inside the gateway (at
    // once), payments by its DNS record (its clients follow as caches expire, over 300 s).
    let mut ids = Vec::new();
    for (service, method) in [("orders", "route"), ("payments", "dns")] {
        let response = bypass(
            &admin,
            json!({"reason": "auth layer down", "service": service, "method": method, "confirm": "edge"}),
        )
        .await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        ids.push(response.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    let before = |a: &Value| a["impact_before"]["service"].clone();
    for id in &ids {
        let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        let service = before(&action);
        assert!(service["success"].as_f64().unwrap() < 0.05, "everything fails through edge: {action}");
        assert_eq!(service["direct_share"], 0.0);
    }
    app.advance(61).await;
    let after = |id: i64| {
        let admin = &admin;
        async move {
            crate::support::eventually("the impact reading", || async {
                let action = admin.get_json(&format!("/api/v1/actions/{id}")).await;
                (!action["impact_after"].is_null()).then(|| action["impact_after"]["service"].clone())
            })
            .await
        }
    };
    // A minute on, every client of orders goes direct; about a fifth of payments' do.
    let (orders, payments) = (after(ids[0]).await, after(ids[1]).await);
    assert_eq!(orders["direct_share"], 1.0, "{orders}");
    assert!(orders["success"].as_f64().unwrap() > 0.99, "{orders}");
    let moved = payments["direct_share"].as_f64().unwrap();
    assert!((0.15..0.26).contains(&moved), "61 of 300 s: {payments}");
    assert!((payments["success"].as_f64().unwrap() - moved).abs() < 0.03, "only those moved are served: {payments}");

    // The gateway page says the same, live, with each way's success and latency.
    let detail = admin.get_json("/api/v1/gateways/edge").await;
    assert_eq!(detail["status"], "critical", "everything else still fails through the broken auth layer");
    let bypasses = detail["bypasses"].as_array().unwrap();
    let of = |name: &str| bypasses.iter().find(|b| b["service"] == name).cloned().unwrap();
    let (orders, payments) = (of("orders"), of("payments"));
    assert_eq!((orders["how"].as_str(), payments["how"].as_str()), (Some("route"), Some("dns")));
    assert!(orders["impact"]["via_gateway_success"].is_null(), "none of orders' clients pass edge: {orders}");
    assert!(orders["impact"]["direct_p99_ms"].as_f64().unwrap() > 0.0);
    let p = &payments["impact"];
    assert!(p["direct_success"].as_f64().unwrap() > 0.99, "{payments}");
    assert!(p["via_gateway_success"].as_f64().unwrap() < 0.05, "{payments}");
    assert!(p["via_gateway_p99_ms"].as_f64().is_some() && p["direct_p99_ms"].as_f64().is_some(), "{payments}");
    let live = app.state.health.snapshot().await.unwrap();
    let edge = live.gateways.iter().find(|g| g.summary.id == "edge").unwrap();
    assert_eq!(edge.bypasses.len(), 2, "the live feed carries them too");
}

#[tokio::test]
async fn in_a_cluster_the_services_annotations_name_its_record_and_direct_target_on_the_zones_primary() {
    use axum::routing::get;
    use server::fleet::cluster::fake;
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(socket, axum::Router::new().route("/healthz", get(|| async { "ok" }))).await;
    });
    let named = Named::start().await;
    let original = named.dns().read("payments.gw.test.").await.unwrap().unwrap();
    let cluster = fake::with_policy();
    cluster.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "payments", "namespace": "prod", "annotations": {
            "gatewarden.io/dns-name": "payments.gw.test",
            "gatewarden.io/direct-target": "127.0.0.1",
            "gatewarden.io/direct-health-url": format!("http://payments.gw.test:{port}/healthz")}},
        "spec": {"type": "ClusterIP"}
    }));
    let mut options = Options::new(Backend::Sqlite);
    options.kube = Some(server::startup::InjectedClient(cluster.client("prod")));
    options.dns = Some(named.dns());
    options.probe_allow = vec![format!("127.0.0.1:{port}")];
    let app = TestApp::spawn_with(options).await;
    let admin = app.signed_in(Role::Admin).await;
    crate::support::eventually_within(Duration::from_secs(10), "the first list", || async {
        let list = admin.get_json("/api/v1/gateways").await;
        (list.as_array().is_some_and(|l| l.len() == 2)).then_some(())
    })
    .await;
    let response = admin
        .post(
            "/api/v1/gateways/prod:edge/actions/bypass",
            &json!({"reason": "edge down", "service": "payments", "method": "dns", "confirm": "edge"}),
        )
        .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let reply: Value = response.json().await.unwrap();
    let (id, preview) = (reply["id"].as_i64().unwrap(), &reply["preview"]);
    assert_eq!(preview["changes"][0]["after"], "payments.gw.test. 60 IN A 127.0.0.1", "{preview}");
    assert_eq!(
        named.dns().read("payments.gw.test.").await.unwrap().unwrap(),
        set("payments.gw.test.", 60, &["127.0.0.1"])
    );
    let undo = admin.post(&format!("/api/v1/actions/{id}/undo"), &json!({"reason": "back", "confirm": "edge"})).await;
    assert_eq!(undo.status(), 202, "{}", undo.text().await.unwrap());
    assert_eq!(named.dns().read("payments.gw.test.").await.unwrap().unwrap(), original);
}

/// An https server on 127.0.0.1 whose certificate (self-signed, made by Debian's openssl)
/// names `name`; its port.
async fn tls_server(name: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", &format!("/CN={name}"), "-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.path().join("cert.pem")).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(dir.path().join("key.pem")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = socket.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn an_https_direct_target_must_hold_a_certificate_valid_for_the_public_name() {
    use server::probe::{Allowed, Guard, Probes};
    let port = tls_server("payments.example.com").await;
    let probes = Probes::new(Guard::new(vec![Allowed::parse(&format!("127.0.0.1:{port}")).unwrap()]));
    // The target answers on the public name, but with a certificate no client trusts:
    // clients sent there would fail, so the preflight does.
    let url = format!("https://payments.example.com:{port}/healthz");
    let e = probes.preflight(&url, "127.0.0.1").await.unwrap_err();
    assert!(e.starts_with(&format!("GET {url} at 127.0.0.1:{port} failed:")), "{e}");
    assert!(e.to_ascii_lowercase().contains("certificate"), "{e}");
    // And a target on the console's own host that is not listed is not asked at all.
    let unlisted = Probes::new(Guard::new(vec![]));
    let e = unlisted.preflight(&url, "127.0.0.1").await.unwrap_err();
    assert!(e.contains("on the console's own host"), "{e}");
}

/// A caching resolver (BIND) that forwards every question to `upstream`.
fn start_resolver(upstream: SocketAddr) -> (SocketAddr, Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("named.conf"),
        format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }};\n\
             listen-on-v6 {{ none; }}; recursion yes; allow-recursion {{ 127.0.0.1; }}; dnssec-validation no;\n\
             forward only; forwarders {{ {} port {}; }}; }};\ncontrols {{ }};\n",
            upstream.ip(),
            upstream.port()
        ),
    )
    .unwrap();
    let child = Command::new("named")
        .args(["-g", "-c"])
        .arg(dir.path().join("named.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("named");
    (format!("127.0.0.1:{port}").parse().unwrap(), child, dir)
}

#[tokio::test]
async fn a_resolver_asked_too_serves_the_change_only_when_its_cached_copy_expires() {
    let named = Named::start().await;
    let (resolver, mut child, _dir) = start_resolver(named.addr);
    let dns = named.dns();
    // The resolver caches cart's record (TTL 4 s) on the first question.
    let started = Instant::now();
    loop {
        if let Ok(Some(cached)) = dns.read_at(resolver, "cart.gw.test.").await {
            assert_eq!(cached.values, ["127.0.1.1"]);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the resolver never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut with_resolver = named.dns();
    with_resolver.resolvers = vec![resolver];
    let app = bypass_app(with_resolver).await;
    let admin = app.signed_in(Role::Admin).await;
    let response =
        bypass(&admin, json!({"reason": "auth layer down", "service": "cart", "method": "dns", "confirm": "edge"}))
            .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let waiting = crate::support::eventually("the primary to serve it", || async {
        let a = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        a["detail"].as_str().unwrap_or_default().starts_with("propagating").then_some(a)
    })
    .await;
    assert_eq!(
        waiting["detail"],
        format!("propagating: 1 of 2 DNS servers serve the new record; waiting for {resolver}"),
        "the resolver still answers from its cache"
    );
    let done = crate::support::eventually_within(Duration::from_secs(20), "the cache to expire", || async {
        let a = admin.get_json(&format!("/api/v1/actions/{id}")).await;
        (a["status"] != "running").then_some(a)
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let entry = &admin.get_json("/api/v1/audit?kind=propagation").await["entries"][0];
    let params: Value = serde_json::from_str(entry["params"].as_str().unwrap()).unwrap();
    let elapsed = params["elapsed_ms"].as_u64().unwrap();
    assert!((1_000..12_000).contains(&elapsed), "about the 4 s the resolver may keep its copy: {elapsed} ms");
    assert_eq!(dns.read_at(resolver, "cart.gw.test.").await.unwrap().unwrap().values, ["127.0.2.2"]);
    let _ = child.kill();
    let _ = child.wait();
}
