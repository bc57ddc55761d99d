//! The one error type of the server. Every failure a client can see maps to a status
//! and a JSON body `{"error": CODE, "message": TEXT}`; database and backend details are
//! logged, never sent.

use app::dto::ApiError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Result with [`AppError`] by default.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No valid session.
    #[error("sign in first")]
    Unauthorized,
    /// Unknown user or wrong password: deliberately the same error for both.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Signed in, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing request without the session's CSRF token.
    #[error("missing or invalid X-CSRF-Token header")]
    Csrf,
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// A field's value is out of bounds; the message names the field.
    #[error("{field}: {message}")]
    Validation {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Conflicts with existing state (e.g. a taken username).
    #[error("{0}")]
    Conflict(String),
    /// A bound on how often or how much was reached: throttled sign-ins, caps on
    /// concurrent work. The reason names the bound.
    #[error("{reason}; try again in {retry_after_s} s")]
    TooManyRequests {
        /// Which bound, in words.
        reason: String,
        /// Seconds until the next attempt is accepted.
        retry_after_s: u64,
    },
    /// A body the server cannot read: bad JSON, wrong content type, too large.
    #[error("{message}")]
    BadRequest {
        /// 400, 413, 415 or 422.
        status: StatusCode,
        /// Safe explanation.
        message: String,
    },
    /// A known operation this version cannot do yet.
    #[error("{0}")]
    NotImplemented(String),
    /// A backend (cluster, Prometheus) is not answering; the detail is logged.
    #[error("{0}")]
    Unavailable(String),
    /// A backend answered but refused (RBAC, admission): the message says what it refused.
    #[error("{0}")]
    BadGateway(String),
    /// The database failed; the detail is logged.
    #[error("internal error")]
    Db(#[from] sqlx::Error),
    /// Any other server fault; the detail is logged.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// Shorthand for a validation error.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Validation { field, message: message.into() }
    }

    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized | AppError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadRequest { status, .. } => *status,
            AppError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            AppError::Db(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized => "unauthorized",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Forbidden(_) => "forbidden",
            AppError::Csrf => "csrf",
            AppError::NotFound(_) => "not_found",
            AppError::Validation { .. } => "validation",
            AppError::Conflict(_) => "conflict",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::BadRequest { status, .. } => match status.as_u16() {
                413 => "payload_too_large",
                415 => "unsupported_media_type",
                422 => "validation",
                _ => "bad_request",
            },
            AppError::NotImplemented(_) => "not_implemented",
            AppError::Unavailable(_) => "unavailable",
            AppError::BadGateway(_) => "backend_refused",
            AppError::Db(_) | AppError::Internal(_) => "internal",
        }
    }

    /// The body a client sees. Logs the detail of server-side faults.
    pub fn to_api(&self) -> ApiError {
        match self {
            AppError::Db(e) => tracing::error!(error = %e, "database error"),
            AppError::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        ApiError::new(self.code(), self.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.to_api())).into_response();
        if let AppError::TooManyRequests { retry_after_s, .. } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<crate::fleet::FleetError> for AppError {
    fn from(e: crate::fleet::FleetError) -> Self {
        match e {
            crate::fleet::FleetError::NotFound(id) => AppError::NotFound(format!("no gateway '{id}'")),
            crate::fleet::FleetError::Unavailable(detail) => {
                // The detail (cluster or Prometheus error text) is for the logs only.
                tracing::warn!(%detail, "fleet backend unavailable");
                AppError::Unavailable("the fleet backend is unavailable".into())
            }
            crate::fleet::FleetError::Refused(m) | crate::fleet::FleetError::Conflict(m) => AppError::Conflict(m),
            crate::fleet::FleetError::Forbidden(m) | crate::fleet::FleetError::Rejected(m) => {
                tracing::warn!(message = %m, "the cluster refused a request");
                AppError::BadGateway(m)
            }
            // What this backend or gateway kind cannot do is a refusal of the request (409,
            // saying what to do instead), not a server failure.
            crate::fleet::FleetError::Unsupported(m) => AppError::Conflict(m),
        }
    }
}
