//! Per-request context for the audit trail: a request id (echoed as `x-request-id`),
//! the client address and the user agent.

use crate::audit::Actor;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::{HeaderValue, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The id of the current request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Gives every request an id and returns it in `x-request-id`.
pub async fn assign_id(mut req: Request, next: Next) -> Response {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Where a request came from.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// Peer IP address.
    pub addr: String,
    /// `User-Agent`, at most 256 characters.
    pub user_agent: String,
    /// The request's id.
    pub request_id: String,
}

impl Client {
    /// Reads the context from request parts.
    pub fn from_parts(parts: &Parts) -> Self {
        Client {
            addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip().to_string())
                .unwrap_or_default(),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect())
                .unwrap_or_default(),
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default(),
        }
    }

    /// An audit actor named `name` with `role`, from this client.
    pub fn actor(&self, name: &str, role: &str) -> Actor {
        Actor {
            name: name.to_string(),
            role: role.to_string(),
            addr: self.addr.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Client::from_parts(parts))
    }
}
