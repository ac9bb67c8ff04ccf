//! The admin endpoint's optional bearer token (`--admin-token-file`): every
//! path but /healthz, /readyz and the static /dashboard.js needs it, as an
//! `Authorization: Bearer TOKEN` header or a `?token=TOKEN` query parameter
//! (for a browser opening the dashboard; its script forwards it).

use crate::secret::same_bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Paths open without the token: probes (kubelet, load balancers) and the
/// dashboard's script, which holds no data.
const OPEN: &[&str] = &["/healthz", "/readyz", "/dashboard.js"];

const HOW: &str = "unauthorized: this admin endpoint needs its token \
(--admin-token-file). Send `Authorization: Bearer TOKEN` \
(curl -H \"Authorization: Bearer $(cat FILE)\" ...), or open the dashboard as /?token=TOKEN\n";

/// The token a request carries, from its header or its query string.
fn presented(req: &Request) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| query_token(req.uri()))
}

/// `?token=` as a browser encodes it (`%XX`, `+`), decoded by axum's query
/// extractor.
fn query_token(uri: &axum::http::Uri) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Q {
        token: Option<String>,
    }
    Query::<Q>::try_from_uri(uri).ok()?.0.token
}

/// Middleware: lets the request through when no token is set, the path is
/// open, or the token matches; otherwise 401 saying how to authenticate.
pub async fn check(State(token): State<Option<Arc<str>>>, req: Request, next: Next) -> Response {
    let Some(token) = token else {
        return next.run(req).await;
    };
    let ok = OPEN.contains(&req.uri().path())
        || presented(&req).is_some_and(|t| same_bytes(t.as_bytes(), token.as_bytes()));
    if ok {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"redis-ha admin\"")],
        HOW,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(!same_bytes(b"", b"a"));
        assert!(same_bytes(b"", b""));
    }

    #[test]
    fn query_tokens_are_decoded() {
        let decode = |v: &str| query_token(&format!("/?x=1&token={v}").parse().unwrap()).unwrap();
        assert_eq!(decode("a%2Bb+c"), "a+b c");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(decode("end%2"), "end%2");
    }
}
