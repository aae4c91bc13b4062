//! CORS for the endpoints a browser app calls itself: `/token`, `/userinfo`, `/revoke`, `/jwks`
//! and the discovery documents (both `.well-known` names, both positions of the RFC 8414 one).
//! `/authorize`, the hosted pages and `/introspect` (confidential clients, server to server)
//! never carry CORS headers: they are not wrapped.
//!
//! Rules:
//! - The allowed origins of an app are the origins (`scheme://host[:port]`) of every `http(s)`
//!   redirect URI registered by any of its clients; private-use schemes (native apps) add
//!   nothing. The set is computed when the [`Issuer`](crate::tenant::Issuer) is built, so a
//!   client added or changed through the admin API counts at once (the issuer is rebuilt on the
//!   change) and a request never touches a store for CORS. Matching is exact on the serialised
//!   origin a browser sends: no wildcards, no `*` (not even on the public discovery and JWKS
//!   documents), and the loopback any-port rule of RFC 8252 is not extended to CORS (it exists
//!   for native apps, which are not browsers).
//! - A request without an `Origin` header does no CORS work: no issuer lookup, no parsing.
//!   Its response only gains `Vary: Origin`, because these responses do vary by origin and a
//!   shared cache must not hand an origin-less copy of the cacheable discovery/JWKS documents
//!   to a browser app (or one origin's copy to another).
//! - An allowed origin gets `Access-Control-Allow-Origin: <that origin>` on every response of
//!   these endpoints, errors included (a browser app must be able to read `invalid_grant`), and
//!   `Access-Control-Expose-Headers: WWW-Authenticate` (the RFC 6750 / RFC 6749 challenge).
//!   `Access-Control-Allow-Credentials` is never sent: every token here is a bearer token, and
//!   no endpoint reads a cookie.
//! - Preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed
//!   origin: 204 with `Access-Control-Allow-Origin`, `Access-Control-Allow-Methods` (the
//!   endpoint's methods), `Access-Control-Allow-Headers: Authorization, Content-Type` and
//!   `Access-Control-Max-Age: 600`.
//! - Any other `OPTIONS` (a foreign origin's preflight, or a plain `OPTIONS`): 204 with `Allow`
//!   and no CORS headers. The browser then fails the preflight on the missing
//!   `Access-Control-Allow-Origin`; answering with the same status either way keeps CORS
//!   decisions in the headers, where the Fetch standard looks for them.
//! - A repeated `Origin` header, or one that is not visible ASCII, is treated as foreign.

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use futures::future::{BoxFuture, Either, FutureExt, Map};

use crate::state::AppState;
use crate::tenant::Lookup;

const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("Authorization, Content-Type");
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
const EXPOSE: HeaderValue = HeaderValue::from_static("WWW-Authenticate");
const ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// The methods of one endpoint: for `Allow` and for `Access-Control-Allow-Methods`.
#[derive(Clone, Copy)]
struct Methods {
    allow: &'static str,
    cors: &'static str,
}

const GET: Methods = Methods { allow: "GET, HEAD, OPTIONS", cors: "GET" };
const POST: Methods = Methods { allow: "POST, OPTIONS", cors: "POST" };
const GET_POST: Methods = Methods { allow: "GET, HEAD, POST, OPTIONS", cors: "GET, POST" };

/// `GET` (and `HEAD`) with CORS, plus the preflight.
pub fn get<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    axum::routing::get(Cors(handler)).merge(options(GET))
}

/// `POST` with CORS, plus the preflight.
pub fn post<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    axum::routing::post(Cors(handler)).merge(options(POST))
}

/// `GET` and `POST` served by one handler, with CORS, plus the preflight.
pub fn get_post<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    axum::routing::get(Cors(handler.clone())).post(Cors(handler)).merge(options(GET_POST))
}

/// A handler whose responses carry CORS headers for the app's allowed origins.
#[derive(Clone)]
struct Cors<H>(H);

type Plain<F> = Map<F, fn(Response) -> Response>;

impl<H, T> Handler<T, AppState> for Cors<H>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    type Future = Either<Plain<H::Future>, BoxFuture<'static, Response>>;

    fn call(self, req: Request, state: AppState) -> Self::Future {
        if !req.headers().contains_key(header::ORIGIN) {
            return Either::Left(self.0.call(req, state).map(vary as fn(Response) -> Response));
        }
        Either::Right(Box::pin(with_origin(self.0, req, state)))
    }
}

fn vary(mut res: Response) -> Response {
    res.headers_mut().append(header::VARY, ORIGIN);
    res
}

/// The `Origin` header if it is sent exactly once and is visible ASCII.
fn origin_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut all = headers.get_all(header::ORIGIN).iter();
    let first = all.next()?;
    (all.next().is_none() && first.to_str().is_ok()).then(|| first.clone())
}

async fn with_origin<H, T>(handler: H, req: Request, state: AppState) -> Response
where
    H: Handler<T, AppState>,
{
    let (mut parts, body) = req.into_parts();
    let origin = origin_of(&parts.headers);
    let slug = Path::<String>::from_request_parts(&mut parts, &state).await.ok();
    let mut res = handler.call(Request::from_parts(parts, body), state.clone()).await;
    res.headers_mut().append(header::VARY, ORIGIN);
    // No app (404) or an inactive one (503): nothing is registered, so no CORS; and no second
    // store query for a slug the handler just failed to find.
    if matches!(res.status(), StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE) {
        return res;
    }
    if let (Some(origin), Some(Path(slug))) = (origin, slug)
        && allowed(&state, &slug, &origin).await
    {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE);
    }
    res
}

/// Whether `origin` is one of the app's allowed origins. The issuer comes from the cache the
/// handler has just used, so this is a map lookup.
async fn allowed(state: &AppState, slug: &str, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else { return false };
    match state.issuers.lookup(slug).await {
        Ok(Lookup::Active(issuer)) => issuer.cors_origins.contains(origin),
        _ => false,
    }
}

/// The `OPTIONS` handler of one endpoint.
fn options(methods: Methods) -> MethodRouter<AppState> {
    axum::routing::options(
        move |State(state): State<AppState>, Path(slug): Path<String>, headers: HeaderMap| {
            preflight(state, slug, headers, methods)
        },
    )
}

async fn preflight(state: AppState, slug: String, headers: HeaderMap, methods: Methods) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(methods.allow));
    h.append(header::VARY, ORIGIN);
    if !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return res;
    }
    let Some(origin) = origin_of(&headers) else { return res };
    if allowed(&state, &slug, &origin).await {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods.cors));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        h.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    }
    res
}
