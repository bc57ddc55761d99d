//! Accounts: signing in and out, your own password, and (admins) everyone's accounts.
//! The session's own handlers live in [`super::super::session`], beside its cookies.

use super::super::extract::{ApiJson, ApiPath as Path, Console};
use super::super::openapi::{Doc, Shape, json};
use super::super::session;
use super::{Access, Name, Route, change};
use crate::audit::Kind;
use crate::error::Result;
use app::dto::{self as d, Role, UserSummary};
use axum::Json;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post, put};

/// The rows of this resource.
pub(super) fn routes() -> Vec<Route> {
    use Access::{Anyone, AtLeast};
    use Role::{Admin, Viewer};
    const USER: Name = Name::Param("username");
    vec![
        Route::new(
            Method::GET,
            "/session",
            AtLeast(Viewer),
            get(session::current),
            Doc::get("Who is signed in", json::<d::SessionInfo>()),
        ),
        Route::new(
            Method::POST,
            "/session",
            Anyone,
            post(session::login),
            change("Sign in", json::<d::LoginRequest>(), "200", json::<d::SessionInfo>()),
        ),
        Route::new(
            Method::DELETE,
            "/session",
            AtLeast(Viewer),
            delete(session::logout),
            change("Sign out", Shape::Empty, "204", Shape::Empty),
        )
        .records(Kind::Logout, Name::None, Name::None),
        Route::new(
            Method::PUT,
            "/session/password",
            AtLeast(Viewer),
            put(session::change_password),
            change("Change your own password", json::<d::PasswordChange>(), "204", Shape::Empty),
        )
        .records(Kind::UserChange, Name::Is("change-own-password"), Name::None),
        Route::new(
            Method::GET,
            "/users",
            AtLeast(Admin),
            get(users),
            Doc::get("Every account", json::<Vec<UserSummary>>()),
        ),
        Route::new(
            Method::POST,
            "/users",
            AtLeast(Admin),
            post(create_user),
            change("Create an account", json::<d::NewUser>(), "201", json::<UserSummary>()),
        )
        .records(Kind::UserChange, Name::Is("create-user"), Name::None),
        Route::new(
            Method::PATCH,
            "/users/{username}",
            AtLeast(Admin),
            patch(update_user),
            change(
                "Change an account's role, or disable or enable it",
                json::<d::UserUpdate>(),
                "200",
                json::<UserSummary>(),
            ),
        )
        .records(Kind::UserChange, Name::Is("change-user"), USER),
        Route::new(
            Method::POST,
            "/users/{username}/password",
            AtLeast(Admin),
            post(reset_password),
            change(
                "Reset a local account's password (shown once)",
                json::<d::ReasonBody>(),
                "200",
                json::<d::PasswordReset>(),
            ),
        )
        .records(Kind::UserChange, Name::Is("reset-password"), USER),
        Route::new(
            Method::POST,
            "/users/{username}/revoke-sessions",
            AtLeast(Admin),
            post(revoke_sessions),
            change("End an account's sessions", json::<d::ReasonBody>(), "200", json::<d::SessionsRevoked>()),
        )
        .records(Kind::UserChange, Name::Is("revoke-sessions"), USER),
    ]
}

async fn users(console: Console) -> Result<Json<Vec<UserSummary>>> {
    Ok(Json(console.users().await?))
}

// Any JSON is read here; its fields only after the role check, so a viewer learns
// nothing from 422s (and an anonymous caller gets 401 before the body is read).
async fn create_user(
    console: Console,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<UserSummary>)> {
    Ok((StatusCode::CREATED, Json(console.create_user(body).await?)))
}

async fn update_user(
    console: Console,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<UserSummary>> {
    Ok(Json(console.update_user(&username, body).await?))
}

async fn reset_password(
    console: Console,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<d::PasswordReset>> {
    Ok(Json(console.reset_password(&username, body).await?))
}

async fn revoke_sessions(
    console: Console,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<d::SessionsRevoked>> {
    Ok(Json(console.revoke_sessions(&username, body).await?))
}
