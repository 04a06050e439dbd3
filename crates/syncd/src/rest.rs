//! The Syncthing-compatible REST API (axum): routes, auth, host check, handlers.
//!
//! Auth as Syncthing: every `/rest/*` path except `/rest/noauth/*` needs the API key in
//! `X-API-Key` or `Authorization: Bearer`, or a CSRF token that the GUI page received in its
//! cookie (see [`crate::gui`]); otherwise 403 `CSRF Error`. Without a GUI password, a CSRF
//! token is handed out and accepted only on loopback. With a GUI user and password
//! (`[gui] user`/`password`, see [`crate::auth`]), every path but `/rest/noauth/*` needs the
//! API key or a login first: a session cookie (`sessionid-<first 5 of the ID>`), or HTTP
//! Basic credentials, which start a session; otherwise 401 with a Basic challenge, as
//! Syncthing 1.19 answers. (1.19 also challenges `/rest/noauth/*`; later Syncthing versions
//! and syncd leave the health check open.) When the server is bound
//! to loopback, a request whose `Host` is not a loopback name is refused with 403
//! `Host check error` (DNS-rebinding guard). Errors are plain text. Every response that got
//! past the login carries `X-Syncthing-ID` and `X-Syncthing-Version`.
//!
//! Config changes (`/rest/config/folders`, `/rest/config/devices`, pause/resume) are applied to
//! the running engine first and then saved to the config file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path as UrlPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use syncd_engine::{DeviceId, EngineError, EngineHandle, FolderId, WaitError};
use tokio::sync::Mutex;

use crate::config::{Config, DeviceEntry, FolderEntry};
use crate::events::EventLog;
use crate::timefmt::rfc3339;

/// The version string we report (`X-Syncthing-Version`, `/rest/system/version`).
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Everything the handlers share.
pub struct RestState {
    /// The running engine.
    pub engine: EngineHandle,
    /// The syncd home (config file lives here).
    pub home: PathBuf,
    /// The config file model; the lock also serialises config changes.
    pub config: Mutex<Config>,
    /// Our device ID.
    pub my_id: DeviceId,
    /// The API key (fixed for the daemon's lifetime).
    pub api_key: String,
    /// The `/rest/events` log.
    pub events: Arc<EventLog>,
    /// The address the REST server is bound to.
    pub bound: std::net::SocketAddr,
    /// Whether `--gui-address` overrode the config.
    pub gui_overridden: bool,
    /// Start time.
    pub started: SystemTime,
    /// Start instant, for uptime.
    pub started_at: Instant,
    /// Notified when a client asks the daemon to shut down.
    pub shutdown: Arc<tokio::sync::Notify>,
    /// CSRF tokens handed to GUI pages.
    pub csrf: crate::gui::CsrfTokens,
    /// Last seen / last scan / last file, for `/rest/stats/*`.
    pub stats: Arc<crate::stats::Stats>,
    /// Scan and pull durations, for `/metrics`.
    pub durations: Arc<crate::metrics::Durations>,
    /// The GUI login: credentials, sessions, throttle.
    pub auth: crate::auth::Auth,
    /// Set (before [`RestState::shutdown`] is notified) when the daemon is to start again.
    pub restart: Arc<std::sync::atomic::AtomicBool>,
    /// Whether this run serves HTTPS (session cookies are then `Secure`).
    pub tls: bool,
    /// The config's GUI address when this run started.
    pub gui_address: String,
    /// The debug facilities (`/rest/system/debug`).
    pub debug: crate::debug::Facilities,
}

type Shared = Arc<RestState>;

/// A handler's error: status + plain-text body.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, format!("{}\n", self.1)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}
fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}
fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::UnknownFolder(_) => not_found("no such folder"),
        EngineError::UnknownDevice(_) => not_found("no such device"),
        other => internal(other),
    }
}

fn ok_json(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

fn ok_empty() -> ApiResult {
    Ok(StatusCode::OK.into_response())
}

/// Decoded `key=value` pairs of a query string (repeated keys kept in order), by the same
/// `application/x-www-form-urlencoded` decoder axum's `Query` uses. Decoding is lossy, never
/// an error: a bad escape stays as written.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default()
}

struct Query(Vec<(String, String)>);

impl Query {
    fn new(raw: &Option<String>) -> Self {
        Query(query_pairs(raw.as_deref()))
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| bad_request(format!("{key}: not a number: {v}")))
            })
            .transpose()
    }
    fn folder(&self, state: &RestState) -> Result<FolderId, ApiError> {
        let raw = self
            .get("folder")
            .ok_or_else(|| bad_request("missing folder parameter"))?;
        let id = FolderId::new(raw).map_err(|_| not_found("no such folder"))?;
        if !state.engine.folder_ids().contains(&id) {
            return Err(not_found("no such folder"));
        }
        Ok(id)
    }
    fn device(&self) -> Result<Option<DeviceId>, ApiError> {
        self.get("device")
            .map(|raw| {
                raw.parse::<DeviceId>()
                    .map_err(|e| internal(format!("\"{raw}\": device ID invalid: {e}")))
            })
            .transpose()
    }
}

/// The router with every route (the GUI's files are the fallback), the auth/host-check middleware and shared state.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/rest/noauth/health",
            get(|| async { axum::Json(json!({"status": "OK"})) }),
        )
        .route("/rest/system/ping", get(ping).post(ping))
        .route("/metrics", get(metrics))
        .route("/rest/system/version", get(version))
        .route("/rest/system/status", get(system_status))
        .route("/rest/system/connections", get(system_connections))
        .route("/rest/system/pause", post(pause))
        .route("/rest/system/resume", post(resume))
        .route("/rest/system/shutdown", post(shutdown))
        .route("/rest/system/restart", post(restart))
        .route("/rest/system/upgrade", get(upgrade_get).post(upgrade_post))
        .route("/rest/system/debug", get(debug_get).post(debug_post))
        .route("/rest/svc/report", get(svc_report))
        .route("/rest/system/config", get(get_config))
        .route("/rest/db/status", get(db_status))
        .route("/rest/db/completion", get(db_completion))
        .route("/rest/db/scan", post(db_scan))
        .route("/rest/folder/errors", get(folder_errors))
        .route(
            "/rest/folder/versions",
            get(folder_versions).post(restore_versions),
        )
        .route("/rest/events", get(events))
        .route("/rest/events/disk", get(events_disk))
        .route("/rest/config", get(get_config).put(put_config))
        .route(
            "/rest/config/insync",
            get(|| async { axum::Json(json!({"configInSync": true})) }),
        )
        .route("/rest/config/restart-required", get(restart_required))
        .route("/rest/config/options", get(get_options))
        .route(
            "/rest/config/gui",
            get(get_gui).put(put_gui).patch(patch_gui),
        )
        .route(
            "/rest/config/folders",
            get(list_folders).post(post_folders).put(put_folders),
        )
        .route(
            "/rest/config/folders/{id}",
            get(get_folder)
                .put(put_folder)
                .patch(patch_folder)
                .delete(delete_folder),
        )
        .route(
            "/rest/config/devices",
            get(list_devices).post(post_devices).put(put_devices),
        )
        .route(
            "/rest/config/devices/{id}",
            get(get_device)
                .put(put_device)
                .patch(patch_device)
                .delete(delete_device),
        )
        .route("/rest/svc/deviceid", get(svc_deviceid))
        .route("/rest/svc/random/string", get(svc_random_string))
        .route("/rest/system/browse", get(system_browse))
        .route("/rest/stats/device", get(stats_device))
        .route(
            "/rest/system/error",
            get(system_error).post(post_system_error),
        )
        .route("/rest/system/error/clear", post(clear_system_error))
        .route("/rest/system/discovery", get(system_discovery))
        .route("/rest/syncd/discovery", get(syncd_discovery))
        .route("/rest/svc/lang", get(svc_lang))
        .route("/rest/system/log", get(system_log))
        .route(
            "/rest/config/defaults/ignores",
            get(|| async { axum::Json(json!({"lines": []})) }),
        )
        .route("/rest/stats/folder", get(stats_folder))
        .route("/rest/db/ignores", get(get_ignores).post(post_ignores))
        .route("/rest/db/need", get(db_need))
        .route("/rest/db/remoteneed", get(db_remoteneed))
        .route("/rest/db/localchanged", get(db_localchanged))
        .route("/rest/db/override", post(db_override))
        .route("/rest/db/revert", post(db_revert))
        .route("/rest/db/file", get(db_file))
        .route("/rest/db/browse", get(db_browse))
        .route(
            "/rest/config/defaults/folder",
            get(default_folder)
                .put(put_default_folder)
                .patch(put_default_folder),
        )
        .route(
            "/rest/cluster/pending/devices",
            get(pending_devices).delete(dismiss_pending_device),
        )
        .route(
            "/rest/cluster/pending/folders",
            get(pending_folders).delete(dismiss_pending_folder),
        )
        .route("/rest/config/defaults/device", get(default_device))
        .route("/meta.js", get(meta_js))
        .route("/qr/", get(qr))
        .route("/rest/syncd/wait", get(syncd_wait))
        .route("/rest/syncd/verify", post(syncd_verify))
        .route("/rest/syncd/conflicts", get(conflicts_list))
        .route("/rest/syncd/conflicts/file", get(conflicts_file))
        .route("/rest/syncd/conflicts/resolve", post(conflicts_resolve))
        .fallback(gui_file)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// What the login check decided for one request.
enum Login {
    /// No login needed (none configured, the API key, or a no-auth path).
    NotNeeded,
    /// A live session cookie.
    Session,
    /// Right Basic credentials: a new session, whose `Set-Cookie` goes on the response.
    Started(HeaderValue),
    /// Refused: this response (401 challenge, or 429 while the address must wait).
    Refused(Response),
}

/// The GUI login (see the module doc); only when a user and password are configured.
async fn login(
    state: &RestState,
    headers: &HeaderMap,
    peer_addr: Option<std::net::SocketAddr>,
    key: bool,
    path: &str,
) -> Login {
    if key || path.starts_with("/rest/noauth/") || !state.auth.enabled() {
        return Login::NotNeeded;
    }
    let my_id = state.my_id.to_string();
    let cookie_name = crate::auth::session_cookie_name(&my_id);
    if crate::auth::cookie_value(headers, &cookie_name)
        .is_some_and(|v| state.auth.sessions.valid(v))
    {
        return Login::Session;
    }
    let challenge = || {
        let mut r = (StatusCode::UNAUTHORIZED, "Not Authorized\n").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Authorization Required\""),
        );
        Login::Refused(r)
    };
    let Some((user, password)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::basic_credentials)
    else {
        return challenge();
    };
    let peer = peer_addr.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    if let Err(wait) = state.auth.throttle.check(peer, Instant::now()) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many wrong logins; try again in {secs} s\n"),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Login::Refused(r);
    }
    let creds = state.auth.credentials();
    let ok = {
        let password = password.clone();
        let hash = creds.hash.clone();
        tokio::task::spawn_blocking(move || crate::auth::verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    } && crate::rest::ct_eq(&user, &creds.user);
    state.events.push(
        "LoginAttempt",
        json!({"success": ok, "username": user, "remoteAddress": peer_addr.map(|a| a.to_string()).unwrap_or_default()}),
    );
    if !ok {
        let n = state.auth.throttle.failed(peer, Instant::now());
        tracing::warn!(%peer, user = %user, failures = n, "wrong GUI credentials");
        return challenge();
    }
    state.auth.throttle.succeeded(peer);
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{cookie_name}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        state.auth.sessions.create()
    );
    match HeaderValue::from_str(&cookie) {
        Ok(v) => Login::Started(v),
        Err(_) => Login::Session,
    }
}

/// Host check, login, API-key or CSRF auth, and the identifying headers.
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let from_loopback = local_page(&req);
    let key = key_ok(&headers, &state);
    let host_ok = !state.bound.ip().is_loopback() || host_is_local(&headers);
    let mut started = None;
    if host_ok {
        match login(&state, &headers, peer_addr(&req), key, &path).await {
            Login::NotNeeded | Login::Session => {}
            Login::Started(cookie) => started = Some(cookie),
            Login::Refused(mut r) => {
                // As Syncthing: nothing about us (not even the ID) before the login.
                r.headers_mut().insert(
                    "X-Content-Type-Options",
                    HeaderValue::from_static("nosniff"),
                );
                return r;
            }
        }
    }
    let mut resp = if !host_ok {
        (StatusCode::FORBIDDEN, "Host check error\n").into_response()
    } else if needs_token(&path, key)
        && !(csrf_allowed(&state, from_loopback) && csrf_ok(&headers, &state))
    {
        (StatusCode::FORBIDDEN, "CSRF Error\n").into_response()
    } else {
        let mut r = next.run(req).await;
        if path.starts_with("/rest/") {
            let h = r.headers_mut();
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=0, no-cache, no-store"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        r
    };
    let h = resp.headers_mut();
    if let Some(c) = started {
        h.append(header::SET_COOKIE, c);
    }
    if let Ok(v) = HeaderValue::from_str(&state.my_id.to_string()) {
        h.insert("X-Syncthing-ID", v);
    }
    h.insert("X-Syncthing-Version", HeaderValue::from_static(VERSION));
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn host_is_local(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 clients may omit Host; nothing to rebind then.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request may use (or receive) a GUI CSRF token: it comes from this machine and
/// names this machine in `Host`. The second half matters when the GUI listens beyond
/// loopback (no host check then): a DNS-rebinding page in a local browser connects from
/// loopback but under its own host name, and must not be handed a token.
fn local_page(req: &Request) -> bool {
    peer_is_loopback(req) && host_is_local(req.headers())
}

/// Whether the TCP peer is on this machine. Without connection info (a router served some
/// other way) the answer is no, which only takes the CSRF-token path away.
fn peer_is_loopback(req: &Request) -> bool {
    peer_addr(req).is_some_and(|a| a.ip().is_loopback())
}

fn peer_addr(req: &Request) -> Option<std::net::SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(a)| *a)
}

/// Whether a request without the API key must carry a GUI CSRF token: every `/rest/*` path
/// but `/rest/noauth/*`.
fn needs_token(path: &str, key: bool) -> bool {
    !key && ((path.starts_with("/rest/") && !path.starts_with("/rest/noauth/"))
        || path == "/metrics")
}

/// Whether a GUI CSRF token may be handed out or used: after a login (when one is
/// configured, the request got past it), else only for a page on this machine.
fn csrf_allowed(state: &RestState, from_loopback: bool) -> bool {
    state.auth.enabled() || from_loopback
}

fn csrf_ok(headers: &HeaderMap, state: &RestState) -> bool {
    let name = crate::gui::csrf_header_name(&state.my_id.to_string());
    headers
        .get(name.as_str())
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| state.csrf.valid(t.trim()))
}

fn key_ok(headers: &HeaderMap, state: &RestState) -> bool {
    !state.api_key.is_empty() && presented_key(headers).is_some_and(|k| ct_eq(k, &state.api_key))
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("X-API-Key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Constant-time string equality (the key is a secret).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The GUI's files; a page load from loopback also gets a CSRF token cookie.
async fn gui_file(State(s): State<Shared>, method: Method, uri: Uri, req: Request) -> Response {
    let Some((content_type, body)) =
        crate::gui::asset(uri.path()).filter(|_| method == Method::GET)
    else {
        return ApiError(StatusCode::NOT_FOUND, "404 page not found".into()).into_response();
    };
    let mut r = crate::gui::asset_response(content_type, body);
    if content_type.starts_with("text/html") && csrf_allowed(&s, local_page(&req)) {
        let cookie = format!(
            "{}={}; Path=/; SameSite=Strict",
            crate::gui::csrf_cookie_name(&s.my_id.to_string()),
            s.csrf.issue()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    r
}

async fn meta_js(State(s): State<Shared>) -> Response {
    crate::gui::meta_js(&s.my_id.to_string())
}

async fn qr(RawQuery(q): RawQuery) -> Response {
    let q = Query::new(&q);
    crate::gui::qr_response(q.get("text").unwrap_or(""))
}

async fn ping() -> ApiResult {
    ok_json(json!({"ping": "pong"}))
}

async fn version() -> ApiResult {
    let os = std::env::consts::OS;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    ok_json(json!({
        "version": VERSION,
        "codename": "syncd",
        "longVersion": format!("syncd {VERSION} (rust {os}-{arch})"),
        "os": os,
        "arch": arch,
        "isBeta": false,
        "isCandidate": false,
        "isRelease": true,
        "date": "",
        "tags": [],
        "stamp": "",
        "user": "",
    }))
}

async fn system_status(State(s): State<Shared>) -> ApiResult {
    let mut services = serde_json::Map::new();
    for addr in s.engine.listen_addrs() {
        let url = format!("tcp://{addr}");
        services.insert(
            url.clone(),
            json!({"error": null, "lanAddresses": [url.clone()], "wanAddresses": [url]}),
        );
    }
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let rss = crate::memory::resident_bytes();
    let tilde = crate::home::user_home()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut status = json!({
        "myID": s.my_id.to_string(),
        "alloc": rss,
        "sys": rss,
        "goroutines": tasks,
        "cpuPercent": 0,
        "tilde": tilde,
        "pathSeparator": std::path::MAIN_SEPARATOR.to_string(),
        "urVersionMax": 3,
        "uptime": s.started_at.elapsed().as_secs(),
        "startTime": rfc3339(s.started),
        "connectionServiceStatus": services,
        "lastDialStatus": {},
        "guiAddressOverridden": s.gui_overridden,
        "guiAddressUsed": s.bound.to_string(),
    });
    // As Syncthing 1.19: the discovery* keys only while a finder is enabled.
    if let (Some(d), Some(o)) = (s.engine.discovery(), status.as_object_mut()) {
        let finders = d.status();
        let errors: serde_json::Map<String, Value> = finders
            .iter()
            .filter_map(|(k, e)| e.as_ref().map(|e| (k.clone(), json!(e))))
            .collect();
        let each: serde_json::Map<String, Value> = finders
            .iter()
            .map(|(k, e)| (k.clone(), json!({ "error": e })))
            .collect();
        o.insert("discoveryEnabled".into(), json!(true));
        o.insert("discoveryMethods".into(), json!(finders.len()));
        o.insert("discoveryErrors".into(), Value::Object(errors));
        o.insert("discoveryStatus".into(), Value::Object(each));
    }
    ok_json(status)
}

/// `/rest/syncd/discovery`: the same with the finders that know each device and when it
/// was last heard of, `{"<ID>":{"addresses":[…],"sources":["IPv4 local",…],"when":…}}`.
async fn syncd_discovery(State(s): State<Shared>) -> ApiResult {
    let mut out = serde_json::Map::new();
    if let Some(d) = s.engine.discovery() {
        for (device, entry) in d.cache() {
            out.insert(
                device.to_string(),
                json!({ "addresses": entry.addresses, "sources": entry.sources, "when": rfc3339(entry.when) }),
            );
        }
    }
    ok_json(Value::Object(out))
}

/// `/rest/system/discovery`: what discovery knows, `{"<ID>":{"addresses":[…]}}`.
async fn system_discovery(State(s): State<Shared>) -> ApiResult {
    let mut out = serde_json::Map::new();
    if let Some(d) = s.engine.discovery() {
        for (device, entry) in d.cache() {
            out.insert(device.to_string(), json!({ "addresses": entry.addresses }));
        }
    }
    ok_json(Value::Object(out))
}

async fn system_connections(State(s): State<Shared>) -> ApiResult {
    let list: Vec<_> = s
        .engine
        .connections()
        .into_iter()
        .filter(|c| c.device != s.my_id)
        .collect();
    ok_json(crate::json::connections(&list, SystemTime::now()))
}

async fn set_paused(s: &RestState, device: Option<DeviceId>, paused: bool) -> ApiResult {
    let mut config = s.config.lock().await;
    let targets: Vec<DeviceId> = match device {
        Some(d) => {
            if config.device(&d).is_none() {
                return Err(not_found("no such device"));
            }
            vec![d]
        }
        None => config.devices.iter().map(|d| d.id).collect(),
    };
    for id in targets {
        let r = if paused {
            s.engine.pause_device(id).await
        } else {
            s.engine.resume_device(id).await
        };
        r.map_err(engine_error)?;
        if let Some(d) = config.devices.iter_mut().find(|d| d.id == id) {
            d.paused = paused;
        }
    }
    save(s, &config)?;
    ok_empty()
}

async fn pause(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let device = Query::new(&q).device()?;
    set_paused(&s, device, true).await
}

async fn resume(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let device = Query::new(&q).device()?;
    set_paused(&s, device, false).await
}

async fn shutdown(State(s): State<Shared>) -> ApiResult {
    s.shutdown.notify_one();
    ok_json(json!({"ok": "shutting down"}))
}

/// `POST /rest/system/restart`: answers as Syncthing, then the daemon stops and starts again
/// (see [`crate::serve`]), reading its config anew.
async fn restart(State(s): State<Shared>) -> ApiResult {
    s.restart.store(true, std::sync::atomic::Ordering::SeqCst);
    s.shutdown.notify_one();
    ok_json(json!({"ok": "restarting"}))
}

/// syncd has no built-in upgrader; Syncthing built without one (`noupgrade`, as Debian's
/// 1.19.2) answers 503 to the check and 500 to the upgrade, both `upgrade unsupported`.
async fn upgrade_get() -> ApiResult {
    Err(ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "upgrade unsupported".into(),
    ))
}

async fn upgrade_post() -> ApiResult {
    Err(internal("upgrade unsupported"))
}

/// `GET /rest/system/debug`: `{"enabled": [...], "facilities": {name: description}}`.
async fn debug_get(State(s): State<Shared>) -> ApiResult {
    let facilities: serde_json::Map<String, Value> = crate::debug::FACILITIES
        .iter()
        .map(|(name, what, _)| ((*name).to_owned(), json!(what)))
        .collect();
    ok_json(json!({"enabled": s.debug.enabled(), "facilities": facilities}))
}

/// `POST /rest/system/debug?enable=a,b&disable=c`: an empty 200, as Syncthing.
async fn debug_post(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let list = |key: &str| -> Vec<String> {
        q.all(key)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let (enable, disable) = (list("enable"), list("disable"));
    let enable: Vec<&str> = enable.iter().map(String::as_str).collect();
    let disable: Vec<&str> = disable.iter().map(String::as_str).collect();
    s.debug.change(&enable, &disable).map_err(internal)?;
    ok_empty()
}

/// `GET /rest/svc/report`: the usage report Syncthing would send, with syncd's figures.
/// syncd never sends one (it has no usage reporting); the GUI shows this as a preview.
async fn svc_report(State(s): State<Shared>) -> ApiResult {
    let config = s.config.lock().await.clone();
    let mut figures = crate::json::UsageFigures {
        uptime_s: s.started_at.elapsed().as_secs(),
        rss: crate::memory::resident_bytes(),
        ..Default::default()
    };
    for f in s.engine.folder_ids() {
        if let Some(st) = s.engine.folder_status(&f) {
            figures.folder_files.push(st.global.files);
        }
    }
    for c in s.engine.connections() {
        if let (true, Some(addr)) = (c.connected, c.address) {
            let t = if addr.is_ipv6() { "tcp6" } else { "tcp4" };
            *figures.transports.entry(t.to_owned()).or_insert(0) += 1;
        }
    }
    ok_json(crate::json::usage_report(&config, &figures))
}

/// Whether a saved change waits for a restart: the GUI's address or HTTPS differ from the
/// running ones.
async fn restart_required(State(s): State<Shared>) -> ApiResult {
    let config = s.config.lock().await;
    let required =
        config.gui.tls != s.tls || (!s.gui_overridden && config.gui.address != s.gui_address);
    ok_json(json!({"requiresRestart": required}))
}

/// Applies a `gui` JSON object (Syncthing's keys) to `gui`: `address`, `user`, `password`
/// (a bcrypt hash is kept, anything else is hashed, empty removes it) and `useTLS`. Keys
/// it does not carry, and the API key (fixed while the daemon runs), are left as they are.
async fn apply_gui(mut gui: crate::config::Gui, v: &Value) -> Result<crate::config::Gui, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad_request("gui: expected an object"))?;
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) => Ok(Some(t.clone())),
            Some(_) => Err(bad_request(format!("gui.{key}: expected a string"))),
        }
    };
    if let Some(addr) = text("address")? {
        let addr = addr
            .strip_prefix("http://")
            .or_else(|| addr.strip_prefix("https://"))
            .unwrap_or(&addr);
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad_request(format!(
                "gui.address: `{addr}` is not IP:port (e.g. 127.0.0.1:8384)"
            )));
        }
        gui.address = addr.to_owned();
    }
    if let Some(user) = text("user")? {
        gui.user = user;
    }
    if let Some(password) = text("password")? {
        gui.password = if password.is_empty() || crate::auth::is_bcrypt_hash(&password) {
            password
        } else {
            tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
                .await
                .map_err(internal)?
                .map_err(internal)?
        };
    }
    match obj.get("useTLS") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => gui.tls = *b,
        Some(_) => return Err(bad_request("gui.useTLS: expected true or false")),
    }
    Ok(gui)
}

/// `PUT`/`PATCH /rest/config/gui`: see [`apply_gui`]. A new user or password ends every
/// session (the browser logs in again); the address and HTTPS apply at the next restart.
async fn put_gui(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let mut config = s.config.lock().await;
    config.gui = apply_gui(config.gui.clone(), &body).await?;
    save(&s, &config)?;
    ok_empty()
}

async fn patch_gui(state: State<Shared>, body: Bytes) -> ApiResult {
    put_gui(state, body).await
}

async fn get_config(State(s): State<Shared>) -> ApiResult {
    let config = s.config.lock().await;
    ok_json(crate::json::config(&config, s.my_id))
}

/// `PUT /rest/config`: the whole config, as Syncthing 1.19's own GUI saves every edit. Devices
/// and folders are made to match the body at run time (added, changed, removed; an entry
/// starts from the current one, so settings the JSON does not carry are kept, and an
/// unchanged entry is left running as it is); our own device entry sets our name. `gui`
/// goes through [`apply_gui`] (user, password, address, HTTPS). The other sections
/// (options, ldap, defaults) are accepted and not applied yet.
async fn put_config(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let list = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| bad_request(format!("{key}: expected an array")))
    };
    let (devices, folders) = (list("devices")?, list("folders")?);
    let mut config = s.config.lock().await;
    // Checked (and a new password hashed) before anything changes.
    let gui = match body.get("gui") {
        Some(g) if !g.is_null() => Some(apply_gui(config.gui.clone(), g).await?),
        _ => None,
    };
    let mut dev_entries = Vec::new();
    for d in &devices {
        let id = d
            .get("deviceID")
            .and_then(Value::as_str)
            .and_then(|raw| raw.parse::<DeviceId>().ok())
            .ok_or_else(|| bad_request("devices: each entry needs a valid deviceID"))?;
        let base = config
            .device(&id)
            .cloned()
            .unwrap_or_else(|| DeviceEntry::new(id));
        dev_entries.push(crate::json::apply_device(base, d).map_err(|e| bad_request(e.0))?);
    }
    let mut folder_entries = Vec::new();
    for f in &folders {
        let raw = f
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("folders: each entry needs an id"))?;
        let entry = match config.folder(raw).cloned() {
            Some(base) => {
                crate::json::apply_folder(base, f, &s.my_id).map_err(|e| bad_request(e.0))?
            }
            None => new_folder_from(f, &s.my_id)?,
        };
        if let Some(d) = entry
            .devices
            .iter()
            .find(|d| !dev_entries.iter().any(|e| e.id == **d))
        {
            return Err(bad_request(format!(
                "folder {} is shared with {d}, which is not among the devices",
                entry.id
            )));
        }
        folder_entries.push(entry);
    }
    let gone_folders: Vec<FolderId> = config
        .folders
        .iter()
        .map(|f| f.id.clone())
        .filter(|id| !folder_entries.iter().any(|e| e.id == *id))
        .collect();
    for id in gone_folders {
        s.engine.remove_folder(&id).await.map_err(engine_error)?;
        config.remove_folder(id.as_str());
    }
    let gone_devices: Vec<DeviceId> = config
        .devices
        .iter()
        .map(|d| d.id)
        .filter(|id| !dev_entries.iter().any(|e| e.id == *id))
        .collect();
    for id in gone_devices {
        s.engine.remove_device(id).await.map_err(engine_error)?;
        config.remove_device(&id);
    }
    for entry in dev_entries {
        if config.device(&entry.id) != Some(&entry) {
            apply_device_change(&s, &mut config, entry).await?;
        }
    }
    for entry in folder_entries {
        if config.folder(entry.id.as_str()) != Some(&entry) {
            apply_folder_change(&s, &mut config, entry).await?;
        }
    }
    if let Some(list) = body.get("remoteIgnoredDevices").filter(|v| !v.is_null()) {
        let ignored = crate::json::observed_devices(list).map_err(|e| bad_request(e.0))?;
        if ignored != config.ignored_devices {
            config.ignored_devices = ignored;
            s.engine
                .set_ignored_devices(config.ignored_devices.iter().map(|d| d.id).collect())
                .await;
        }
    }
    if let Some(folder) = body.get("defaults").and_then(|d| d.get("folder")) {
        set_defaults(&s, &mut config, folder).await?;
    }
    if let Some(gui) = gui {
        config.gui = gui;
    }
    save(&s, &config)?;
    ok_empty()
}

async fn get_options(State(s): State<Shared>) -> ApiResult {
    ok_json(crate::json::options(&*s.config.lock().await))
}

async fn get_gui(State(s): State<Shared>) -> ApiResult {
    ok_json(crate::json::gui(&*s.config.lock().await))
}

fn has_ignore_patterns(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path.join(syncd_types::names::IGNORE_FILE)).is_ok_and(|t| {
        t.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with("//")
        })
    })
}

async fn db_status(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let folder = Query::new(&q).folder(&s)?;
    let status = s
        .engine
        .folder_status(&folder)
        .ok_or_else(|| not_found("no such folder"))?;
    let path = s
        .config
        .lock()
        .await
        .folder(folder.as_str())
        .map(|f| f.to_engine().path);
    let ignores = path.is_some_and(|p| has_ignore_patterns(&p));
    ok_json(crate::json::folder_summary(&status, ignores))
}

async fn db_completion(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let device = q.device()?;
    let folders = if q.get("folder").is_some() {
        vec![q.folder(&s)?]
    } else {
        s.engine.folder_ids()
    };
    let (
        mut global_bytes,
        mut need_bytes,
        mut global_items,
        mut need_items,
        mut need_deletes,
        mut seq,
    ) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut single = None;
    for f in &folders {
        let Some(c) = s.engine.completion(f, device) else {
            continue;
        };
        global_bytes += c.global_bytes;
        need_bytes += c.need_bytes;
        global_items += c.global_items;
        need_items += c.need_items;
        need_deletes += c.need_deletes;
        seq += c.sequence;
        single = Some(c);
    }
    if folders.len() == 1 {
        if let Some(c) = single {
            return ok_json(crate::json::completion(&c));
        }
        return Err(not_found("no such folder"));
    }
    let completion =
        syncd_engine::Completion::compute(global_bytes, need_bytes, need_items, need_deletes);
    ok_json(json!({
        "completion": completion,
        "globalBytes": global_bytes,
        "needBytes": need_bytes,
        "globalItems": global_items,
        "needItems": need_items,
        "needDeletes": need_deletes,
        "sequence": seq,
    }))
}

async fn db_scan(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let folders = if q.get("folder").is_some() {
        vec![q.folder(&s)?]
    } else {
        s.engine.folder_ids()
    };
    let subs = q.all("sub");
    for f in &folders {
        if subs.is_empty() {
            s.engine.scan(f, None).await.map_err(engine_error)?;
        }
        for sub in &subs {
            s.engine.scan(f, Some(sub)).await.map_err(engine_error)?;
        }
    }
    ok_empty()
}

async fn folder_errors(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let folder = Query::new(&q).folder(&s)?;
    let status = s
        .engine
        .folder_status(&folder)
        .ok_or_else(|| not_found("no such folder"))?;
    let errors: Vec<Value> = status
        .errors
        .iter()
        .map(|e| json!({"path": e.path, "error": e.error}))
        .collect();
    let n = errors.len();
    ok_json(json!({"folder": folder.as_str(), "errors": errors, "page": 1, "perpage": n.max(1)}))
}

/// `GET /rest/folder/versions?folder=`: `{"path": [{"versionTime", "modTime", "size"}]}`,
/// newest first, as Syncthing answers (an empty object when versioning is off).
async fn folder_versions(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let folder = Query::new(&q).folder(&s)?;
    let versions = s.engine.versions(&folder).await.map_err(engine_error)?;
    let out: serde_json::Map<String, Value> = versions
        .into_iter()
        .map(|(path, list)| {
            let list: Vec<Value> = list
                .iter()
                .map(|v| {
                    json!({
                        "versionTime": crate::timefmt::rfc3339(v.version_time),
                        "modTime": crate::timefmt::rfc3339(v.mod_time),
                        "size": v.size,
                    })
                })
                .collect();
            (path, Value::Array(list))
        })
        .collect();
    ok_json(Value::Object(out))
}

/// `POST /rest/folder/versions?folder=` with `{"path": "<versionTime>"}`: restores each
/// (a file in the way is versioned first); answers `{"path": "error"}` for the failures only.
async fn restore_versions(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let folder = Query::new(&q).folder(&s)?;
    let body = parse_body(&body)?;
    let o = body
        .as_object()
        .ok_or_else(|| bad_request("expected an object of path: versionTime"))?;
    let mut items = Vec::new();
    let mut errors = serde_json::Map::new();
    for (path, t) in o {
        match t.as_str().and_then(crate::timefmt::parse_rfc3339) {
            Some(t) => items.push((path.clone(), t)),
            None => {
                errors.insert(path.clone(), json!("versionTime is not an RFC 3339 time"));
            }
        }
    }
    let failed = s
        .engine
        .restore_versions(&folder, items)
        .await
        .map_err(engine_error)?;
    errors.extend(failed.into_iter().map(|(p, e)| (p, Value::String(e))));
    ok_json(Value::Object(errors))
}

/// `page` and `perpage` of a listing, Syncthing's defaults 1 and 65536.
fn paging(q: &Query) -> Result<(usize, usize), ApiError> {
    let page: usize = q.number("page")?.unwrap_or(1).max(1);
    let perpage: usize = q.number("perpage")?.unwrap_or(65536).max(1);
    Ok((page, perpage))
}

fn file_list(files: &[syncd_engine::FileSummary]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|f| crate::json::file_info(f, false))
            .collect(),
    )
}

/// `GET /rest/db/need?folder=[&page=&perpage=]`: what this device still needs. The puller
/// works through it in one pass, so everything is listed under `rest`.
async fn db_need(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let folder = q.folder(&s)?;
    let (page, perpage) = paging(&q)?;
    let need = s
        .engine
        .needed_files(&folder, None, page, perpage)
        .await
        .map_err(engine_error)?;
    ok_json(json!({
        "page": page,
        "perpage": perpage,
        "progress": [],
        "queued": [],
        "rest": file_list(&need.files),
    }))
}

/// `GET /rest/db/remoteneed?folder=&device=[&page=&perpage=]`: what a peer still needs,
/// from the index it announced.
async fn db_remoteneed(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let folder = q.folder(&s)?;
    let device = q
        .device()?
        .ok_or_else(|| bad_request("missing device parameter"))?;
    let (page, perpage) = paging(&q)?;
    let need = s
        .engine
        .needed_files(&folder, Some(device), page, perpage)
        .await
        .map_err(engine_error)?;
    ok_json(json!({"files": file_list(&need.files), "page": page, "perpage": perpage}))
}

/// `GET /rest/db/localchanged?folder=[&page=&perpage=]`: the local changes of a receive-only
/// folder (what a revert would undo), in name order; empty for the other types.
async fn db_localchanged(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let folder = q.folder(&s)?;
    let (page, perpage) = paging(&q)?;
    let changed = s
        .engine
        .local_changes(&folder, page, perpage)
        .await
        .map_err(engine_error)?;
    ok_json(json!({"files": file_list(&changed.files), "page": page, "perpage": perpage}))
}

/// `POST /rest/db/override?folder=`: a send-only folder's versions win everywhere. As in
/// Syncthing, the answer is an empty 200 at once (the work runs after it), and a folder that
/// is unknown or of another type is left alone.
async fn db_override(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    folder_type_op(&s, &q, "override");
    ok_empty()
}

/// `POST /rest/db/revert?folder=`: a receive-only folder's local changes are dropped (see
/// [`db_override`] for the answer).
async fn db_revert(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    folder_type_op(&s, &q, "revert");
    ok_empty()
}

fn folder_type_op(s: &Shared, q: &Option<String>, op: &'static str) {
    let q = Query::new(q);
    let Some(folder) = q.get("folder").and_then(|f| FolderId::new(f).ok()) else {
        return;
    };
    let engine = s.engine.clone();
    tokio::spawn(async move {
        let r = if op == "override" {
            engine.override_changes(&folder).await
        } else {
            engine.revert_changes(&folder).await
        };
        match r {
            Ok(n) => {
                tracing::debug!(folder = %folder, op, records = n, "folder type operation done")
            }
            Err(e) => {
                tracing::info!(folder = %folder, op, error = %e, "folder type operation failed")
            }
        }
    });
}

/// `GET /rest/db/file?folder=&file=`: the global and local records of one name and which
/// devices have the global version.
async fn db_file(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let folder = q.folder(&s)?;
    let name = q
        .get("file")
        .ok_or_else(|| bad_request("missing file parameter"))?;
    let Some(d) = s
        .engine
        .file_details(&folder, name)
        .await
        .map_err(engine_error)?
    else {
        return Err(not_found("No such object in the index"));
    };
    let local = match &d.local {
        Some(l) => crate::json::file_info(l, true),
        // Syncthing answers with an empty record.
        None => crate::json::file_info(&syncd_engine::FileSummary::empty(), true),
    };
    ok_json(json!({
        "availability": d.availability.iter().map(|id| json!({
            "fromTemporary": false,
            "id": id.to_string(),
        })).collect::<Vec<_>>(),
        "global": crate::json::file_info(&d.global, false),
        "local": local,
        "mtime": {
            "err": null,
            "value": {"real": crate::timefmt::ZERO_TIME, "virtual": crate::timefmt::ZERO_TIME},
        },
    }))
}

/// `GET /rest/db/browse?folder=[&prefix=][&levels=]`: the folder's live global entries as
/// a tree (`levels`: how deep below the prefix to expand; -1, the default, is all).
async fn db_browse(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let folder = q.folder(&s)?;
    let prefix = q.get("prefix").unwrap_or("").trim_matches('/').to_owned();
    let levels: i64 = q.number("levels")?.unwrap_or(-1);
    let depth = usize::try_from(levels).map_or(usize::MAX, |l| l.saturating_add(1));
    let entries = s
        .engine
        .global_tree(&folder, Some(prefix.as_str()), depth)
        .await
        .map_err(|e| match e {
            EngineError::Index(m) => bad_request(m),
            other => engine_error(other),
        })?;
    ok_json(crate::json::browse_tree(&entries, &prefix, depth))
}

async fn events(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let since: u64 = q.number("since")?.unwrap_or(0);
    let limit: Option<usize> = q.number("limit")?;
    let timeout_s: u64 = q.number("timeout")?.unwrap_or(60);
    let mask = q.get("events").map(|e| {
        e.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let got = s
        .events
        .poll(since, mask, limit, Duration::from_secs(timeout_s))
        .await;
    ok_json(Value::Array(got))
}

/// `GET /rest/events/disk[?since=&limit=&timeout=]`: changes on disk, made here
/// (`LocalChangeDetected`) or by peers (`RemoteChangeDetected`); "Recent changes" in the GUI.
/// The daemon records them from the first request of a client on.
async fn events_disk(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    // Recorded from the first request on (they cost the engine an index read per update).
    s.engine.enable_disk_events();
    let q = Query::new(&q);
    let since: u64 = q.number("since")?.unwrap_or(0);
    let limit: Option<usize> = q.number("limit")?;
    let timeout_s: u64 = q.number("timeout")?.unwrap_or(60);
    let mask = vec![
        "LocalChangeDetected".to_owned(),
        "RemoteChangeDetected".to_owned(),
    ];
    let got = s
        .events
        .poll(since, Some(mask), limit, Duration::from_secs(timeout_s))
        .await;
    ok_json(Value::Array(got))
}

fn save(s: &RestState, config: &Config) -> Result<(), ApiError> {
    config.save(&s.home).map_err(internal)?;
    s.auth.set(&config.gui);
    s.events
        .push("ConfigSaved", crate::json::config(config, s.my_id));
    Ok(())
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON: {e}")))
}

fn folder_id(raw: &str) -> Result<FolderId, ApiError> {
    FolderId::new(raw).map_err(|_| not_found("No folder with given ID"))
}

fn device_id(raw: &str) -> Result<DeviceId, ApiError> {
    raw.parse()
        .map_err(|_| not_found("No device with given ID"))
}

/// Applies one folder to the engine (creating its root and marker) and to `config`.
async fn apply_folder_change(
    s: &RestState,
    config: &mut Config,
    entry: FolderEntry,
) -> Result<(), ApiError> {
    for d in &entry.devices {
        if config.device(d).is_none() {
            return Err(bad_request(format!(
                "folder {} is shared with unknown device {d}; add the device first",
                entry.id
            )));
        }
    }
    let engine_cfg = entry.to_engine();
    crate::home::create_folder_root(&engine_cfg.path)
        .map_err(|e| internal(format!("creating {}: {e}", engine_cfg.path.display())))?;
    s.engine
        .add_folder(engine_cfg)
        .await
        .map_err(engine_error)?;
    config.upsert_folder(entry);
    Ok(())
}

async fn list_folders(State(s): State<Shared>) -> ApiResult {
    let config = s.config.lock().await;
    ok_json(Value::Array(
        config
            .folders
            .iter()
            .map(|f| crate::json::folder(f, &s.my_id))
            .collect(),
    ))
}

async fn get_folder(State(s): State<Shared>, UrlPath(id): UrlPath<String>) -> ApiResult {
    let config = s.config.lock().await;
    let f = config
        .folder(&id)
        .ok_or_else(|| not_found("No folder with given ID"))?;
    ok_json(crate::json::folder(f, &s.my_id))
}

fn new_folder_from(body: &Value, my_id: &DeviceId) -> Result<FolderEntry, ApiError> {
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("id: required"))?;
    let id = FolderId::new(id).map_err(|e| bad_request(format!("id: {e}")))?;
    let base = FolderEntry::new(id, PathBuf::new());
    crate::json::apply_folder(base, body, my_id).map_err(|e| bad_request(e.0))
}

async fn post_folders(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let items = match body {
        Value::Array(items) => items,
        one => vec![one],
    };
    let mut config = s.config.lock().await;
    for item in &items {
        let entry = new_folder_from(item, &s.my_id)?;
        apply_folder_change(&s, &mut config, entry).await?;
    }
    save(&s, &config)?;
    ok_empty()
}

async fn put_folders(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let items = body
        .as_array()
        .ok_or_else(|| bad_request("expected an array of folders"))?;
    let entries = items
        .iter()
        .map(|i| new_folder_from(i, &s.my_id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = s.config.lock().await;
    let keep: Vec<&FolderId> = entries.iter().map(|e| &e.id).collect();
    let gone: Vec<FolderId> = config
        .folders
        .iter()
        .map(|f| f.id.clone())
        .filter(|id| !keep.contains(&id))
        .collect();
    for id in gone {
        s.engine.remove_folder(&id).await.map_err(engine_error)?;
        config.remove_folder(id.as_str());
    }
    for entry in entries {
        apply_folder_change(&s, &mut config, entry).await?;
    }
    save(&s, &config)?;
    ok_empty()
}

async fn put_folder(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult {
    let id = folder_id(&id)?;
    let body = parse_body(&body)?;
    let entry = crate::json::apply_folder(
        FolderEntry::new(id.clone(), PathBuf::new()),
        &body,
        &s.my_id,
    )
    .map_err(|e| bad_request(e.0))?;
    if entry.id != id {
        return Err(bad_request(
            "the folder ID in the body differs from the one in the path",
        ));
    }
    let mut config = s.config.lock().await;
    apply_folder_change(&s, &mut config, entry).await?;
    save(&s, &config)?;
    ok_empty()
}

async fn patch_folder(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    let mut config = s.config.lock().await;
    let current = config
        .folder(&id)
        .cloned()
        .ok_or_else(|| not_found("No folder with given ID"))?;
    let entry = crate::json::apply_folder(current.clone(), &body, &s.my_id)
        .map_err(|e| bad_request(e.0))?;
    if entry.id != current.id {
        return Err(bad_request("the folder ID cannot be changed"));
    }
    apply_folder_change(&s, &mut config, entry).await?;
    save(&s, &config)?;
    ok_empty()
}

async fn delete_folder(State(s): State<Shared>, UrlPath(id): UrlPath<String>) -> ApiResult {
    let fid = folder_id(&id)?;
    let mut config = s.config.lock().await;
    if config.folder(&id).is_none() {
        return Err(not_found("No folder with given ID"));
    }
    s.engine.remove_folder(&fid).await.map_err(engine_error)?;
    config.remove_folder(&id);
    save(&s, &config)?;
    ok_empty()
}

async fn list_devices(State(s): State<Shared>) -> ApiResult {
    let config = s.config.lock().await;
    let mut list = vec![crate::json::own_device(&config, s.my_id)];
    list.extend(
        config
            .devices
            .iter()
            .filter(|d| d.id != s.my_id)
            .map(crate::json::device),
    );
    ok_json(Value::Array(list))
}

async fn get_device(State(s): State<Shared>, UrlPath(id): UrlPath<String>) -> ApiResult {
    let id = device_id(&id)?;
    let config = s.config.lock().await;
    if id == s.my_id {
        return ok_json(crate::json::own_device(&config, s.my_id));
    }
    let d = config
        .device(&id)
        .ok_or_else(|| not_found("No device with given ID"))?;
    ok_json(crate::json::device(d))
}

/// Applies one device; our own ID only renames us.
async fn apply_device_change(
    s: &RestState,
    config: &mut Config,
    entry: DeviceEntry,
) -> Result<(), ApiError> {
    if entry.id == s.my_id {
        if !entry.name.is_empty() && entry.name != config.options.device_name {
            s.engine.set_device_name(entry.name.clone()).await;
            config.options.device_name = entry.name;
        }
        return Ok(());
    }
    s.engine
        .add_device(entry.to_engine())
        .await
        .map_err(engine_error)?;
    config.upsert_device(entry);
    Ok(())
}

fn new_device_from(body: &Value) -> Result<DeviceEntry, ApiError> {
    crate::json::apply_device(DeviceEntry::new(DeviceId::default()), body)
        .map_err(|e| bad_request(e.0))
}

async fn post_devices(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let items = match body {
        Value::Array(items) => items,
        one => vec![one],
    };
    let entries = items
        .iter()
        .map(new_device_from)
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = s.config.lock().await;
    for entry in entries {
        apply_device_change(&s, &mut config, entry).await?;
    }
    save(&s, &config)?;
    ok_empty()
}

async fn put_devices(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let items = body
        .as_array()
        .ok_or_else(|| bad_request("expected an array of devices"))?;
    let entries = items
        .iter()
        .map(new_device_from)
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = s.config.lock().await;
    let gone: Vec<DeviceId> = config
        .devices
        .iter()
        .map(|d| d.id)
        .filter(|id| !entries.iter().any(|e| e.id == *id))
        .collect();
    for id in gone {
        s.engine.remove_device(id).await.map_err(engine_error)?;
        config.remove_device(&id);
    }
    for entry in entries {
        apply_device_change(&s, &mut config, entry).await?;
    }
    save(&s, &config)?;
    ok_empty()
}

async fn put_device(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult {
    let id = device_id(&id)?;
    let body = parse_body(&body)?;
    let entry =
        crate::json::apply_device(DeviceEntry::new(id), &body).map_err(|e| bad_request(e.0))?;
    if entry.id != id {
        return Err(bad_request(
            "the device ID in the body differs from the one in the path",
        ));
    }
    let mut config = s.config.lock().await;
    apply_device_change(&s, &mut config, entry).await?;
    save(&s, &config)?;
    ok_empty()
}

async fn patch_device(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult {
    let id = device_id(&id)?;
    let body = parse_body(&body)?;
    let mut config = s.config.lock().await;
    let current = config
        .device(&id)
        .cloned()
        .ok_or_else(|| not_found("No device with given ID"))?;
    let entry = crate::json::apply_device(current, &body).map_err(|e| bad_request(e.0))?;
    if entry.id != id {
        return Err(bad_request("the device ID cannot be changed"));
    }
    apply_device_change(&s, &mut config, entry).await?;
    save(&s, &config)?;
    ok_empty()
}

async fn delete_device(State(s): State<Shared>, UrlPath(id): UrlPath<String>) -> ApiResult {
    let id = device_id(&id)?;
    let mut config = s.config.lock().await;
    if config.device(&id).is_none() {
        return Err(not_found("No device with given ID"));
    }
    s.engine.remove_device(id).await.map_err(engine_error)?;
    // Folders shared with it are re-applied without it.
    let affected: Vec<FolderEntry> = config
        .folders
        .iter()
        .filter(|f| f.devices.contains(&id))
        .cloned()
        .map(|mut f| {
            f.devices.retain(|d| *d != id);
            f
        })
        .collect();
    config.remove_device(&id);
    for f in affected {
        s.engine
            .add_folder(f.to_engine())
            .await
            .map_err(engine_error)?;
    }
    save(&s, &config)?;
    ok_empty()
}

async fn svc_deviceid(RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let raw = q.get("id").unwrap_or("");
    match raw.parse::<DeviceId>() {
        Ok(id) => ok_json(json!({"id": id.to_string()})),
        Err(e) => ok_json(json!({"error": e.to_string()})),
    }
}

/// `{"random": "..."}`: `length` (default 32, at most 1024) alphanumeric characters.
async fn svc_random_string(RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let length: usize = q.number("length")?.unwrap_or(32).min(1024);
    let random = crate::config::random_alphanumeric(length);
    ok_json(json!({ "random": random }))
}

async fn system_log(RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    ok_json(crate::logbuf::json(q.get("since")))
}

async fn system_error(State(s): State<Shared>) -> ApiResult {
    ok_json(s.stats.errors_json())
}

/// The body (plain text) becomes an error shown in the GUI, as Syncthing.
async fn post_system_error(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if !text.is_empty() {
        let message: String = text.chars().take(4096).collect();
        s.stats.push_error(SystemTime::now(), message);
    }
    ok_empty()
}

async fn clear_system_error(State(s): State<Shared>) -> ApiResult {
    s.stats.clear_errors();
    ok_empty()
}

/// The browser's languages, lower case, as Syncthing 1.19 (`[""]` without the header).
async fn svc_lang(headers: HeaderMap) -> ApiResult {
    let raw = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let langs: Vec<String> = raw
        .split(',')
        .take(32)
        .map(|l| l.split(';').next().unwrap_or("").trim().to_lowercase())
        .collect();
    ok_json(json!(langs))
}

async fn stats_device(State(s): State<Shared>) -> ApiResult {
    let mut ids = vec![s.my_id];
    ids.extend(s.config.lock().await.devices.iter().map(|d| d.id));
    ok_json(
        s.stats
            .devices_json(&ids, SystemTime::now(), Instant::now()),
    )
}

async fn stats_folder(State(s): State<Shared>) -> ApiResult {
    let ids: Vec<FolderId> = s
        .config
        .lock()
        .await
        .folders
        .iter()
        .map(|f| f.id.clone())
        .collect();
    ok_json(s.stats.folders_json(&ids))
}

/// `GET /rest/system/browse?current=`: directories whose path starts with `current` (after `~`
/// expansion), each with a trailing separator, as Syncthing 1.19's path completion. `current`
/// ending in a separator lists that directory's subdirectories; an empty `current` lists the
/// roots. Names that start with the typed prefix exactly come first, then case-insensitive
/// matches. At most 1,000 entries.
async fn system_browse(RawQuery(q): RawQuery) -> ApiResult {
    let current = Query::new(&q).get("current").unwrap_or("").to_owned();
    let list = tokio::task::spawn_blocking(move || browse(&current))
        .await
        .map_err(internal)?;
    ok_json(json!(list))
}

fn browse(current: &str) -> Vec<String> {
    const MAX: usize = 1000;
    let sep = std::path::MAIN_SEPARATOR;
    if current.is_empty() {
        return vec![sep.to_string()];
    }
    let expanded = crate::home::expand_tilde(std::path::Path::new(current));
    let mut text = expanded.to_string_lossy().into_owned();
    if current.ends_with(sep) && !text.ends_with(sep) {
        text.push(sep);
    }
    let (parent, prefix) = match text.rfind(sep) {
        Some(i) => (
            text.get(..=i).unwrap_or(""),
            text.get(i + 1..).unwrap_or(""),
        ),
        None => return Vec::new(),
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let lower = prefix.to_lowercase();
    let mut exact = Vec::new();
    let mut folded = Vec::new();
    for entry in entries.flatten().take(100_000) {
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = format!("{parent}{name}{sep}");
        if name.starts_with(prefix) {
            exact.push(full);
        } else if name.to_lowercase().starts_with(&lower) {
            folded.push(full);
        }
    }
    exact.sort();
    folded.sort();
    exact.extend(folded);
    exact.truncate(MAX);
    exact
}

/// A folder's config entry by the `folder` parameter; like Syncthing 1.19.2, an unknown folder
/// is a 500 on the ignores endpoints.
async fn folder_path(s: &RestState, q: &Query) -> Result<PathBuf, ApiError> {
    let raw = q
        .get("folder")
        .ok_or_else(|| bad_request("missing folder parameter"))?;
    let config = s.config.lock().await;
    config
        .folder(raw)
        .map(|f| f.to_engine().path)
        .ok_or_else(|| internal(format!("folder {raw:?} does not exist")))
}

/// `{"ignore": [...]|null, "expanded": [...]|null, "error": null|"..."}` for a folder root.
fn ignores_json(root: &std::path::Path) -> Value {
    let file = root.join(syncd_types::names::IGNORE_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return json!({"ignore": null, "expanded": null, "error": null});
        }
        Err(e) => {
            return json!({"ignore": null, "expanded": null, "error": format!("{}: {e}", file.display())});
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let loader = |rel: &str| std::fs::read_to_string(root.join(rel));
    match syncd_ignore::IgnoreSet::parse(&text, &loader, syncd_ignore::Options::for_this_platform())
    {
        Ok(set) => {
            let expanded: Vec<&str> = set.patterns().collect();
            json!({"ignore": lines, "expanded": expanded, "error": null})
        }
        Err(e) => json!({"ignore": lines, "expanded": null, "error": e.to_string()}),
    }
}

async fn get_ignores(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let root = folder_path(&s, &Query::new(&q)).await?;
    ok_json(ignores_json(&root))
}

/// Writes `.stignore` from `{"ignore": [lines]}` and rescans the folder, as Syncthing does.
async fn post_ignores(State(s): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let q = Query::new(&q);
    let root = folder_path(&s, &q).await?;
    let body = parse_body(&body)?;
    let lines = match body.get("ignore") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad_request("ignore: expected an array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad_request("ignore: expected an array of strings")),
    };
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let file = root.join(syncd_types::names::IGNORE_FILE);
    let tmp = root.join(".stignore.syncd-tmp");
    std::fs::write(&tmp, text.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| internal(format!("writing {}: {e}", file.display())))?;
    if let Some(folder) = q.get("folder").and_then(|f| FolderId::new(f).ok())
        && s.engine.folder_ids().contains(&folder)
    {
        match s.engine.scan(&folder, None).await {
            // A paused folder reads the new patterns when it resumes (the GUI sets the
            // patterns of a new folder while it is still paused, as Syncthing's does).
            Ok(()) | Err(EngineError::FolderPaused(_)) => {}
            Err(e) => return Err(engine_error(e)),
        }
    }
    ok_json(ignores_json(&root))
}

/// The defaults a new folder starts from (Syncthing's `/rest/config/defaults/folder`).
async fn default_folder(State(s): State<Shared>) -> ApiResult {
    let path = s.config.lock().await.defaults.folder_path.clone();
    let placeholder = FolderId::new("default").map_err(internal)?;
    let f = FolderEntry::new(placeholder, path);
    let mut v = crate::json::folder(&f, &s.my_id);
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(""));
        o.insert("label".into(), json!(""));
    }
    ok_json(v)
}

/// `PUT`/`PATCH /rest/config/defaults/folder`: of the defaults, syncd keeps the path new
/// folders are created in (where folders accepted automatically go).
async fn put_default_folder(State(s): State<Shared>, body: Bytes) -> ApiResult {
    let body = parse_body(&body)?;
    let mut config = s.config.lock().await;
    set_defaults(&s, &mut config, &body).await?;
    save(&s, &config)?;
    drop(config);
    default_folder(State(s)).await
}

/// Applies a Syncthing default-folder object (its `path`) to the config and the engine.
async fn set_defaults(s: &RestState, config: &mut Config, folder: &Value) -> Result<(), ApiError> {
    let Some(path) = folder.get("path").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let path = path
        .as_str()
        .ok_or_else(|| bad_request("path: expected a string"))?;
    if path.is_empty() {
        return Err(bad_request("path: the default folder path cannot be empty"));
    }
    config.defaults.folder_path = PathBuf::from(path);
    s.engine.set_folder_defaults(config.folder_defaults()).await;
    Ok(())
}

/// `GET /metrics`: Prometheus text format (see [`crate::metrics`]).
async fn metrics(State(s): State<Shared>) -> Response {
    let body = crate::metrics::render(&s.engine, &s.durations);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// `GET /rest/cluster/pending/devices`.
async fn pending_devices(State(s): State<Shared>) -> ApiResult {
    ok_json(crate::json::pending_devices(&s.engine.pending_devices()))
}

/// `DELETE /rest/cluster/pending/devices?device=ID`: forgets the entry (it comes back when
/// the device connects again; ignoring it is `remoteIgnoredDevices` in the config).
async fn dismiss_pending_device(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let raw = q
        .get("device")
        .ok_or_else(|| bad_request("missing device parameter"))?;
    let id: DeviceId = raw
        .parse()
        .map_err(|e| bad_request(format!("\"{raw}\": device ID invalid: {e}")))?;
    s.engine.dismiss_pending_device(id);
    ok_empty()
}

/// `GET /rest/cluster/pending/folders[?device=ID]`.
async fn pending_folders(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let device = q.device()?;
    ok_json(crate::json::pending_folders(
        &s.engine.pending_folders(device),
    ))
}

/// `DELETE /rest/cluster/pending/folders?folder=F[&device=ID]`.
async fn dismiss_pending_folder(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let raw = q
        .get("folder")
        .ok_or_else(|| bad_request("missing folder parameter"))?;
    let folder = FolderId::new(raw).map_err(|e| bad_request(format!("folder: {e}")))?;
    let device = match q.get("device") {
        Some(raw) => Some(
            raw.parse::<DeviceId>()
                .map_err(|e| bad_request(format!("\"{raw}\": device ID invalid: {e}")))?,
        ),
        None => None,
    };
    s.engine.dismiss_pending_folder(&folder, device);
    ok_empty()
}

/// Follows the engine's own configuration changes (folders accepted automatically, devices
/// introduced) into the config file, until the event stream ends.
pub async fn absorb_engine_changes(s: Shared) {
    let mut rx = s.engine.subscribe();
    loop {
        match rx.recv().await {
            Ok(syncd_engine::Event::ConfigChanged { why }) => {
                let mut config = s.config.lock().await;
                if config.absorb_engine(&s.engine.config()) {
                    tracing::info!(change = %why, "configuration changed by the engine; saving");
                    if let Err(e) = save(&s, &config) {
                        tracing::error!(error = %e.1, "cannot save the configuration");
                    }
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Something may have been missed: take in whatever the engine has.
                let mut config = s.config.lock().await;
                if config.absorb_engine(&s.engine.config())
                    && let Err(e) = save(&s, &config)
                {
                    tracing::error!(error = %e.1, "cannot save the configuration");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// The defaults a new device starts from (Syncthing's `/rest/config/defaults/device`).
async fn default_device() -> ApiResult {
    let mut v = crate::json::device(&DeviceEntry::new(DeviceId::default()));
    if let Some(o) = v.as_object_mut() {
        o.insert("deviceID".into(), json!(""));
    }
    ok_json(v)
}

fn conflict_error(e: crate::conflicts::ConflictError) -> ApiError {
    use crate::conflicts::ConflictError as E;
    match e {
        E::BadPath(_) | E::NotAConflictCopy(_) => bad_request(e.to_string()),
        E::Missing(_) => not_found(e.to_string()),
        other => internal(other),
    }
}

/// The root of the folder named by `folder`, 404 if unknown.
async fn known_folder_root(s: &RestState, q: &Query) -> Result<(FolderId, PathBuf), ApiError> {
    known_folder(s, q).await.map(|(id, f)| (id, f.path))
}

/// The engine configuration of the folder named by `folder`, 404 if unknown.
async fn known_folder(
    s: &RestState,
    q: &Query,
) -> Result<(FolderId, syncd_engine::FolderConfig), ApiError> {
    let id = q.folder(s)?;
    let config = s.config.lock().await;
    let folder = config
        .folder(id.as_str())
        .map(|f| f.to_engine())
        .ok_or_else(|| not_found("no such folder"))?;
    Ok((id, folder))
}

/// `GET /rest/syncd/conflicts?folder=`: `{"folder", "conflicts": [...]}` (see
/// [`crate::conflicts::list`]).
async fn conflicts_list(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let (id, root) = known_folder_root(&s, &Query::new(&q)).await?;
    let list = tokio::task::spawn_blocking(move || crate::conflicts::list(&root))
        .await
        .map_err(internal)?;
    ok_json(json!({"folder": id.as_str(), "conflicts": list}))
}

/// `GET /rest/syncd/conflicts/file?folder=&path=`: one version's text.
async fn conflicts_file(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let (_, root) = known_folder_root(&s, &q).await?;
    let path = q
        .get("path")
        .ok_or_else(|| bad_request("missing path parameter"))?
        .to_owned();
    let v = tokio::task::spawn_blocking(move || crate::conflicts::read_text(&root, &path))
        .await
        .map_err(internal)?
        .map_err(conflict_error)?;
    ok_json(v)
}

/// `POST /rest/syncd/conflicts/resolve?folder=` with `{"conflict": path, "keep":
/// "conflict"|"original"}`; the folder is rescanned so the change goes out at once.
async fn conflicts_resolve(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let (id, folder) = known_folder(&s, &Query::new(&q)).await?;
    let (root, versioning) = (folder.path, folder.versioning);
    let body = parse_body(&body)?;
    let copy = body
        .get("conflict")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("conflict: the conflict copy's path is required"))?
        .to_owned();
    let keep = match body.get("keep").and_then(Value::as_str) {
        Some("conflict") => crate::conflicts::Keep::Copy,
        Some("original") => crate::conflicts::Keep::Original,
        _ => return Err(bad_request("keep: \"conflict\" or \"original\"")),
    };
    let original = tokio::task::spawn_blocking(move || {
        crate::conflicts::resolve(&root, &copy, keep, &versioning)
    })
    .await
    .map_err(internal)?
    .map_err(conflict_error)?;
    match s.engine.scan(&id, None).await {
        Ok(()) | Err(EngineError::FolderPaused(_)) => {}
        Err(e) => return Err(engine_error(e)),
    }
    ok_json(json!({"folder": id.as_str(), "original": original}))
}

/// syncd's own endpoint behind `syncd wait`: the engine's `wait_until_synced`.
/// 200 `{"inSync":true}` when in sync; 200 `{"inSync":false,"timedOut":true,"missing":[...]}`
/// on timeout; 404 for an unknown folder; 500 for a folder in error.
async fn syncd_wait(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::new(&q);
    let folder = q.folder(&s)?;
    let timeout: f64 = q.number("timeout")?.unwrap_or(60.0);
    let timeout = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(60));
    match s.engine.wait_until_synced(&folder, timeout).await {
        Ok(()) => ok_json(json!({"folder": folder.as_str(), "inSync": true})),
        Err(WaitError::Timeout { missing, .. }) => ok_json(
            json!({"folder": folder.as_str(), "inSync": false, "timedOut": true, "missing": missing}),
        ),
        Err(WaitError::UnknownFolder(_)) => Err(not_found("no such folder")),
        Err(other) => Err(internal(other)),
    }
}

/// `POST /rest/syncd/verify?folder=` (syncd's own): block verification of the folder (see
/// `EngineHandle::verify`); answers when it is done with
/// `{"folder", "files", "bytes", "changed", "unreadable": [{"path", "error"}],
/// "damaged": [{"path", "blocks", "size"}]}`.
async fn syncd_verify(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let folder = Query::new(&q).folder(&s)?;
    let r = s.engine.verify(&folder).await.map_err(engine_error)?;
    let unreadable: Vec<Value> = r
        .unreadable
        .iter()
        .map(|e| json!({"path": e.path, "error": e.error}))
        .collect();
    let damaged: Vec<Value> = r
        .damaged
        .iter()
        .map(|d| json!({"path": d.path, "blocks": d.blocks, "size": d.size}))
        .collect();
    ok_json(json!({
        "folder": folder.as_str(),
        "files": r.files,
        "bytes": r.bytes,
        "changed": r.changed,
        "unreadable": unreadable,
        "damaged": damaged,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_percent_and_plus_and_keep_repeats() {
        let q = query_pairs(Some("folder=a%20b&sub=x+y&sub=z&flag"));
        assert_eq!(
            q,
            vec![
                ("folder".into(), "a b".into()),
                ("sub".into(), "x y".into()),
                ("sub".into(), "z".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(
            query_pairs(Some("a=%zz%")),
            vec![("a".into(), "%zz%".into())]
        );
    }

    #[test]
    fn host_check_accepts_loopback_names_only() {
        for (host, ok) in [
            ("localhost:8384", true),
            ("127.0.0.1:8384", true),
            ("[::1]:8384", true),
            ("LOCALHOST", true),
            ("127.0.0.1", true),
            ("evil.com", false),
            ("evil.com:8384", false),
            ("192.168.1.2:8384", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(host_is_local(&h), ok, "{host}");
        }
    }

    #[test]
    fn key_is_read_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("X-API-Key", HeaderValue::from_static("abc"));
        assert_eq!(presented_key(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented_key(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h), None);
    }

    #[test]
    fn browse_lists_matching_directories_exact_case_first() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["Alpha", "alpine", "beta", "alps/inner"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("alfile"), b"").unwrap();
        let root = format!("{}/", dir.path().display());
        assert_eq!(
            browse(&format!("{root}al")),
            vec![
                format!("{root}alpine/"),
                format!("{root}alps/"),
                format!("{root}Alpha/")
            ]
        );
        assert_eq!(
            browse(&format!("{root}alps/")),
            vec![format!("{root}alps/inner/")]
        );
        assert_eq!(browse(&root).len(), 4, "every directory, no files");
        assert!(browse(&format!("{root}nothing/here")).is_empty());
        assert_eq!(browse(""), vec!["/".to_owned()]);
    }

    #[test]
    fn a_gui_token_needs_a_loopback_peer_and_a_loopback_host_name() {
        let req = |peer: &str, host: &'static str| {
            let mut r = Request::new(axum::body::Body::empty());
            r.extensions_mut()
                .insert(ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()));
            r.headers_mut()
                .insert(header::HOST, HeaderValue::from_static(host));
            r
        };
        assert!(local_page(&req("127.0.0.1:5000", "localhost:8384")));
        assert!(local_page(&req("127.0.0.1:5000", "127.0.0.1:8385")));
        assert!(!local_page(&req("127.0.0.1:5000", "rebound.example:8384")));
        assert!(!local_page(&req("192.168.1.9:5000", "localhost:8384")));
    }

    #[test]
    fn only_loopback_peers_count_as_local() {
        let with_peer = |addr: &str| {
            let mut req = Request::new(axum::body::Body::empty());
            req.extensions_mut()
                .insert(ConnectInfo(addr.parse::<std::net::SocketAddr>().unwrap()));
            req
        };
        assert!(peer_is_loopback(&with_peer("127.0.0.1:5000")));
        assert!(peer_is_loopback(&with_peer("[::1]:5000")));
        assert!(!peer_is_loopback(&with_peer("192.168.1.2:5000")));
        assert!(!peer_is_loopback(&with_peer("[2001:db8::1]:5000")));
        assert!(
            !peer_is_loopback(&Request::new(axum::body::Body::empty())),
            "no connection info: not loopback"
        );
    }

    #[test]
    fn constant_time_compare_is_equality() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "ab"));
    }
}
