//! Two-person approval (issue 18): requests that change nothing until a second person
//! who may run the action approves them; denial, expiry, drift, break-glass and review.

use crate::support::*;
use app::dto::Role;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::fleet::sim::Scenario;
use std::time::Duration;

crate::both_databases!(
    a_rollback_a_responder_asks_for_waits_for_an_admin_and_runs_as_planned_once_approved,
    break_glass_runs_at_once_on_the_record_and_stays_open_on_the_incident_until_reviewed,
    the_count_of_what_waits_for_each_person_is_pushed_on_their_event_stream,
);

async fn app_with_approvals(backend: Backend, expiry: Duration) -> TestApp {
    let mut options = Options::new(backend).scenario(Scenario::BadDeploy);
    options.require_approval = vec!["rollback".into(), "bypass".into(), "scale-down".into()];
    options.approval_expiry = expiry;
    let app = TestApp::spawn_with(options).await;
    // INC-1, which the requests below name (an action may name only an open incident).
    let declared = app
        .signed_in(Role::Admin)
        .await
        .post(
            "/api/v1/incidents",
            &json!({"title": "edge fails after 2.15.0", "severity": "sev1", "gateways": ["edge"]}),
        )
        .await;
    assert_eq!(declared.status(), StatusCode::CREATED);
    app
}

/// A second admin, signed in.
async fn another_admin(app: &TestApp) -> Session {
    let name = format!("admin-{:08x}", rand::random::<u32>());
    app.add_user(&name, Role::Admin).await;
    Session::sign_in(&format!("http://{}", app.addr), &name, USER_PASSWORD).await
}

fn rollback_body() -> Value {
    json!({"reason": "2.15.0 fails requests", "confirm": "edge", "incident": "INC-1"})
}

async fn ask_for_rollback(session: &Session) -> Value {
    let response = session.post("/api/v1/gateways/edge/actions/rollback", &rollback_body()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

async fn approval_steps(admin: &Session) -> Vec<(String, String)> {
    let page = admin.get_json("/api/v1/audit?kind=approval").await;
    let mut steps: Vec<(String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let params: Value = serde_json::from_str(e["params"].as_str().unwrap()).unwrap();
            (params["step"].as_str().unwrap().to_string(), e["outcome"].as_str().unwrap().to_string())
        })
        .collect();
    steps.reverse();
    steps
}

async fn a_rollback_a_responder_asks_for_waits_for_an_admin_and_runs_as_planned_once_approved(backend: Backend) {
    let app = app_with_approvals(backend, Duration::from_secs(900)).await;
    let (responder, other_responder, admin) =
        (app.signed_in(Role::Responder).await, app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    let before = version(&admin).await;

    // The preview says it needs a second person; asking changes nothing.
    let mut dry = rollback_body();
    dry["dry_run"] = json!(true);
    let preview: Value = responder.post("/api/v1/gateways/edge/actions/rollback", &dry).await.json().await.unwrap();
    assert!(preview["preview"]["warnings"].to_string().contains("needs a second person"), "{preview}");
    let asked = ask_for_rollback(&responder).await;
    assert_eq!(asked["status"], "awaiting_approval");
    assert!(asked["id"].is_null(), "no action yet: {asked}");
    let id = asked["approval"]["id"].as_i64().unwrap();
    assert_eq!(asked["approval"]["kind"], "rollback");
    assert_eq!(version(&admin).await, before, "nothing changed");
    assert_eq!(admin.get_json("/api/v1/actions").await, json!([]));

    // What waits for whom: the admin may decide it, its requester and other responders not.
    assert_eq!((inbox(&admin).await, inbox(&responder).await, inbox(&other_responder).await), (1, 0, 0));
    let own = responder.post(&format!("/api/v1/approvals/{id}/approve"), &json!({})).await;
    let message = assert_error(own, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(message.contains("a second person must approve it"), "{message}");
    let below = other_responder.post(&format!("/api/v1/approvals/{id}/approve"), &json!({})).await;
    assert_error(below, StatusCode::FORBIDDEN, "forbidden").await;

    // Approved: it runs as planned, as the requester's, naming who approved it.
    let approved = admin.post(&format!("/api/v1/approvals/{id}/approve"), &json!({"reason": "looks right"})).await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    let action = admin.get_json(&format!("/api/v1/actions/{}", approved["action_id"])).await;
    assert_eq!(
        (action["action"].as_str(), action["actor"].as_str()),
        (Some("rollback"), Some(&*responder.username().await))
    );
    let params: Value = serde_json::from_str(action["params"].as_str().unwrap()).unwrap();
    assert_eq!(params["approved_by"], "admin");
    app.advance(5).await;
    let rolled = eventually("the rollout to start", || async { (version(&admin).await != before).then_some(()) });
    rolled.await;
    let again = admin.post(&format!("/api/v1/approvals/{id}/approve"), &json!({})).await;
    assert_error(again, StatusCode::CONFLICT, "conflict").await;
    let steps = approval_steps(&admin).await;
    assert_eq!(
        steps,
        [
            ("request".to_string(), "pending".to_string()),
            ("approve".to_string(), "denied".to_string()),
            ("approve".to_string(), "denied".to_string()),
            ("approve".to_string(), "succeeded".to_string())
        ],
        "the request, the two refusals and the approval are on the record"
    );
}

#[tokio::test]
async fn a_request_is_refused_when_the_gateway_moved_since_denied_with_a_reason_or_lapses() {
    let app = app_with_approvals(Backend::Sqlite, Duration::from_secs(2)).await;
    let (responder, admin) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);

    // Someone scales edge after the request: the approval is bound to the old state.
    let id = ask_for_rollback(&responder).await["approval"]["id"].as_i64().unwrap();
    let scaled = admin.post("/api/v1/gateways/edge/actions/scale", &json!({"reason": "load", "replicas": 6})).await;
    assert_eq!(scaled.status(), StatusCode::ACCEPTED);
    let drifted = admin.post(&format!("/api/v1/approvals/{id}/approve"), &json!({})).await;
    let message = assert_error(drifted, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("edge changed since the preview it was asked for"), "{message}");
    assert_eq!(admin.get_json(&format!("/api/v1/approvals/{id}")).await["status"], "refused");

    // Denied, with a reason (required).
    let id = ask_for_rollback(&responder).await["approval"]["id"].as_i64().unwrap();
    let bare = admin.post(&format!("/api/v1/approvals/{id}/deny"), &json!({})).await;
    assert_error(bare, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let denied: Value = admin
        .post(&format!("/api/v1/approvals/{id}/deny"), &json!({"reason": "roll forward"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((denied["status"].as_str(), denied["decision_reason"].as_str()), (Some("denied"), Some("roll forward")));

    // Nobody decides: it lapses (the leader settles it, or the late approval finds it).
    let id = ask_for_rollback(&responder).await["approval"]["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let late = admin.post(&format!("/api/v1/approvals/{id}/approve"), &json!({})).await;
    assert_error(late, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(admin.get_json(&format!("/api/v1/approvals/{id}")).await["status"], "expired");
    let steps = approval_steps(&admin).await;
    assert!(steps.contains(&("refuse".into(), "denied".into())), "{steps:?}");
    assert!(steps.contains(&("deny".into(), "denied".into())), "{steps:?}");
    assert!(steps.contains(&("expire".into(), "failed".into())), "{steps:?}");
    let actions = admin.get_json("/api/v1/actions").await;
    assert!(actions.as_array().unwrap().iter().all(|a| a["action"] != "rollback"), "no rollback ran: {actions}");

    // A scale to below half the count is its own kind; a smaller one is not.
    let current = admin.get_json("/api/v1/gateways/edge").await["instances_desired"].as_u64().unwrap();
    let down = responder
        .post("/api/v1/gateways/edge/actions/scale", &json!({"reason": "cost", "replicas": 1, "confirm": "edge"}))
        .await;
    let down: Value = down.json().await.unwrap();
    assert_eq!(
        (down["status"].as_str(), down["approval"]["kind"].as_str()),
        (Some("awaiting_approval"), Some("scale-down"))
    );
    let small = responder
        .post("/api/v1/gateways/edge/actions/scale", &json!({"reason": "cost", "replicas": current - 1}))
        .await;
    assert_eq!(small.json::<Value>().await.unwrap()["status"], "running");
}

async fn break_glass_runs_at_once_on_the_record_and_stays_open_on_the_incident_until_reviewed(backend: Backend) {
    let app = app_with_approvals(backend, Duration::from_secs(900)).await;
    let (responder, admin, second) =
        (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await, another_admin(&app).await);
    let incident = responder
        .post("/api/v1/incidents", &json!({"title": "edge 5xx", "severity": "sev1", "gateways": ["edge"]}))
        .await;
    assert_eq!(incident.status(), StatusCode::CREATED);

    // A responder may not run a rollback, so not by break-glass either.
    let mut body = rollback_body();
    body["break_glass"] = json!(true);
    let refused = responder.post("/api/v1/gateways/edge/actions/rollback", &body).await;
    assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;

    let ran = admin.post("/api/v1/gateways/edge/actions/rollback", &body).await;
    assert_eq!(ran.status(), StatusCode::ACCEPTED);
    let ran: Value = ran.json().await.unwrap();
    let action = ran["id"].as_i64().expect("it ran at once");
    let intent = admin.get_json("/api/v1/audit?kind=action_intent&action=rollback&outcome=pending").await;
    assert!(intent["entries"][0]["params"].as_str().unwrap().contains("\"break_glass\":true"), "{intent}");

    // Everyone who could have approved it sees it; the incident has a follow-up.
    let waiting = second.get_json("/api/v1/approvals?for=me").await;
    let glass = &waiting["approvals"][0];
    assert_eq!((glass["status"].as_str(), glass["action_id"].as_i64()), (Some("break_glass"), Some(action)));
    let id = glass["id"].as_i64().unwrap();
    let followups = admin.get_json("/api/v1/incidents/1").await["followups"].clone();
    assert_eq!(followups[0]["text"], format!("review break-glass action #{action} (rollback on edge by admin)"));
    assert_eq!(followups[0]["open"], true);

    // Reviewed by someone else (with a reason), the follow-up closes.
    let own = admin.post(&format!("/api/v1/approvals/{id}/review"), &json!({"reason": "fine"})).await;
    assert_error(own, StatusCode::FORBIDDEN, "forbidden").await;
    let reviewed = second.post(&format!("/api/v1/approvals/{id}/review"), &json!({"reason": "was right"})).await;
    assert_eq!(reviewed.json::<Value>().await.unwrap()["status"], "reviewed");
    let followups = admin.get_json("/api/v1/incidents/1").await["followups"].clone();
    assert_eq!(followups[0]["open"], false);
    let md = admin.get("/api/v1/incidents/1/postmortem.md").await.text().await.unwrap();
    assert!(
        md.contains(&format!("- action #{action} (rollback on edge) by admin")) && md.contains("reviewed by"),
        "{md}"
    );
    assert!(md.contains(&format!("- [x] review break-glass action #{action}")), "{md}");
    let timeline = admin.get_json("/api/v1/incidents/1/timeline").await;
    let texts = timeline["entries"].to_string();
    assert!(texts.contains("ran rollback on edge by break-glass, without approval"), "{texts}");
}

/// How many approvals wait for `session`.
async fn inbox(session: &Session) -> usize {
    session.get_json("/api/v1/approvals?for=me").await["approvals"].as_array().unwrap().len()
}

/// Edge's running version.
async fn version(session: &Session) -> String {
    session.get_json("/api/v1/gateways/edge").await["version"].as_str().unwrap().to_string()
}

/// An open event stream, read event by event.
struct Events {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    async fn open(session: &Session) -> Events {
        let response = session.get("/api/v1/events").await;
        assert_eq!(response.status(), StatusCode::OK);
        Events { stream: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The data of the next event named `name`, and the names of those skipped before it.
    async fn next(&mut self, name: &str) -> (String, Vec<String>) {
        let mut skipped = Vec::new();
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let kind = event.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("").to_string();
                if kind == name {
                    return (event.lines().filter_map(|l| l.strip_prefix("data: ")).collect(), skipped);
                }
                skipped.push(kind);
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within 10 s (skipped {skipped:?})"))
                .expect("stream open")
                .expect("chunk");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `approvals` count.
    async fn waiting(&mut self) -> u32 {
        self.next("approvals").await.0.parse().unwrap()
    }
}

async fn the_count_of_what_waits_for_each_person_is_pushed_on_their_event_stream(backend: Backend) {
    let app = app_with_approvals(backend, Duration::from_secs(900)).await;
    let (responder, admin) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    let (mut theirs, mut mine) = (Events::open(&admin).await, Events::open(&responder).await);
    assert_eq!((theirs.waiting().await, mine.waiting().await), (0, 0), "each stream starts with the count now");
    assert_eq!((theirs.next("break_glass").await.0, mine.next("break_glass").await.0), ("0".into(), "0".into()));

    // A request waits for the admin, not for the responder who asked.
    let id = ask_for_rollback(&responder).await["approval"]["id"].as_i64().unwrap();
    assert_eq!(theirs.waiting().await, 1);
    let denied = admin.post(&format!("/api/v1/approvals/{id}/deny"), &json!({"reason": "not yet"})).await;
    assert_eq!(denied.status(), StatusCode::OK);
    assert_eq!(theirs.waiting().await, 0, "a decision takes it off the count");

    // A break-glass run waits for the other admins' review; its own admin is not counted.
    let second = another_admin(&app).await;
    let mut reviewer = Events::open(&second).await;
    assert_eq!(reviewer.waiting().await, 0);
    assert_eq!(reviewer.next("break_glass").await.0, "0");
    let mut body = rollback_body();
    body["break_glass"] = json!(true);
    assert_eq!(admin.post("/api/v1/gateways/edge/actions/rollback", &body).await.status(), StatusCode::ACCEPTED);
    assert_eq!(reviewer.waiting().await, 1);
    assert_eq!(reviewer.next("break_glass").await.0, "1", "the banner: a break-glass run to review");
    let glass = second.get_json("/api/v1/approvals?for=me").await["approvals"][0]["id"].as_i64().unwrap();
    let reviewed = second.post(&format!("/api/v1/approvals/{glass}/review"), &json!({"reason": "was right"})).await;
    assert_eq!(reviewed.status(), StatusCode::OK);
    assert_eq!(reviewer.waiting().await, 0);
    assert_eq!(reviewer.next("break_glass").await.0, "0");

    // Nothing of this waited for the responder, and the admin's own break-glass run
    // did not count for them: neither stream sent another count up to a marker entry
    // appended after it all.
    let marker = format!("marker-{:08x}", rand::random::<u32>());
    let _ = app.login(&app.client(), &marker, "not the password").await;
    for events in [&mut mine, &mut theirs] {
        let mut before = Vec::new();
        loop {
            let (data, skipped) = events.next("audit").await;
            before.extend(skipped);
            if data.contains(&marker) {
                break;
            }
        }
        assert!(!before.iter().any(|k| k == "approvals" || k == "break_glass"), "{before:?}");
    }
}

#[tokio::test]
async fn a_waiting_request_stays_in_the_inbox_however_many_were_decided_after_it() {
    let app = app_with_approvals(Backend::Sqlite, Duration::from_secs(900)).await;
    let (responder, admin) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    ask_for_rollback(&responder).await;
    // 250 requests decided since (more than one page of the list).
    for i in 0..250 {
        sqlx::query(
            "insert into approvals (gateway, action, kind, body, reason, incident, requester, requester_role, \
             plan_hash, preview, status, created_at_ms, expires_at_ms, decided_by, decided_at_ms, decision_reason, \
             action_id) values ('edge', 'rollback', 'rollback', '{}', 'old', '', 'someone', 'responder', 'h', \
             '{\"summary\":\"\",\"changes\":[],\"warnings\":[]}', 'denied', $1, $1, 'admin', $1, 'no', null)",
        )
        .bind(i64::from(i))
        .execute(&app.state.db)
        .await
        .unwrap();
    }
    assert_eq!(inbox(&admin).await, 1, "the old request still waits for the admin");
}

/// Issue 29, item 9: an admin cannot make a second account after asking and approve their
/// own request with it; the refusal is on the record and the request still waits.
#[tokio::test]
async fn an_account_made_after_the_request_cannot_approve_it() {
    let app = app_with_approvals(Backend::Sqlite, Duration::from_secs(900)).await;
    let (responder, admin) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    let before = another_admin(&app).await;
    let id = ask_for_rollback(&responder).await["approval"]["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let late = another_admin(&app).await;
    let r = late.post(&format!("/api/v1/approvals/{id}/approve"), &json!({"reason": "looks fine"})).await;
    let message = assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(message.contains("created after this request"), "{message}");
    assert_eq!(admin.get_json(&format!("/api/v1/approvals/{id}")).await["status"], "awaiting_approval");
    // An account that existed before the request may.
    let r = before.post(&format!("/api/v1/approvals/{id}/approve"), &json!({"reason": "rollback is right"})).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Issue 29, item 7: asking again for the same change while it waits is the same request
/// (no second row, no second signed entry with the gateway's whole state).
#[tokio::test]
async fn asking_again_for_the_same_change_is_the_request_that_waits() {
    let app = app_with_approvals(Backend::Sqlite, Duration::from_secs(900)).await;
    let (responder, admin) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    let first = ask_for_rollback(&responder).await["approval"]["id"].as_i64().unwrap();
    let entries = app.audit_count().await;
    for _ in 0..5 {
        assert_eq!(ask_for_rollback(&responder).await["approval"]["id"].as_i64().unwrap(), first);
    }
    assert_eq!(app.audit_count().await, entries, "nothing more on the record");
    let list = admin.get_json("/api/v1/approvals").await;
    let waiting = list.to_string().matches("\"awaiting_approval\"").count();
    assert_eq!(waiting, 1, "{list}");
}
