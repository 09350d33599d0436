//! Every failure a client can see, as `{"error": CODE, "message": TEXT}` with the
//! right status. User input never produces a 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    IdentityUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            AppError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            AppError::IdentityUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "identity_unavailable")
            }
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        AppError::Store(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        (
            status,
            Json(json!({"error": code, "message": self.to_string()})),
        )
            .into_response()
    }
}
