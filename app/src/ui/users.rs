//! `/users`: your own password (everyone), and for admins the accounts: who they are,
//! where they sign in, when they last did, their open sessions; create one, change a
//! role, disable or enable, reset a password, end sessions. Every change asks why (the
//! audit trail keeps it) and is confirmed where it was made.

use super::format::time;
use super::{on_ledger_change, quote, send};
use crate::dto::{PasswordReset, Role, SessionsRevoked, UserSource, UserSummary};
use leptos::prelude::*;

/// A confirmation (`Ok`) or a refusal (`Err`), said where the person acted.
type Said = RwSignal<Option<Result<String, String>>>;

fn said(s: Said, testid: &'static str) -> impl IntoView {
    move || {
        s.get().map(|r| match r {
            Ok(text) => view! { <p class="said-ok" role="status" data-testid=testid>{text}</p> }.into_any(),
            Err(text) => view! { <p class="error" role="alert" data-testid=testid>{text}</p> }.into_any(),
        })
    }
}

/// The `/users` page.
#[component]
pub fn UsersPage() -> impl IntoView {
    let list = RwSignal::new(None::<Result<Vec<UserSummary>, String>>);
    let load = move || {
        // Someone without the admin role is told once; nothing to follow.
        if list.with_untracked(|l| matches!(l, Some(Err(e)) if e.contains("admin role"))) {
            return;
        }
        leptos::task::spawn_local(async move {
            let got = send("GET", "/users".into(), String::new()).await.and_then(|text| {
                serde_json::from_str::<Vec<UserSummary>>(&text)
                    .map_err(|e| format!("The account list was unreadable: {e}"))
            });
            list.set(Some(got));
        })
    };
    // Sign-ins, sign-outs and changes by other admins are ledger entries: the list (its
    // open sessions, last sign-ins) follows them, at most once a second.
    on_ledger_change(load);
    // The account the change form works on, chosen from a row or the form.
    let chosen = RwSignal::new(String::new());
    view! {
        <h1>"Users"</h1>
        <OwnPassword />
        {move || match list.get() {
            None => view! { <p class="muted">"Loading the accounts…"</p> }.into_any(),
            Some(Err(e)) if e.contains("admin role") => view! {
                <p class="muted" data-testid="users-not-admin">"Managing accounts needs the admin role; ask an admin to change yours."</p>
            }.into_any(),
            Some(Err(e)) => view! { <p class="error" role="alert">{format!("The accounts could not be read: {e}")}</p> }.into_any(),
            Some(Ok(users)) => view! { <UserTable users chosen /> }.into_any(),
        }}
        // Made once, not with each reload of the list, so that what a form said stays.
        <Show when=move || matches!(list.get(), Some(Ok(_)))>
            <ChangeUser
                names=Signal::derive(move || match list.get() {
                    Some(Ok(users)) => users.into_iter().map(|u| u.username).collect(),
                    _ => Vec::new(),
                })
                chosen
                reload=Callback::new(move |_| load())
            />
            <CreateUser reload=Callback::new(move |_| load()) />
        </Show>
    }
}

#[component]
fn UserTable(users: Vec<UserSummary>, chosen: RwSignal<String>) -> impl IntoView {
    view! {
        <table class="grid" data-testid="user-list">
            <thead>
                <tr>
                    <th>"Account"</th><th>"Role"</th><th>"Signs in"</th><th>"Status"</th>
                    <th>"Last sign-in"</th><th>"Open sessions"</th>
                </tr>
            </thead>
            <tbody>
                {users
                    .into_iter()
                    .map(|u| {
                        let name = u.username.clone();
                        let status = match u.disabled_at_ms {
                            Some(at) => format!("disabled since {}", time(at)),
                            None => "active".into(),
                        };
                        let source = match u.source {
                            UserSource::Local => "password",
                            UserSource::Oidc => "identity provider",
                        };
                        view! {
                            <tr data-user=u.username.clone()>
                                // The name is the way to change the account (first, so it is
                                // on screen however narrow the window).
                                <td>
                                    <a
                                        href="#change-user"
                                        aria-label=format!("Change {}", u.username)
                                        title="Change this account"
                                        on:click=move |_| chosen.set(name.clone())
                                    >
                                        {u.username.clone()}
                                    </a>
                                </td>
                                <td>{u.role.to_string()}</td>
                                <td>{source}</td>
                                <td class=if u.disabled_at_ms.is_some() { "warn" } else { "" }>{status}</td>
                                <td>{u.last_sign_in_ms.map(time).unwrap_or_else(|| "never".into())}</td>
                                <td>{u.active_sessions}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// One change to one account: what it is, as the form's select says it.
fn change_request(change: &str, user: &str, reason: &str) -> Option<(&'static str, String, String)> {
    let reason = quote(reason);
    let path = |tail: &str| format!("/users/{user}{tail}");
    Some(match change {
        "viewer" | "responder" | "admin" => {
            ("PATCH", path(""), format!("{{\"role\":{},\"reason\":{reason}}}", quote(change)))
        }
        "disable" => ("PATCH", path(""), format!("{{\"disabled\":true,\"reason\":{reason}}}")),
        "enable" => ("PATCH", path(""), format!("{{\"disabled\":false,\"reason\":{reason}}}")),
        "reset" => ("POST", path("/password"), format!("{{\"reason\":{reason}}}")),
        "revoke" => ("POST", path("/revoke-sessions"), format!("{{\"reason\":{reason}}}")),
        _ => return None,
    })
}

/// What a done change says, in a sentence.
fn confirmation(change: &str, user: &str, answer: &str) -> String {
    match change {
        "reset" => match serde_json::from_str::<PasswordReset>(answer) {
            Ok(r) => format!(
                "{user}'s new password is {} — give it to them now; it is not shown again. {} of their sessions ended.",
                r.password, r.sessions_ended
            ),
            Err(_) => format!("{user}'s password was reset, but the answer was unreadable: reset it again."),
        },
        "revoke" => match serde_json::from_str::<SessionsRevoked>(answer) {
            Ok(r) => format!("{} of {user}'s sessions ended; they sign in again.", r.sessions_ended),
            Err(_) => format!("{user}'s sessions ended."),
        },
        "disable" => format!("{user} is disabled: their sessions ended and they cannot sign in."),
        "enable" => format!("{user} is enabled and can sign in again."),
        role => format!("{user} is now {role}, from their next request."),
    }
}

#[component]
fn ChangeUser(names: Signal<Vec<String>>, chosen: RwSignal<String>, reload: Callback<()>) -> impl IntoView {
    let change = RwSignal::new(String::new());
    let reason = RwSignal::new(String::new());
    let result: Said = RwSignal::new(None);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (user, what, why) = (chosen.get_untracked(), change.get_untracked(), reason.get_untracked());
        if user.is_empty() || what.is_empty() {
            result.set(Some(Err("Choose an account and a change first.".into())));
            return;
        }
        if why.trim().is_empty() {
            result.set(Some(Err("Say why: the audit trail keeps the reason with the change.".into())));
            return;
        }
        let Some((method, path, body)) = change_request(&what, &user, &why) else { return };
        leptos::task::spawn_local(async move {
            match send(method, path, body).await {
                Ok(answer) => {
                    result.set(Some(Ok(confirmation(&what, &user, &answer))));
                    reason.set(String::new());
                    reload.run(());
                }
                Err(e) => result.set(Some(Err(format!("Not changed: {e}")))),
            }
        });
    };
    view! {
        <form class="card account-form" id="change-user" on:submit=submit data-testid="change-user">
            <h2>"Change an account"</h2>
            <label>
                "Account"
                <select name="user" prop:value=move || chosen.get() on:change=move |ev| chosen.set(event_target_value(&ev))>
                    <option value="">"choose…"</option>
                    {move || {
                        names
                            .get()
                            .into_iter()
                            .map(|n| {
                                let (value, this) = (n.clone(), n.clone());
                                view! { <option value=value prop:selected=move || chosen.get() == this>{n}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label>
                "Change"
                <select name="change" bind:value=change>
                    <option value="">"choose…"</option>
                    <option value="viewer">{format!("make {}", Role::Viewer)}</option>
                    <option value="responder">{format!("make {}", Role::Responder)}</option>
                    <option value="admin">{format!("make {}", Role::Admin)}</option>
                    <option value="disable">"disable (ends their sessions)"</option>
                    <option value="enable">"enable"</option>
                    <option value="reset">"reset the password (shows a new one once)"</option>
                    <option value="revoke">"end their sessions"</option>
                </select>
            </label>
            <label class="wide">"Why (kept in the audit trail)" <input name="reason" bind:value=reason /></label>
            <button class="btn" type="submit">"Apply"</button>
            {said(result, "change-result")}
        </form>
    }
}

#[component]
fn CreateUser(reload: Callback<()>) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_string());
    let password = RwSignal::new(String::new());
    let reason = RwSignal::new(String::new());
    let result: Said = RwSignal::new(None);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = username.get_untracked();
        let body = format!(
            "{{\"username\":{},\"role\":{},\"password\":{},\"reason\":{}}}",
            quote(&name),
            quote(&role.get_untracked()),
            quote(&password.get_untracked()),
            quote(&reason.get_untracked())
        );
        leptos::task::spawn_local(async move {
            match send("POST", "/users".into(), body).await {
                Ok(_) => {
                    result.set(Some(Ok(format!("{name} was created; give them the password you chose."))));
                    for field in [username, password, reason] {
                        field.set(String::new());
                    }
                    reload.run(());
                }
                Err(e) => result.set(Some(Err(format!("Not created: {e}")))),
            }
        });
    };
    view! {
        <form class="card account-form" on:submit=submit data-testid="create-user">
            <h2>"Create an account"</h2>
            <label>"Account name" <input name="username" autocomplete="off" bind:value=username /></label>
            <label>
                "Role"
                <select name="role" bind:value=role>
                    <option value="viewer">"viewer"</option>
                    <option value="responder">"responder"</option>
                    <option value="admin">"admin"</option>
                </select>
            </label>
            <label>"Password (10 characters or more)" <input name="password" type="password" autocomplete="new-password" bind:value=password /></label>
            <label class="wide">"Why (kept in the audit trail)" <input name="reason" bind:value=reason /></label>
            <button class="btn" type="submit">"Create account"</button>
            {said(result, "create-result")}
        </form>
    }
}

/// Anyone's own password.
#[component]
fn OwnPassword() -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let result: Said = RwSignal::new(None);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = format!(
            "{{\"current_password\":{},\"new_password\":{}}}",
            quote(&current.get_untracked()),
            quote(&new.get_untracked())
        );
        leptos::task::spawn_local(async move {
            match send("PUT", "/session/password".into(), body).await {
                Ok(_) => {
                    result
                        .set(Some(Ok("Your password is changed; your other sessions ended, this one goes on.".into())));
                    current.set(String::new());
                    new.set(String::new());
                }
                Err(e) => result.set(Some(Err(format!("Not changed: {e}")))),
            }
        });
    };
    view! {
        <form class="card account-form" on:submit=submit data-testid="own-password">
            <h2>"Your password"</h2>
            <label>"Current password" <input name="current_password" type="password" autocomplete="current-password" bind:value=current /></label>
            <label>"New password (10 characters or more)" <input name="new_password" type="password" autocomplete="new-password" bind:value=new /></label>
            <button class="btn" type="submit">"Change my password"</button>
            {said(result, "own-password-result")}
        </form>
    }
}
