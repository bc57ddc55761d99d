//! Incidents (issue 18): declared, worked and closed by a team, on the record.

use crate::support::*;
use app::dto::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

crate::both_databases!(
    an_incident_goes_from_declared_to_closed_with_timed_attributed_milestones_and_a_timeline,
    the_postmortem_of_a_bad_deploy_has_its_rollback_with_its_impact_and_the_milestones,
    no_incident_write_happens_when_its_record_cannot_be_written,
);

async fn declare(session: &Session, body: Value) -> reqwest::Response {
    session.post("/api/v1/incidents", &body).await
}

async fn an_incident_goes_from_declared_to_closed_with_timed_attributed_milestones_and_a_timeline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (viewer, responder, admin) =
        (app.signed_in(Role::Viewer).await, app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    let responder_name = responder.username().await;

    // A viewer may read but not declare; the refusal is on the record.
    let refused = declare(&viewer, json!({"title": "edge 5xx", "severity": "sev2"})).await;
    assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let denied = admin.get_json("/api/v1/audit?kind=incident&outcome=denied").await;
    assert_eq!(denied["entries"][0]["action"], "declare", "{denied}");

    let created = declare(
        &responder,
        json!({"title": "edge answers 5xx", "severity": "sev2", "summary": "auth layer?", "gateways": ["edge"]}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let incident: Value = created.json().await.unwrap();
    assert_eq!(incident["key"], "INC-1");
    assert_eq!(incident["status"], "investigating");
    assert_eq!(incident["commander"], responder_name.as_str(), "the declarer commands it");
    assert_eq!(incident["gateways"], json!(["edge"]));
    assert!(incident["acknowledged_at_ms"].is_null());
    let id = incident["id"].as_i64().unwrap();
    let path = format!("/api/v1/incidents/{id}");
    assert_eq!(viewer.get_json(&path).await["title"], "edge answers 5xx");

    // Someone acts on it: a note acknowledges it; an action names it.
    let note = responder.post(&format!("{path}/notes"), &json!({"text": "5xx on every route since 10:02"})).await;
    assert_eq!(note.status(), StatusCode::CREATED);
    let acked = viewer.get_json(&path).await;
    assert!(acked["time_to_acknowledge_s"].as_i64().unwrap() >= 0, "{acked}");
    let restart = responder
        .post("/api/v1/gateways/edge/actions/restart", &json!({"reason": "clear bad pods", "incident": "INC-1"}))
        .await;
    assert_eq!(restart.status(), StatusCode::ACCEPTED);

    // Hand-overs and status changes, each attributed.
    let admin_name = admin.username().await;
    let viewer_name = viewer.username().await;
    let handed = responder
        .patch(&path, &json!({"commander": admin_name, "scribe": viewer_name, "reason": "shift change"}))
        .await;
    assert_eq!(handed.status(), StatusCode::OK);
    let unknown = responder.patch(&path, &json!({"scribe": "nobody-here"})).await;
    assert_error(unknown, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let early = admin.patch(&path, &json!({"status": "closed"})).await;
    let message = assert_error(early, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("only once it is resolved"), "{message}");
    for status in ["identified", "mitigated", "resolved"] {
        let r = admin.patch(&path, &json!({"status": status, "reason": format!("now {status}")})).await;
        assert_eq!(r.status(), StatusCode::OK, "{status}");
    }
    let open = viewer.get_json("/api/v1/incidents?open=true").await;
    assert_eq!(open["incidents"].as_array().unwrap().len(), 0, "resolved is not open: {open}");
    assert_eq!(
        viewer.get_json("/api/v1/incidents?open=false&severity=sev2&gateway=edge").await["incidents"][0]["id"],
        id
    );
    let other = viewer.get_json("/api/v1/incidents?gateway=partner").await;
    assert_eq!(other["incidents"], json!([]), "INC-1 is about edge only: {other}");
    let closed = admin.patch(&path, &json!({"status": "closed"})).await;
    assert_eq!(closed.status(), StatusCode::OK);
    let after = admin.patch(&path, &json!({"summary": "too late"})).await;
    assert_error(after, StatusCode::CONFLICT, "conflict").await;

    let incident = viewer.get_json(&path).await;
    let milestones: Vec<(&str, &str)> = incident["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["status"].as_str().unwrap(), m["by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        milestones,
        [
            ("investigating", responder_name.as_str()),
            ("identified", admin_name.as_str()),
            ("mitigated", admin_name.as_str()),
            ("resolved", admin_name.as_str()),
            ("closed", admin_name.as_str())
        ]
    );
    assert!(incident["time_to_mitigate_s"].as_i64().is_some() && incident["time_to_resolve_s"].as_i64().is_some());
    assert_eq!(
        (incident["commander"].as_str(), incident["scribe"].as_str()),
        (Some(&*admin_name), Some(&*viewer_name))
    );

    // The timeline is the ledger's entries for INC-1, in order, as sentences.
    let timeline = viewer.get_json(&format!("{path}/timeline")).await;
    let texts: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(texts[0], format!("{responder_name} declared INC-1 (sev2): edge answers 5xx"));
    assert_eq!(texts[1], format!("{responder_name} noted: 5xx on every route since 10:02"));
    assert_eq!(texts[2], format!("{responder_name} ran restart on edge: clear bad pods"));
    assert!(texts.contains(&"restart on edge succeeded"), "{texts:?}");
    assert!(
        texts.contains(&&*format!(
            "{responder_name} handed command from {responder_name} to {admin_name}: shift change"
        ))
    );
    assert!(texts.contains(&&*format!("{admin_name} moved it from mitigated to resolved: now resolved")));
    assert_eq!(texts.last().unwrap(), &format!("{admin_name} moved it from resolved to closed"));
    // The ledger verifies with these entries in it.
    let verified = viewer.get_json("/api/v1/audit/verify").await;
    assert_eq!(verified["ok"], true, "{verified}");
}

#[tokio::test]
async fn bad_incident_input_is_refused_with_the_field_and_creates_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let long = |n: usize| "x".repeat(n);
    for (body, field) in [
        (json!("a string"), "body"),
        (json!({"severity": "sev1"}), "title"),
        (json!({"title": long(201), "severity": "sev1"}), "title"),
        (json!({"title": "t", "severity": "sev9"}), "severity"),
        (json!({"title": "t", "severity": "sev1", "summary": long(5001)}), "summary"),
        (json!({"title": "t", "severity": "sev1", "gateways": ["nope"]}), "gateways"),
        (json!({"title": "t", "severity": "sev1", "gateways": vec!["edge"; 21]}), "gateways"),
        (json!({"title": "t", "severity": "sev1", "gateways": "edge"}), "gateways"),
        (json!({"title": "t", "severity": "sev1", "owner": "me"}), "body"),
    ] {
        let message =
            assert_error(declare(&responder, body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert!(message.starts_with(&format!("{field}: ")), "{body}: {message}");
    }
    assert_eq!(responder.get_json("/api/v1/incidents").await["incidents"], json!([]), "nothing was created");
    for q in ["status=bogus", "severity=sev0", "open=maybe"] {
        let r = responder.get(&format!("/api/v1/incidents?{q}")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{q}");
    }
    let id = declare(&responder, json!({"title": "t", "severity": "sev3"})).await.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let note = responder.post(&format!("/api/v1/incidents/{id}/notes"), &json!({"text": long(5001)})).await;
    assert_eq!(note.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let missing = responder.get("/api/v1/incidents/999").await;
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_timeline_entry_can_be_starred_for_the_postmortem_only_on_its_own_incident() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let first = declare(&responder, json!({"title": "one", "severity": "sev3"})).await.json::<Value>().await.unwrap();
    let second = declare(&responder, json!({"title": "two", "severity": "sev3"})).await.json::<Value>().await.unwrap();
    let (a, b) = (first["id"].as_i64().unwrap(), second["id"].as_i64().unwrap());
    let note: Value = responder
        .post(&format!("/api/v1/incidents/{a}/notes"), &json!({"text": "the key clue"}))
        .await
        .json()
        .await
        .unwrap();
    let entry = note["id"].as_i64().unwrap();
    let star = responder.put(&format!("/api/v1/incidents/{a}/timeline/{entry}/star")).await;
    assert_eq!(star.status(), StatusCode::NO_CONTENT);
    let timeline = viewer.get_json(&format!("/api/v1/incidents/{a}/timeline")).await;
    let starred: Vec<bool> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["starred"].as_bool().unwrap()).collect();
    assert_eq!(starred, [false, true]);
    let elsewhere = responder.put(&format!("/api/v1/incidents/{b}/timeline/{entry}/star")).await;
    assert_error(elsewhere, StatusCode::NOT_FOUND, "not_found").await;
    let by_viewer = viewer.put(&format!("/api/v1/incidents/{a}/timeline/{entry}/star")).await;
    assert_error(by_viewer, StatusCode::FORBIDDEN, "forbidden").await;
    let starred_on_record = viewer.get_json("/api/v1/audit?kind=incident&action=star").await;
    assert_eq!(starred_on_record["entries"][0]["target"], "INC-1", "starring is on the record: {starred_on_record}");
    let unstar = responder.delete(&format!("/api/v1/incidents/{a}/timeline/{entry}/star")).await;
    assert_eq!(unstar.status(), StatusCode::NO_CONTENT);
    let timeline = viewer.get_json(&format!("/api/v1/incidents/{a}/timeline")).await;
    assert!(timeline["entries"].as_array().unwrap().iter().all(|e| e["starred"] == false));
}

async fn the_postmortem_of_a_bad_deploy_has_its_rollback_with_its_impact_and_the_milestones(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).scenario(server::fleet::sim::Scenario::BadDeploy)).await;
    let (responder, admin) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    let incident: Value = declare(
        &responder,
        json!({"title": "edge fails after 2.15.0", "severity": "sev1", "summary": "45% 5xx", "gateways": ["edge"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = incident["id"].as_i64().unwrap();
    app.advance(30).await;
    let rollback = admin
        .post(
            "/api/v1/gateways/edge/actions/rollback",
            &json!({"reason": "2.15.0 fails requests", "confirm": "edge", "incident": "INC-1"}),
        )
        .await;
    assert_eq!(rollback.status(), StatusCode::ACCEPTED, "{}", rollback.text().await.unwrap());
    admin.patch(&format!("/api/v1/incidents/{id}"), &json!({"status": "mitigated"})).await;
    // The rollout runs, the reading 60 s after the rollback is taken, then it is resolved.
    for _ in 0..9 {
        app.advance(10).await;
    }
    eventually("the impact reading", || async {
        let a = admin.get_json("/api/v1/actions?gateway=edge").await;
        let rollback = a.as_array()?.iter().find(|a| a["action"] == "rollback")?.clone();
        (!rollback["impact_after"].is_null()).then_some(())
    })
    .await;
    admin.patch(&format!("/api/v1/incidents/{id}"), &json!({"status": "resolved", "reason": "5xx back to 0"})).await;

    let json = admin.get_json(&format!("/api/v1/incidents/{id}/postmortem.json")).await;
    assert_eq!(json["actions"][0]["action"], "rollback", "{json}");
    assert_eq!(json["actions"][0]["status"], "succeeded");
    let before = json["actions"][0]["impact_before"]["error_rate_5xx"].as_f64().unwrap();
    let after = json["actions"][0]["impact_after"]["error_rate_5xx"].as_f64().unwrap();
    assert!(before > 0.1 && after < before / 4.0, "the rollback cut the 5xx share: {before} -> {after}");
    let edge = &json["impact"][0];
    assert_eq!(edge["gateway"], "edge");
    assert!(edge["points"].as_u64().unwrap() >= 2, "the window holds series points: {edge}");
    assert!(edge["error_rate_5xx"][1].as_f64().unwrap() > 0.1, "the peak 5xx share over the window: {edge}");

    let response = admin.get(&format!("/api/v1/incidents/{id}/postmortem.md")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("INC-1-postmortem.md"));
    let md = response.text().await.unwrap();
    assert!(md.starts_with("# Postmortem: INC-1 — edge fails after 2.15.0\n"), "{md}");
    assert!(md.contains("| Severity | sev1 |"), "{md}");
    assert!(md.contains("| Time to mitigate |") && md.contains("| Time to resolve |"), "{md}");
    assert!(md.contains("\n## Impact\n") && md.contains("| edge | "), "{md}");
    let row = md.lines().find(|l| l.contains("| rollback |")).expect("the rollback's row");
    assert!(row.contains("2.15.0 fails requests") && row.contains("| succeeded |"), "{row}");
    assert_eq!(row.matches("5xx ").count(), 2, "the readings before and 60 s after: {row}");
    for status in ["investigating", "mitigated", "resolved"] {
        assert!(md.contains(&format!("\n| {status} | ")), "milestone {status}: {md}");
    }
    assert!(md.contains("declared INC-1 (sev1)") && md.contains("ran rollback on edge"), "{md}");
    // The gateway's own recovery is on the timeline, with the numbers then.
    let recovered = md.lines().find(|l| l.contains("edge went from critical to")).expect("a status change of edge");
    assert!(recovered.contains("req/s, 5xx "), "{recovered}");
    assert!(md.contains("\n## Causes\n") && md.contains("\n## Action items\n"), "{md}");
    // Training: the scenario's known cure beside what was done.
    let training = &json["incident"]["training"];
    assert_eq!(training["scenario"], "bad-deploy", "{json}");
    assert_eq!(training["used_actions"], json!(["rollback"]));
    assert_eq!(training["cured_by_a_known_cure"], true);
    assert!(training["steps_used"].to_string().contains("Roll back a recent deployment"), "{training}");
    assert!(md.contains("This response used rollback (a known cure), mitigated after"), "{md}");
}

#[tokio::test]
async fn the_runbook_is_a_checklist_ticked_by_the_actions_it_names_or_by_hand_with_who_and_when() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (viewer, responder) = (app.signed_in(Role::Viewer).await, app.signed_in(Role::Responder).await);
    let name = responder.username().await;
    let id = declare(&responder, json!({"title": "edge slow", "severity": "sev3", "gateways": ["edge"]}))
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/incidents/{id}/checklist");
    let checklist = viewer.get_json(&path).await;
    let steps = checklist["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 12, "Diagnosis 1-5, four immediate actions, three short-term fixes");
    assert!(steps.iter().all(|s| s["mark"].is_null()));
    let step = |c: &Value, id: &str| c["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap();
    assert_eq!(step(&checklist, "immediate-1")["opens"], "/gateways/edge?action=restart&incident=INC-1");
    let logs = step(&checklist, "diagnosis-3")["opens"].as_str().unwrap().to_string();
    assert!(logs.starts_with("/logs?q=gateway%3Aedge+%28error+OR+exception+OR+failed%29&since="), "{logs}");
    assert!(logs.ends_with("&incident=INC-1"), "lines found there can be pinned to it: {logs}");
    assert_eq!(step(&checklist, "diagnosis-5")["opens"], "/dependencies?node=gateway%3Aedge&incident=INC-1");

    // A restart for the incident ticks "Restart unhealthy gateway instances" once it is done.
    let restart = responder
        .post("/api/v1/gateways/edge/actions/restart", &json!({"reason": "stuck pods", "incident": "INC-1"}))
        .await;
    let action = restart.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for _ in 0..12 {
        app.advance(10).await;
    }
    let ticked = eventually("the rollout to finish", || async {
        let c = viewer.get_json(&path).await;
        let s = step(&c, "immediate-1");
        (!s["mark"].is_null()).then_some(s)
    })
    .await;
    assert_eq!(ticked["mark"]["action_id"], action);
    assert_eq!(ticked["mark"]["by"], name.as_str());

    // By hand, with a note; not applicable needs a reason; both are on the timeline.
    let done = responder.post(&format!("{path}/diagnosis-3"), &json!({"state": "done", "note": "auth errors"})).await;
    assert_eq!(done.status(), StatusCode::OK);
    let bare = responder.post(&format!("{path}/immediate-2"), &json!({"state": "not_applicable"})).await;
    assert_error(bare, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let na = responder
        .post(&format!("{path}/immediate-2"), &json!({"state": "not_applicable", "note": "load is normal"}))
        .await;
    let checklist: Value = na.json().await.unwrap();
    assert_eq!(step(&checklist, "immediate-2")["mark"]["state"], "not_applicable");
    assert_eq!(step(&checklist, "diagnosis-3")["mark"]["note"], "auth errors");
    let unknown = responder.post(&format!("{path}/diagnosis-9"), &json!({"state": "done"})).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let by_viewer = viewer.post(&format!("{path}/diagnosis-1"), &json!({"state": "done"})).await;
    assert_error(by_viewer, StatusCode::FORBIDDEN, "forbidden").await;
    let timeline = viewer.get_json(&format!("/api/v1/incidents/{id}/timeline")).await;
    let texts: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&&*format!("{name} ticked \"Check gateway logs for errors\": auth errors")), "{texts:?}");
    assert!(
        texts.contains(&&*format!(
            "{name} marked \"Scale up gateway instances to handle load\" not applicable: load is normal"
        )),
        "{texts:?}"
    );
}

#[tokio::test]
async fn probes_for_an_incident_and_pinned_log_lines_go_on_its_timeline() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (viewer, responder) = (app.signed_in(Role::Viewer).await, app.signed_in(Role::Responder).await);
    let name = responder.username().await;
    let id = declare(&responder, json!({"title": "edge slow", "severity": "sev3", "gateways": ["edge"]}))
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let probe = responder
        .post("/api/v1/probe", &json!({"gateway": "edge", "path": "/healthz", "incident": format!("INC-{id}")}))
        .await;
    assert_eq!(probe.status(), StatusCode::OK);
    // A body naming no incident is bad input (422 naming the field), as for actions.
    let unknown =
        responder.post("/api/v1/probe", &json!({"gateway": "edge", "path": "/healthz", "incident": "INC-99"})).await;
    let message = assert_error(unknown, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("no incident INC-99"), "{message}");
    let malformed =
        responder.post("/api/v1/probe", &json!({"gateway": "edge", "path": "/healthz", "incident": "edge"})).await;
    assert_error(malformed, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let path = format!("/api/v1/incidents/{id}/pins");
    let line = "2026-11-30T10:02:11Z edge-7f9c upstream connect error or disconnect/reset before headers";
    let pinned = responder.post(&path, &json!({"line": line, "source": "edge-7f9c"})).await;
    assert_eq!(pinned.status(), StatusCode::CREATED);
    for bad in [json!({}), json!({"line": "x".repeat(4097)}), json!({"line": "l", "pod": "p"})] {
        assert_error(responder.post(&path, &bad).await, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    }
    assert_error(viewer.post(&path, &json!({"line": "l"})).await, StatusCode::FORBIDDEN, "forbidden").await;
    let timeline = viewer.get_json(&format!("/api/v1/incidents/{id}/timeline")).await;
    let texts: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    let probed = texts.iter().find(|t| t.contains("probed")).expect("the probe is on the timeline");
    assert!(
        probed.starts_with(&format!("{name} probed http://127.0.0.1:")) && probed.contains("/healthz: HTTP 200 in"),
        "{probed}"
    );
    assert!(texts.contains(&&*format!("{name} pinned a log line from edge-7f9c: {line}")), "{texts:?}");
}

#[tokio::test]
async fn a_user_making_too_many_incident_changes_in_a_minute_is_told_when_to_try_again() {
    let mut options = Options::new(Backend::Sqlite);
    options.limits.incident_writes_per_minute = 3;
    let app = TestApp::spawn_with(options).await;
    let (responder, other) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Responder).await);
    assert_eq!(
        declare(&responder, json!({"title": "edge slow", "severity": "sev3"})).await.status(),
        StatusCode::CREATED
    );
    for text in ["one", "two"] {
        let noted = responder.post("/api/v1/incidents/1/notes", &json!({"text": text})).await;
        assert_eq!(noted.status(), StatusCode::CREATED, "{text}");
    }
    // The minute may turn between two requests; then the count starts again, so ask
    // until refused (at most the cap more times).
    let refused = 'refused: {
        for _ in 0..4 {
            let r = responder.post("/api/v1/incidents/1/notes", &json!({"text": "one more"})).await;
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                break 'refused r;
            }
        }
        panic!("never refused");
    };
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let message = assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert!(message.contains("at most 3 a minute"), "{message}");
    // Another person is not held back by it, and the refusal is on the record.
    assert_eq!(other.post("/api/v1/incidents/1/notes", &json!({"text": "mine"})).await.status(), StatusCode::CREATED);
    let admin = app.signed_in(Role::Admin).await;
    let denied = admin.get_json("/api/v1/audit?kind=incident&outcome=denied").await;
    assert!(denied["entries"].to_string().contains("a minute"), "{denied}");
}

#[tokio::test]
async fn an_incident_change_refused_for_its_missing_csrf_token_is_recorded_as_that_change() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    assert_eq!(
        declare(&responder, json!({"title": "edge slow", "severity": "sev3"})).await.status(),
        StatusCode::CREATED
    );

    let patched = responder
        .client
        .patch(responder.url("/api/v1/incidents/1"))
        .json(&json!({"status": "resolved", "reason": "x"}))
        .send()
        .await
        .unwrap();
    let noted = responder.post_without_csrf("/api/v1/incidents/1/notes", &json!({"text": "sneaky"})).await;
    let ticked = responder.post_without_csrf("/api/v1/incidents/1/checklist/diagnosis-1", &json!({})).await;

    for r in [patched, noted, ticked] {
        assert_error(r, StatusCode::FORBIDDEN, "csrf").await;
    }
    let admin = app.signed_in(Role::Admin).await;
    let denied = admin.get_json("/api/v1/audit?kind=incident&outcome=denied").await;
    let mut named: Vec<(String, String)> = denied["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["target"].as_str().unwrap().to_string()))
        .collect();
    named.sort();
    let expected = [("note", "INC-1"), ("step", "INC-1"), ("update", "INC-1")];
    assert_eq!(named, expected.map(|(a, t)| (a.to_string(), t.to_string())), "{denied}");
    assert_eq!(app_incident_status(&admin).await, "investigating", "nothing changed");
}

async fn app_incident_status(session: &Session) -> String {
    session.get_json("/api/v1/incidents/1").await["status"].as_str().unwrap_or_default().to_string()
}

/// Record first, then act: with the ledger failing, every incident write is a 503 and
/// changes nothing (DESIGN.md invariant 1), and once it works again so does the console.
async fn no_incident_write_happens_when_its_record_cannot_be_written(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let responder = app.signed_in(Role::Responder).await;
    let created = declare(&responder, json!({"title": "edge slow", "severity": "sev3", "gateways": ["edge"]}));
    assert_eq!(created.await.status(), StatusCode::CREATED);
    let noted =
        responder.post("/api/v1/incidents/1/notes", &json!({"text": "looking"})).await.json::<Value>().await.unwrap();
    let entry = noted["id"].as_i64().unwrap();
    let before = responder.get_json("/api/v1/incidents/1").await;
    let checklist = responder.get_json("/api/v1/incidents/1/checklist").await;
    app.break_ledger(backend).await;

    let writes = [
        ("declare", declare(&responder, json!({"title": "another", "severity": "sev2"})).await),
        ("update", responder.patch("/api/v1/incidents/1", &json!({"status": "identified", "severity": "sev1"})).await),
        ("tick", responder.post("/api/v1/incidents/1/checklist/diagnosis-1", &json!({"state": "done"})).await),
        ("star", responder.put(&format!("/api/v1/incidents/1/timeline/{entry}/star")).await),
        ("note", responder.post("/api/v1/incidents/1/notes", &json!({"text": "unrecorded"})).await),
    ];

    for (what, r) in writes {
        let message = assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        assert!(message.contains("audit ledger"), "{what}: {message}");
    }
    app.mend_ledger(backend).await;
    let list = responder.get_json("/api/v1/incidents").await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 1, "no second incident: {list}");
    let (rows,): (i64,) = sqlx::query_as("select count(*) from incidents").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(rows, 1, "the reserved row of the unrecorded declaration is gone");
    assert_eq!(responder.get_json("/api/v1/incidents/1").await, before, "nothing about INC-1 changed");
    assert_eq!(responder.get_json("/api/v1/incidents/1/checklist").await, checklist, "no step ticked");
    let timeline = responder.get_json("/api/v1/incidents/1/timeline").await;
    assert!(timeline["entries"].as_array().unwrap().iter().all(|e| !e["starred"].as_bool().unwrap()), "{timeline}");
    assert!(!timeline.to_string().contains("unrecorded"), "{timeline}");
    // The console goes on: the next declaration is shown (its number skips the lost one).
    let next = declare(&responder, json!({"title": "another", "severity": "sev2"})).await;
    assert_eq!(next.status(), StatusCode::CREATED);
    assert_eq!(next.json::<Value>().await.unwrap()["key"], "INC-3");
}

#[tokio::test]
async fn an_incident_change_that_fails_after_its_record_is_on_the_timeline_as_not_done() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    assert_eq!(
        declare(&responder, json!({"title": "edge slow", "severity": "sev3"})).await.status(),
        StatusCode::CREATED
    );
    // The row refuses changes (a constraint, a full disk) after the record is written.
    sqlx::query(
        "create trigger stuck before update of severity on incidents begin select raise(abort, 'disk full'); end",
    )
    .execute(&app.state.db)
    .await
    .unwrap();

    let r = responder.patch("/api/v1/incidents/1", &json!({"severity": "sev1", "reason": "worse"})).await;

    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(responder.get_json("/api/v1/incidents/1").await["severity"], "sev3");
    let timeline = responder.get_json("/api/v1/incidents/1/timeline").await;
    let texts: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert!(texts.iter().any(|t| t.contains("severity did not happen")), "{texts:?}");
}

#[tokio::test]
async fn a_gateway_going_blind_is_no_status_change_on_the_timeline() {
    use app::dto::{GatewayLive, HealthStatus, Latency, LiveSnapshot};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responder = app.signed_in(Role::Responder).await;
    let created = declare(&responder, json!({"title": "edge 5xx", "severity": "sev2", "gateways": ["edge"]})).await;
    let id = created.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let summary = app.gateway("edge").await;
    let snapshot = |status: HealthStatus, known: bool| {
        let mut g = summary.clone();
        g.status = status;
        (g.rps, g.error_rate_5xx, g.throttle_rate_429, g.latency_ms) = if known {
            (Some(100.0), Some(0.3), Some(0.0), Some(Latency { p50: 10.0, p95: 50.0, p99: 90.0 }))
        } else {
            (None, None, None, None)
        };
        g.blind = (!known).then(|| "metrics could not be read: prometheus: connection refused".to_string());
        LiveSnapshot {
            ts_ms: 0,
            gateways: vec![GatewayLive { summary: g, instances: None, point: None, bypasses: Vec::new() }],
            backend_problem: None,
        }
    };
    let incidents = &app.state.incidents;
    let mut last = std::collections::HashMap::new();
    assert_eq!(incidents.record_transitions(&mut last, &snapshot(HealthStatus::Critical, true)).await.unwrap(), 0);
    // Prometheus goes away: nothing is concluded, so nothing goes on the timeline (before,
    // the zeros it read were "critical -> healthy", a cure that did not happen).
    let blind = snapshot(HealthStatus::Unknown, false);
    assert_eq!(incidents.record_transitions(&mut last, &blind).await.unwrap(), 0, "blind is not a transition");
    assert_eq!(incidents.record_transitions(&mut last, &blind).await.unwrap(), 0);
    // Sight returns with the gateway still critical: no change happened.
    assert_eq!(incidents.record_transitions(&mut last, &snapshot(HealthStatus::Critical, true)).await.unwrap(), 0);
    // A real recovery is recorded, with its numbers.
    assert_eq!(incidents.record_transitions(&mut last, &snapshot(HealthStatus::Healthy, true)).await.unwrap(), 1);
    let timeline = responder.get_json(&format!("/api/v1/incidents/{id}/timeline")).await.to_string();
    assert!(timeline.contains("went from critical to healthy"), "{timeline}");
    assert!(!timeline.contains("unknown"), "{timeline}");
}

/// Issue 29, items 7 and 18: an action or a probe names an open incident or none; a typo or
/// a closed incident is a 422 naming it, and nothing runs or is recorded.
#[tokio::test]
async fn an_action_or_probe_naming_no_open_incident_is_refused_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (responder, admin) = (app.signed_in(Role::Responder).await, app.signed_in(Role::Admin).await);
    let created = declare(&responder, json!({"title": "edge slow", "severity": "sev3", "gateways": ["edge"]})).await;
    let id = created.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let entries = app.audit_count().await;
    let restart = |incident: &str| json!({"reason": "stuck workers", "incident": incident});
    let typo = responder.post("/api/v1/gateways/edge/actions/restart", &restart("INC-9")).await;
    let message = assert_error(typo, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("no incident INC-9"), "{message}");
    assert!(admin.get_json("/api/v1/actions").await.as_array().unwrap().is_empty(), "nothing ran");
    assert_eq!(app.audit_count().await, entries, "and nothing was recorded");

    for status in ["mitigated", "resolved"] {
        let r = admin.patch(&format!("/api/v1/incidents/{id}"), &json!({"status": status, "reason": "fixed"})).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let entries = app.audit_count().await;
    let closed = responder.post("/api/v1/gateways/edge/actions/restart", &restart(&format!("INC-{id}"))).await;
    let message = assert_error(closed, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(message.contains("is resolved"), "{message}");
    let probe = json!({"gateway": "edge", "path": "/healthz", "incident": format!("INC-{id}")});
    let closed = responder.post("/api/v1/probe", &probe).await;
    assert_error(closed, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(app.audit_count().await, entries, "a probe on a resolved incident appends nothing");
}

/// Issue 29, item 7: probes put on an incident's timeline count against the per-user cap
/// on incident changes.
#[tokio::test]
async fn probes_on_an_incident_count_against_the_incident_write_cap() {
    let limits = server::limits::Limits { incident_writes_per_minute: 3, ..Default::default() };
    let app = TestApp::spawn_with(Options::new(Backend::Sqlite).limits(limits)).await;
    let responder = app.signed_in(Role::Responder).await;
    let created = declare(&responder, json!({"title": "edge slow", "severity": "sev3", "gateways": ["edge"]})).await;
    let key = format!("INC-{}", created.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    let probe = json!({"gateway": "edge", "path": "/healthz", "incident": key});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(responder.post("/api/v1/probe", &probe).await.status().as_u16());
    }
    // The declaration was the first write of the minute.
    assert_eq!(statuses, [200, 200, 429, 429], "{statuses:?}");
}
