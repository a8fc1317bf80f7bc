//! Dashboard sessions: who may look, and proof that a form came from our own page.
//!
//! Invariants:
//! - With API tokens configured, no dashboard page or action is reached without a session, and a session is
//!   only created by presenting one of the tokens on the login form. Without tokens (only allowed on a
//!   loopback listener) a session is handed out on the first page view, so forms still carry a CSRF token.
//! - Every POST under `/ui` (but the login itself) carries the session's CSRF token, as the `csrf` form field
//!   or the `x-csrf-token` header, compared in constant time; and, when the browser says where the request
//!   came from (`Sec-Fetch-Site`, `Origin`), it came from this origin. The cookie is `HttpOnly;
//!   SameSite=Strict`, so other sites cannot even send it.
//! - Sessions live in memory (a restart logs everyone out), expire after [`SESSION_TTL`], and are bounded in
//!   number ([`MAX_SESSIONS`]; the oldest goes first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::Tokens;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "offload_session";
/// How long a session lasts after login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once.
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// Largest form body read to find its CSRF token (bulk selections are a few thousand ids at most).
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The CSRF token of the request's session, for forms to carry; added to every guarded request.
#[derive(Debug, Clone)]
pub(crate) struct Csrf(pub(crate) String);

/// The dashboard's sessions and what opens one.
pub(crate) struct Sessions {
    /// `None`: no tokens configured, the dashboard is open.
    tokens: Option<Arc<Tokens>>,
    map: Mutex<HashMap<String, Session>>,
}

struct Session {
    csrf: String,
    expires: Instant,
}

/// 256 random bits, hex.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    pub(crate) fn new(tokens: Option<Arc<Tokens>>) -> Self {
        Self {
            tokens,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// True when a login is needed.
    pub(crate) fn requires_login(&self) -> bool {
        self.tokens.is_some()
    }

    /// True when `token` is one of the API tokens.
    pub(crate) fn token_accepted(&self, token: &str) -> bool {
        self.tokens
            .as_ref()
            .is_some_and(|t| !token.is_empty() && t.accepts(token.as_bytes()))
    }

    /// Opens a session; returns its id and CSRF token.
    pub(crate) fn open(&self) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    /// The CSRF token of a live session.
    fn csrf_of(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > now => Some(s.csrf.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep serving.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `Set-Cookie` value that stores a session id.
pub(crate) fn cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    ))
    .expect("hex ids are valid header text")
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("offload_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id the request's cookie names, if any.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Middleware on every dashboard route but the login page and the assets.
pub(crate) async fn guard(
    State(sessions): State<Arc<Sessions>>,
    request: Request,
    next: Next,
) -> Response {
    let is_post = request.method() == Method::POST;
    if is_post && !same_origin(request.headers()) {
        return forbidden("the form was sent from another site");
    }
    let existing =
        session_id(request.headers()).and_then(|id| sessions.csrf_of(&id).map(|csrf| (id, csrf)));
    let (csrf, new_cookie) = match existing {
        Some((_, csrf)) => (csrf, None),
        None if sessions.requires_login() => {
            if is_post {
                return forbidden("your session ended; log in again");
            }
            let next = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/ui");
            let target = format!(
                "/ui/login?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        None => {
            if is_post {
                return forbidden("the form carries no session; reload the page");
            }
            let (id, csrf) = sessions.open();
            (csrf, Some(cookie(&id)))
        }
    };
    let mut request = if is_post {
        match check_csrf(request, &csrf).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    } else {
        request
    };
    request.extensions_mut().insert(Csrf(csrf));
    let mut response = next.run(request).await;
    if let Some(cookie) = new_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Reads the body to find the CSRF token, then hands the request on with the same body.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, Response> {
    let header_token = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| forbidden("the form is too large"))?;
    let form_token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    let presented = header_token.or(form_token).unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        return Err(forbidden(
            "the form's security token is missing or stale; reload the page",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// False when the browser says the request came from another site or origin: `Sec-Fetch-Site` is
/// `cross-site` or `same-site` (our own forms send `same-origin`; `none` is the user's own navigation), or
/// `Origin` names another host. Requests without these headers (not from a browser) pass: their CSRF
/// token still has to match.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("cross-site"));
    if matches!(fetch_site, Some(site) if site.eq_ignore_ascii_case("cross-site")
        || site.eq_ignore_ascii_case("same-site"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("403 Forbidden: {why}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_and_close() {
        let sessions = Sessions::new(None);
        let (id, csrf) = sessions.open();
        assert_eq!(sessions.csrf_of(&id), Some(csrf.clone()));
        assert_eq!(csrf.len(), 64);
        sessions.close(&id);
        assert_eq!(sessions.csrf_of(&id), None);
    }

    #[test]
    fn session_count_is_bounded() {
        let sessions = Sessions::new(None);
        for _ in 0..MAX_SESSIONS + 5 {
            sessions.open();
        }
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; offload_session=abc; b=2"),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("abc"));
    }

    #[test]
    fn origin_must_match_host() {
        let mut headers = HeaderMap::new();
        assert!(
            same_origin(&headers),
            "no Origin header: not a browser form"
        );
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7070"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7070"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
    }

    #[test]
    fn fetch_metadata_from_another_site_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7070"));
        for (site, ok) in [
            ("same-origin", true),
            ("none", true),
            ("cross-site", false),
            ("Cross-Site", false),
            ("same-site", false),
        ] {
            headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert_eq!(same_origin(&headers), ok, "Sec-Fetch-Site: {site}");
        }
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7070"),
        );
        assert!(
            !same_origin(&headers),
            "the browser's word wins over Origin"
        );
    }
}
