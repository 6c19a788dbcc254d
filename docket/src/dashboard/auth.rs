//! The dashboard's token: every request carries it as a bearer token or as the password of
//! HTTP basic authentication.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64_lite::decode as base64_decode;

/// Let the request through when it carries `token`; else `401` with a basic challenge, so a
/// browser asks for it.
pub(super) async fn require_token(
    State(token): State<Arc<String>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(presented);
    match given {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "This docket dashboard needs its token (DOCKET_DASHBOARD_TOKEN), as a bearer \
                 token or as the password of basic authentication.\n",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"docket dashboard\", charset=\"UTF-8\""),
            );
            response
        }
    }
}

/// The token an `Authorization` header presents: a bearer token, or a basic password.
fn presented(authorization: &str) -> Option<String> {
    let (scheme, value) = authorization.trim().split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(base64_decode(value)?).ok()?;
        let (_user, password) = decoded.split_once(':')?;
        return Some(password.to_owned());
    }
    None
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Standard base64 decoding (RFC 4648, padding optional): all basic authentication needs.
mod base64_lite {
    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        for byte in text.trim_end_matches('=').bytes() {
            let value = match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            };
            bits = ((bits << 6) | u32::from(value)) & 0xff_ffff;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_comes_as_bearer_or_as_a_basic_password() {
        assert_eq!(presented("Bearer s3cret").as_deref(), Some("s3cret"));
        // `ops:s3cret`
        assert_eq!(
            presented("Basic b3BzOnMzY3JldA==").as_deref(),
            Some("s3cret")
        );
        assert_eq!(presented("basic b3BzOnMzY3JldA").as_deref(), Some("s3cret"));
        assert_eq!(presented("Basic !!!"), None);
        assert_eq!(presented("Digest x"), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
