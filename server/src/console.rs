//! The server's implementation of the console interface: the real services, bound to
//! the caller. The `/api/v1` handlers and server-side rendering both go through it, so
//! every role check and rule lives here or below, once. One file per resource, as in
//! `http/api/`; `interface` implements the pages' `Console` and `Operations` with it.

use crate::actions::Caller;
use crate::audit::Client;
use crate::auth::AuthUser;
use crate::error::{AppError, Result};
use crate::limits::Work;
use crate::state::AppState;

mod accounts;
mod actions;
mod audit;
mod gateways;
mod incidents;
mod interface;
use app::dto::*;

/// The console as seen by one caller (or by nobody, for anonymous requests).
#[derive(Clone)]
pub struct ServerConsole {
    state: AppState,
    user: Option<AuthUser>,
    client: Client,
}
impl ServerConsole {
    /// Binds the services to `user`.
    pub fn new(state: AppState, user: Option<AuthUser>) -> Self {
        Self { state, user, client: Client::default() }
    }

    /// Records where the caller's requests come from, for the audit trail.
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The caller, if they hold at least `role`.
    fn caller(&self, role: Role) -> Result<&AuthUser> {
        let user = self.user.as_ref().ok_or(AppError::Unauthorized)?;
        user.require(role)?;
        Ok(user)
    }

    /// The signed-in caller as the mitigation engine sees them: a role to check and an
    /// actor to record (the engine checks the role itself, so refusals are audited).
    fn acting(&self) -> Result<Caller> {
        let user = self.user.as_ref().ok_or(AppError::Unauthorized)?;
        Ok(Caller { role: user.role, actor: self.client.actor(&user.username, user.role.as_str()) })
    }

    /// The caller's account id (0 for anonymous, who is refused before any capped work).
    fn user_id(&self) -> i64 {
        self.user.as_ref().map_or(0, |u| u.id)
    }

    /// A place among the open event streams and log tails, held as long as the stream.
    pub fn stream_permit(&self) -> Result<crate::limits::Permit> {
        let user = self.caller(Role::Viewer)?;
        self.state.caps.enter(Work::Stream, user.id)
    }

    /// The signed-in user.
    pub async fn session(&self) -> Result<SessionInfo> {
        Ok(self.caller(Role::Viewer)?.info())
    }
}
