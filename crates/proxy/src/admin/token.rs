//! The admin endpoint's optional bearer token (`--admin-token-file`): every
//! path but /healthz, /readyz and the static /dashboard.js needs it, as an
//! `Authorization: Bearer TOKEN` header or a `?token=TOKEN` query parameter
//! (for a browser opening the dashboard; its script forwards it).

use axum::extract::{Request, State};
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

/// Compares in time that does not depend on where the inputs differ.
pub fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The token a request carries, from its header or its query string.
fn presented(req: &Request) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| {
        req.uri().query()?.split('&').find_map(|kv| {
            let v = kv.strip_prefix("token=")?;
            Some(percent_decode(v))
        })
    })
}

/// `%XX` and `+` as a browser encodes a query value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(x)) => {
                out.push(x);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Middleware: lets the request through when no token is set, the path is
/// open, or the token matches; otherwise 401 saying how to authenticate.
pub async fn check(State(token): State<Option<Arc<str>>>, req: Request, next: Next) -> Response {
    let Some(token) = token else {
        return next.run(req).await;
    };
    let ok = OPEN.contains(&req.uri().path())
        || presented(&req).is_some_and(|t| same_token(t.as_bytes(), token.as_bytes()));
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
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd"));
        assert!(!same_token(b"abc", b"abcd"));
        assert!(!same_token(b"", b"a"));
        assert!(same_token(b"", b""));
    }

    #[test]
    fn query_tokens_are_decoded() {
        assert_eq!(percent_decode("a%2Bb+c"), "a+b c");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%2"), "end%2");
    }
}
