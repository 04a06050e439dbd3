//! The GUI login, as Syncthing 1.19 does it: an optional user and bcrypt-hashed password;
//! a browser logs in with HTTP Basic auth and then carries a session cookie
//! (`sessionid-<first 5 of the device ID>`); scripts keep using the API key.
//!
//! Main types: [`Auth`] (the current credentials, the [`Sessions`] and the [`LoginThrottle`]),
//! shared by every request. Invariants: a password is only ever stored or compared as a
//! bcrypt hash; a session ID is 32 random alphanumerics and only a bounded number of them
//! (and of throttled addresses) is remembered, so no client can grow our memory; changing the
//! user or password ends every session.
//!
//! Slowing down guessing: after [`FREE_FAILURES`] wrong logins in a row from one address,
//! that address must wait (1 s, doubling with each further failure, at most
//! [`MAX_LOCKOUT`]) before its next password is even checked; attempts during the wait are
//! answered 429 with `Retry-After`. A right password resets the count. (Syncthing sleeps
//! 100-200 ms after every failure, which parallel guesses do not feel.)

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// bcrypt cost for new hashes: Go's `bcrypt.DefaultCost`, which Syncthing uses.
pub const BCRYPT_COST: u32 = 10;
/// How many sessions are remembered (each login adds one; the oldest is forgotten).
pub const MAX_SESSIONS: usize = 1000;
/// Wrong logins in a row from one address before it has to wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between two login attempts of one address.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(60);
/// How many addresses the throttle remembers (the least recently failed is forgotten).
const MAX_THROTTLED: usize = 4096;
/// Length of a session ID (Syncthing's).
const SESSION_ID_LEN: usize = 32;

/// A password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the GUI password: {0}")]
pub struct HashError(String);

/// Whether `s` looks like a bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`, 60 characters),
/// which is how Syncthing tells a stored hash from a password typed into the config.
pub fn is_bcrypt_hash(s: &str) -> bool {
    s.len() == 60
        && ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| s.starts_with(p))
}

/// The bcrypt hash of `plain` (cost [`BCRYPT_COST`], random salt).
pub fn hash_password(plain: &str) -> Result<String, HashError> {
    if plain.is_empty() {
        return Err(HashError("the password is empty".into()));
    }
    bcrypt::hash(plain, BCRYPT_COST).map_err(|e| HashError(e.to_string()))
}

/// Whether `plain` matches the bcrypt `hash`. A malformed hash matches nothing.
pub fn verify_password(plain: &str, hash: &str) -> bool {
    is_bcrypt_hash(hash) && bcrypt::verify(plain, hash).unwrap_or(false)
}

/// The user and password of an `Authorization: Basic …` header value. Bytes that are not
/// UTF-8 are read as ISO-8859-1 (what browsers send for non-ASCII credentials).
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, b64) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(b64.trim())?;
    let text = match String::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Standard base64 with optional padding; `None` on anything else. (Only Basic auth needs
/// it; not worth a dependency.)
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() > 16 * 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The session IDs handed to logged-in browsers (most recent last).
#[derive(Debug, Default)]
pub struct Sessions {
    ids: Mutex<VecDeque<String>>,
}

impl Sessions {
    /// A new session ID, remembered.
    pub fn create(&self) -> String {
        let id = crate::config::random_alphanumeric(SESSION_ID_LEN);
        if let Ok(mut ids) = self.ids.lock() {
            ids.push_back(id.clone());
            while ids.len() > MAX_SESSIONS {
                ids.pop_front();
            }
        }
        id
    }

    /// Whether `id` is a live session.
    pub fn valid(&self, id: &str) -> bool {
        !id.is_empty()
            && self
                .ids
                .lock()
                .is_ok_and(|ids| ids.iter().any(|k| crate::rest::ct_eq(k, id)))
    }

    /// Ends every session.
    pub fn clear(&self) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.clear();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    wait_until: Option<Instant>,
}

/// Wrong logins per client address (see the module doc).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    by_addr: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginThrottle {
    /// `Err(retry_after)` while `addr` has to wait before its next attempt is checked.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(map) = self.by_addr.lock() else {
            return Ok(());
        };
        match map.get(&addr).and_then(|f| f.wait_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong login; returns how many there have been in a row from `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) -> u32 {
        let Ok(mut map) = self.by_addr.lock() else {
            return 0;
        };
        if map.len() >= MAX_THROTTLED && !map.contains_key(&addr) {
            // Forget the address whose last failure is oldest.
            if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a) {
                map.remove(&oldest);
            }
        }
        let f = map.entry(addr).or_insert(Failures {
            count: 0,
            last: now,
            wait_until: None,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
        f.wait_until = lockout(f.count).map(|d| now + d);
        f.count
    }

    /// Records a right login: `addr` starts from zero again.
    pub fn succeeded(&self, addr: IpAddr) {
        if let Ok(mut map) = self.by_addr.lock() {
            map.remove(&addr);
        }
    }

    /// Wrong logins in a row from `addr` so far.
    #[cfg(test)]
    pub fn failures(&self, addr: IpAddr) -> u32 {
        self.by_addr
            .lock()
            .ok()
            .and_then(|m| m.get(&addr).map(|f| f.count))
            .unwrap_or(0)
    }
}

/// The wait after the `count`-th wrong login in a row.
fn lockout(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES)?;
    let secs = 1u64 << over.min(6);
    Some(Duration::from_secs(secs).min(MAX_LOCKOUT))
}

/// The GUI user and password hash in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The bcrypt hash.
    pub hash: String,
}

impl Credentials {
    /// Whether a login is required.
    pub fn enabled(&self) -> bool {
        !self.user.is_empty() && !self.hash.is_empty()
    }
}

/// Everything the login needs, shared by all requests.
#[derive(Debug, Default)]
pub struct Auth {
    creds: RwLock<Credentials>,
    /// Logged-in browsers.
    pub sessions: Sessions,
    /// Wrong-login counts.
    pub throttle: LoginThrottle,
}

impl Auth {
    /// Starts with the config's user and hash.
    pub fn new(gui: &crate::config::Gui) -> Self {
        let a = Auth::default();
        a.set(gui);
        a
    }

    /// Takes the config's user and hash; a change ends every session.
    pub fn set(&self, gui: &crate::config::Gui) {
        let new = Credentials {
            user: gui.user.clone(),
            hash: gui.password.clone(),
        };
        if let Ok(mut c) = self.creds.write()
            && *c != new
        {
            *c = new;
            self.sessions.clear();
        }
    }

    /// The credentials in force.
    pub fn credentials(&self) -> Credentials {
        self.creds.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Whether a login is required.
    pub fn enabled(&self) -> bool {
        self.creds.read().is_ok_and(|c| c.enabled())
    }
}

/// The session cookie's name: `sessionid-` + the first 5 characters of the device ID.
pub fn session_cookie_name(device_id: &str) -> String {
    format!("sessionid-{}", device_id.get(..5).unwrap_or(device_id))
}

/// The value of cookie `name` in the `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hashes_verify_and_are_recognised() {
        let h = hash_password("s3cret").unwrap();
        assert!(is_bcrypt_hash(&h), "{h}");
        assert!(h.starts_with("$2b$10$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cre", &h));
        assert!(
            !verify_password("s3cret", "s3cret"),
            "plain text is not a hash"
        );
        assert!(hash_password("").is_err());
    }

    #[test]
    fn a_hash_made_by_syncthing_verifies() {
        // `syncthing generate --gui-password=secret` (1.19.2) wrote this.
        let h = "$2a$10$lhvsZqgHSQhxNumR/h/mI.YivAHmdlXBcEcYUTHtn.gqCXzfXk.3m";
        assert!(is_bcrypt_hash(h));
        assert!(verify_password("secret", h));
        assert!(!verify_password("Secret", h));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "alice:pa:ss" in base64
        assert_eq!(
            basic_credentials("Basic YWxpY2U6cGE6c3M="),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(
            basic_credentials("basic YWxpY2U6"),
            Some(("alice".into(), String::new()))
        );
        // ISO-8859-1 "é:x"
        assert_eq!(
            basic_credentials("Basic 6Tp4"),
            Some(("é".into(), "x".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic YWxpY2U="), None, "no colon");
        assert_eq!(basic_credentials("Basic"), None);
    }

    #[test]
    fn five_failures_are_free_then_the_wait_doubles_up_to_a_cap() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let now = Instant::now();
        for i in 1..FREE_FAILURES {
            assert_eq!(t.failed(ip, now), i);
            assert!(t.check(ip, now).is_ok());
        }
        assert_eq!(t.failed(ip, now), FREE_FAILURES);
        assert_eq!(t.check(ip, now), Err(Duration::from_secs(1)));
        assert!(t.check(other, now).is_ok(), "per address");
        assert!(t.check(ip, now + Duration::from_secs(1)).is_ok());
        t.failed(ip, now);
        assert_eq!(t.check(ip, now), Err(Duration::from_secs(2)));
        for _ in 0..20 {
            t.failed(ip, now);
        }
        assert_eq!(t.check(ip, now), Err(MAX_LOCKOUT));
        t.succeeded(ip);
        assert_eq!(t.failures(ip), 0);
        assert!(t.check(ip, now).is_ok());
    }

    #[test]
    fn sessions_are_bounded_and_cleared_when_the_password_changes() {
        let mut gui = crate::config::Gui {
            user: "u".into(),
            password: hash_password("p").unwrap(),
            ..crate::config::Gui::default()
        };
        let a = Auth::new(&gui);
        assert!(a.enabled());
        let first = a.sessions.create();
        assert!(a.sessions.valid(&first));
        assert!(!a.sessions.valid(""));
        a.set(&gui);
        assert!(a.sessions.valid(&first), "no change, sessions stay");
        for _ in 0..MAX_SESSIONS {
            a.sessions.create();
        }
        assert!(!a.sessions.valid(&first), "the oldest is forgotten");
        let s = a.sessions.create();
        gui.password = hash_password("q").unwrap();
        a.set(&gui);
        assert!(!a.sessions.valid(&s), "a new password ends sessions");
        gui.user.clear();
        a.set(&gui);
        assert!(!a.enabled());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            axum::http::header::COOKIE,
            axum::http::HeaderValue::from_static("a=1; sessionid-ABCDE=xyz"),
        );
        h.append(
            axum::http::header::COOKIE,
            axum::http::HeaderValue::from_static("b=2"),
        );
        assert_eq!(cookie_value(&h, "sessionid-ABCDE"), Some("xyz"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "c"), None);
        assert_eq!(session_cookie_name("ABCDEFG-X"), "sessionid-ABCDE");
    }
}
