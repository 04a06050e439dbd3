//! Discovery: where a device configured as `dynamic` can be dialled.
//!
//! Two kinds of finders, as in Syncthing 1.19.2:
//!
//! - **global** (protocol v3, [`global`]): we announce our addresses to each configured
//!   server over HTTPS with our device certificate as client certificate, and look devices
//!   up there. Answers are cached: found for 5 minutes, not found for 1 minute or the
//!   server's `Retry-After`.
//! - **local** (v4): an announcement (magic + protobuf, `syncd_proto::discovery`) by IPv4
//!   broadcast and IPv6 multicast on `localAnnouncePort` at start, every 30 s and when a new
//!   device appears; what others announce is cached for 90 s, unspecified hosts replaced by
//!   the sender's address.
//!
//! [`Discovery::lookup`] merges every finder's addresses (deduplicated, sorted). Nothing runs
//! and nothing is sent when every finder is disabled ([`DiscoveryConfig::disabled`], the
//! library default). Caches are bounded ([`MAX_CACHED_DEVICES`]); every fault from a server
//! or a packet is a typed error, logged once per cause.

pub mod global;
mod local;
mod netif;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use syncd_types::DeviceId;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::identity::Identity;
pub use global::{GlobalError, ServerUrl, ServerUrlError, default_servers, expand_servers};

/// Local discovery's announcement interval (Syncthing's `BroadcastInterval`).
pub const LOCAL_INTERVAL: Duration = Duration::from_secs(30);
/// How long a local announcement is believed (Syncthing's `CacheLifeTime`).
pub const LOCAL_CACHE_LIFETIME: Duration = Duration::from_secs(90);
/// Global lookups: how long a found device is cached.
pub const GLOBAL_POSITIVE_CACHE: Duration = Duration::from_secs(5 * 60);
/// Global lookups: how long "not found" is cached without a `Retry-After`.
pub const GLOBAL_NEGATIVE_CACHE: Duration = Duration::from_secs(60);
/// Re-announce without `Reannounce-After` (30 min), after an error without `Retry-After`
/// (5 min), and when there is nothing to announce (5 min).
pub const REANNOUNCE: Duration = Duration::from_secs(30 * 60);
/// See [`REANNOUNCE`].
pub const RETRY: Duration = Duration::from_secs(5 * 60);
/// The most devices kept in each cache (the stalest is evicted first).
pub const MAX_CACHED_DEVICES: usize = 1024;
/// The longest `Retry-After`/`Reannounce-After` we honour (a hostile server cannot park us).
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(2 * 3600);
/// The default local discovery port.
pub const DEFAULT_LOCAL_PORT: u16 = 21027;
/// The default IPv6 multicast group and port.
pub const DEFAULT_LOCAL_MC_ADDR: &str = "[ff12::8384]:21027";

/// What discovery does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Announce to and look up at the global servers.
    pub global_enabled: bool,
    /// Server URLs (`default` and friends are expanded, see [`expand_servers`]).
    pub global_servers: Vec<String>,
    /// Local discovery on.
    pub local_enabled: bool,
    /// Local discovery's UDP port (broadcast and multicast).
    pub local_port: u16,
    /// The IPv6 multicast group, `[ff12::8384]:21027`; its port is ignored in favour of
    /// `local_port` only when it has none.
    pub local_mc_addr: String,
    /// Also announce LAN addresses to global servers (Syncthing's `announceLANAddresses`).
    pub announce_lan_addresses: bool,
    /// Local announcement interval (30 s; tests shorten it).
    pub local_interval: Duration,
}

impl DiscoveryConfig {
    /// Everything off: nothing is sent, `dynamic` resolves to nothing.
    pub fn disabled() -> Self {
        DiscoveryConfig {
            global_enabled: false,
            global_servers: Vec::new(),
            local_enabled: false,
            local_port: DEFAULT_LOCAL_PORT,
            local_mc_addr: DEFAULT_LOCAL_MC_ADDR.to_owned(),
            announce_lan_addresses: true,
            local_interval: LOCAL_INTERVAL,
        }
    }

    /// Syncthing's defaults: both on, the `default` servers.
    pub fn syncthing_defaults() -> Self {
        DiscoveryConfig {
            global_enabled: true,
            global_servers: vec!["default".to_owned()],
            local_enabled: true,
            ..DiscoveryConfig::disabled()
        }
    }

    /// Whether any finder runs.
    pub fn any_enabled(&self) -> bool {
        self.global_enabled || self.local_enabled
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig::disabled()
    }
}

/// What discovery knows about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Its addresses, merged over the finders.
    pub addresses: Vec<String>,
    /// The finders that know it (`IPv4 local`, `global@https://…`).
    pub sources: Vec<String>,
    /// When it was last heard of.
    pub when: SystemTime,
}

#[derive(Debug, Clone)]
struct LocalEntry {
    addresses: Vec<String>,
    instance_id: i64,
    finder: &'static str,
    at: Instant,
    when: SystemTime,
}

#[derive(Debug, Clone)]
struct GlobalEntry {
    /// `None`: not found.
    addresses: Option<Vec<String>>,
    until: Instant,
    when: SystemTime,
}

/// Called with a device that local discovery found for the first time (or again after it
/// expired or restarted), and its addresses.
pub(crate) type OnDiscovered = Arc<dyn Fn(DeviceId, Vec<String>) + Send + Sync>;

pub(crate) struct Inner {
    me: DeviceId,
    config: DiscoveryConfig,
    /// What we announce.
    announce: Vec<String>,
    instance_id: i64,
    servers: Vec<Arc<global::Client>>,
    status: Mutex<BTreeMap<String, Option<String>>>,
    /// Errors that last (a local port that could not be bound): shown in the status even
    /// while announcing works.
    sticky: Mutex<BTreeMap<String, String>>,
    local: Mutex<HashMap<DeviceId, LocalEntry>>,
    global: Mutex<HashMap<(usize, DeviceId), GlobalEntry>>,
    logged: Mutex<HashSet<(String, String)>>,
    kick_v4: Notify,
    kick_v6: Notify,
    on_discovered: OnDiscovered,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn set_status(&self, finder: &str, error: Option<String>) {
        let mut s = lock(&self.status);
        let old = s.insert(finder.to_owned(), error.clone());
        // Logged when the cause changes, not on every retry.
        match (old.flatten(), &error) {
            (old, Some(e)) if old.as_ref() != Some(e) => {
                tracing::warn!(finder, error = %e, "discovery failed");
            }
            (Some(_), None) => tracing::info!(finder, "discovery works again"),
            _ => {}
        }
    }

    /// An error that stays in the status (see `sticky`).
    fn set_sticky(&self, finder: &str, error: String) {
        lock(&self.sticky).insert(finder.to_owned(), error);
    }

    /// Logs `message` the first time `cause` is seen from `finder` (bounded).
    fn log_once(&self, finder: &str, cause: &str, message: &str) {
        let mut logged = lock(&self.logged);
        if logged.len() >= 256 {
            return;
        }
        if logged.insert((finder.to_owned(), cause.to_owned())) {
            tracing::info!(finder, error = %message, "ignoring bad discovery input (logged once per cause)");
        }
    }

    fn kick(&self, family: local::Family) -> &Notify {
        match family {
            local::Family::V4 => &self.kick_v4,
            local::Family::V6 => &self.kick_v6,
        }
    }

    fn register_local(
        &self,
        device: DeviceId,
        addresses: Vec<String>,
        instance_id: i64,
        family: local::Family,
    ) {
        let now = Instant::now();
        let new = {
            let mut cache = lock(&self.local);
            let new = cache.get(&device).is_none_or(|e| {
                now.saturating_duration_since(e.at) > LOCAL_CACHE_LIFETIME
                    || e.instance_id != instance_id
            });
            if !cache.contains_key(&device) && cache.len() >= MAX_CACHED_DEVICES {
                let stalest = cache.iter().min_by_key(|(_, e)| e.at).map(|(d, _)| *d);
                if let Some(d) = stalest {
                    cache.remove(&d);
                }
            }
            cache.insert(
                device,
                LocalEntry {
                    addresses: addresses.clone(),
                    instance_id,
                    finder: family.name(),
                    at: now,
                    when: SystemTime::now(),
                },
            );
            new
        };
        if new {
            tracing::info!(%device, ?addresses, finder = family.name(), "discovered device");
            // Let the newcomer learn about us at once.
            self.kick(family).notify_one();
            (self.on_discovered)(device, addresses);
        }
    }

    fn cache_global(&self, key: (usize, DeviceId), entry: GlobalEntry) {
        let mut cache = lock(&self.global);
        if !cache.contains_key(&key) && cache.len() >= MAX_CACHED_DEVICES {
            let now = Instant::now();
            cache.retain(|_, e| e.until > now);
            if cache.len() >= MAX_CACHED_DEVICES {
                let soonest = cache.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k);
                if let Some(k) = soonest {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(key, entry);
    }
}

/// The running finders. Cheap to clone.
#[derive(Clone)]
pub struct Discovery {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("config", &self.inner.config)
            .field("announce", &self.inner.announce)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Starts the finders the config enables: announcing `announce` (our listen addresses).
    /// Bad server URLs are reported in the status and skipped.
    pub(crate) fn start(
        config: DiscoveryConfig,
        identity: &Identity,
        announce: Vec<String>,
        on_discovered: OnDiscovered,
        shutdown: &watch::Sender<bool>,
    ) -> (Discovery, Vec<JoinHandle<()>>) {
        let mut status = BTreeMap::new();
        let mut servers = Vec::new();
        if config.global_enabled {
            for url in expand_servers(&config.global_servers) {
                match ServerUrl::parse(&url)
                    .map_err(|e| e.to_string())
                    .and_then(|u| global::Client::new(u, identity).map_err(|e| e.to_string()))
                {
                    Ok(c) => {
                        status.insert(format!("global@{}", c.url.without_query()), None);
                        servers.push(Arc::new(c));
                    }
                    Err(e) => {
                        tracing::warn!(server = %url, error = %e, "discovery server unusable");
                        status.insert(format!("global@{url}"), Some(e));
                    }
                }
            }
        }
        let inner = Arc::new(Inner {
            me: identity.device_id(),
            announce,
            instance_id: rand::random::<i64>() & i64::MAX,
            servers,
            status: Mutex::new(status),
            sticky: Mutex::new(BTreeMap::new()),
            local: Mutex::new(HashMap::new()),
            global: Mutex::new(HashMap::new()),
            logged: Mutex::new(HashSet::new()),
            kick_v4: Notify::new(),
            kick_v6: Notify::new(),
            on_discovered,
            config,
        });
        let mut tasks = Vec::new();
        for (i, server) in inner.servers.iter().enumerate() {
            if !server.url.no_announce {
                tasks.push(tokio::spawn(announce_loop(
                    Arc::clone(&inner),
                    i,
                    shutdown.subscribe(),
                )));
            }
        }
        if inner.config.local_enabled {
            let port = inner.config.local_port;
            let group = parse_group(&inner.config.local_mc_addr);
            for family in [local::Family::V4, local::Family::V6] {
                lock(&inner.status).insert(family.name().to_owned(), None);
                tasks.push(tokio::spawn(local::receiver(
                    Arc::clone(&inner),
                    family,
                    port,
                    group,
                    shutdown.subscribe(),
                )));
                tasks.push(tokio::spawn(local::sender(
                    Arc::clone(&inner),
                    family,
                    port,
                    group,
                    shutdown.subscribe(),
                )));
            }
        }
        (Discovery { inner }, tasks)
    }

    /// The addresses we announce.
    pub fn announced(&self) -> &[String] {
        &self.inner.announce
    }

    /// Every address any finder knows for `device`: fresh local entries, cached global
    /// answers, and a query to each lookup server whose cached answer expired.
    /// Deduplicated and sorted; empty when nobody knows it.
    pub async fn lookup(&self, device: DeviceId) -> Vec<String> {
        let mut out = BTreeSet::new();
        let now = Instant::now();
        if let Some(e) = lock(&self.inner.local).get(&device)
            && now.saturating_duration_since(e.at) <= LOCAL_CACHE_LIFETIME
        {
            out.extend(e.addresses.iter().cloned());
        }
        let queries = self
            .inner
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.url.no_lookup)
            .map(|(i, server)| {
                let inner = Arc::clone(&self.inner);
                let server = Arc::clone(server);
                async move { lookup_one(&inner, i, &server, device).await }
            });
        for found in futures_join_all(queries).await {
            out.extend(found);
        }
        out.into_iter().collect()
    }

    /// `finder → error` (None = working): `global@<url>`, `IPv4 local`, `IPv6 local`.
    pub fn status(&self) -> BTreeMap<String, Option<String>> {
        let mut s = lock(&self.inner.status).clone();
        for (k, e) in lock(&self.inner.sticky).iter() {
            s.insert(k.clone(), Some(e.clone()));
        }
        s
    }

    /// What the caches hold now (fresh entries only), per device.
    pub fn cache(&self) -> BTreeMap<DeviceId, CacheEntry> {
        let now = Instant::now();
        let mut out: BTreeMap<DeviceId, CacheEntry> = BTreeMap::new();
        let mut add = |d: DeviceId, addrs: &[String], source: String, when: SystemTime| {
            let e = out.entry(d).or_insert_with(|| CacheEntry {
                addresses: Vec::new(),
                sources: Vec::new(),
                when,
            });
            for a in addrs {
                if !e.addresses.contains(a) {
                    e.addresses.push(a.clone());
                }
            }
            e.addresses.sort();
            if !e.sources.contains(&source) {
                e.sources.push(source);
            }
            e.when = e.when.max(when);
        };
        for (d, e) in lock(&self.inner.local).iter() {
            if now.saturating_duration_since(e.at) <= LOCAL_CACHE_LIFETIME {
                add(*d, &e.addresses, e.finder.to_owned(), e.when);
            }
        }
        for ((i, d), e) in lock(&self.inner.global).iter() {
            if let (Some(addrs), true) = (&e.addresses, e.until > now) {
                let source = self
                    .inner
                    .servers
                    .get(*i)
                    .map(|s| format!("global@{}", s.url.without_query()))
                    .unwrap_or_default();
                add(*d, addrs, source, e.when);
            }
        }
        out
    }
}

/// One uncached lookup of `device` at each lookup server of `servers` (expanded as
/// [`expand_servers`]): what `syncd discovery lookup` prints. Per server: its URL without
/// options, and the addresses (`None` = not found) or why the lookup failed.
pub async fn lookup_uncached(
    servers: &[String],
    device: DeviceId,
) -> Vec<(String, Result<Option<Vec<String>>, String>)> {
    let mut out = Vec::new();
    // Lookups present no client certificate; any identity builds the TLS configurations.
    let identity = match Identity::generate() {
        Ok(i) => i,
        Err(e) => return vec![(String::new(), Err(e.to_string()))],
    };
    for url in expand_servers(servers) {
        let parsed = match ServerUrl::parse(&url) {
            Ok(u) => u,
            Err(e) => {
                out.push((url, Err(e.to_string())));
                continue;
            }
        };
        if parsed.no_lookup {
            continue;
        }
        let name = parsed.without_query();
        let result = match global::Client::new(parsed, &identity) {
            Ok(c) => c
                .lookup(device)
                .await
                .map(|(a, _)| a)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.push((name, result));
    }
    out
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future<Output = Vec<String>> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<Vec<String>> {
    let handles: Vec<JoinHandle<Vec<String>>> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or_default());
    }
    out
}

async fn lookup_one(
    inner: &Inner,
    i: usize,
    server: &global::Client,
    device: DeviceId,
) -> Vec<String> {
    let now = Instant::now();
    if let Some(e) = lock(&inner.global).get(&(i, device))
        && e.until > now
    {
        return e.addresses.clone().unwrap_or_default();
    }
    let finder = format!("global@{}", server.url.without_query());
    let cap = |s: u64| Duration::from_secs(s).min(MAX_SERVER_DELAY);
    let (addresses, cache_for) = match server.lookup(device).await {
        Ok((Some(addrs), _)) => {
            tracing::debug!(%device, ?addrs, finder, "global lookup found");
            (Some(addrs), GLOBAL_POSITIVE_CACHE)
        }
        Ok((None, retry)) => (None, retry.map(cap).unwrap_or(GLOBAL_NEGATIVE_CACHE)),
        Err(e) => {
            inner.log_once(&finder, &format!("lookup {}", e.cause()), &e.to_string());
            let d = e
                .retry_after()
                .map(|d| d.min(MAX_SERVER_DELAY))
                .unwrap_or(GLOBAL_NEGATIVE_CACHE);
            (None, d)
        }
    };
    inner.cache_global(
        (i, device),
        GlobalEntry {
            addresses: addresses.clone(),
            until: Instant::now() + cache_for,
            when: SystemTime::now(),
        },
    );
    addresses.unwrap_or_default()
}

async fn announce_loop(inner: Arc<Inner>, i: usize, mut shutdown: watch::Receiver<bool>) {
    let Some(server) = inner.servers.get(i).cloned() else {
        return;
    };
    let finder = format!("global@{}", server.url.without_query());
    loop {
        let wait = if inner.announce.is_empty() {
            RETRY
        } else {
            match server.announce(&inner.announce).await {
                Ok(reannounce) => {
                    inner.set_status(&finder, None);
                    tracing::debug!(finder, addresses = ?inner.announce, "announced");
                    reannounce
                        .map(|s| Duration::from_secs(s).min(MAX_SERVER_DELAY))
                        .unwrap_or(REANNOUNCE)
                }
                Err(e) => {
                    let wait = e
                        .retry_after()
                        .map(|d| d.min(MAX_SERVER_DELAY))
                        .unwrap_or(RETRY);
                    inner.set_status(&finder, Some(e.to_string()));
                    wait
                }
            }
        };
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn parse_group(mc: &str) -> Ipv6Addr {
    let host = mc
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(h, _)| h)
        .unwrap_or(mc);
    host.parse()
        .ok()
        .filter(|ip: &Ipv6Addr| ip.is_multicast())
        .unwrap_or(Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0, 0x8384))
}

/// The addresses we announce for a listener bound to `bound`, configured with host
/// `configured_host`: a host name is kept as configured (a server drops loopback literals,
/// so a loopback test announces `localhost`); an IP literal is announced as bound. A
/// listener on an unspecified address also announces each of `lan_ips` (this machine's
/// addresses, Syncthing's `announceLANAddresses`) with its port.
pub fn announce_addresses(
    configured_host: Option<&str>,
    bound: std::net::SocketAddr,
    lan_ips: &[std::net::IpAddr],
) -> Vec<String> {
    let port = bound.port();
    let mut out = match configured_host {
        Some(h) if h.parse::<std::net::IpAddr>().is_err() && !h.is_empty() => {
            vec![format!("tcp://{h}:{port}")]
        }
        _ => vec![format!("tcp://{bound}")],
    };
    if bound.ip().is_unspecified() {
        for ip in lan_ips {
            // A `0.0.0.0` listener takes IPv4 only; `[::]` takes both.
            if ip.is_ipv4() || bound.is_ipv6() {
                out.push(format!("tcp://{}", std::net::SocketAddr::new(*ip, port)));
            }
        }
    }
    out
}

/// [`announce_addresses`] with this machine's addresses when `lan` is set.
pub(crate) fn our_addresses(
    configured_host: Option<&str>,
    bound: std::net::SocketAddr,
    lan: bool,
) -> Vec<String> {
    let ips = if lan {
        netif::host_addresses()
    } else {
        Vec::new()
    };
    announce_addresses(configured_host, bound, &ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_addresses_keep_host_names() {
        let bound: std::net::SocketAddr = ([127, 0, 0, 1], 4000).into();
        let v6: std::net::IpAddr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into();
        let lan: Vec<std::net::IpAddr> = vec![[10, 0, 0, 5].into(), v6];
        assert_eq!(
            announce_addresses(Some("localhost"), bound, &lan),
            ["tcp://localhost:4000"]
        );
        assert_eq!(
            announce_addresses(Some("127.0.0.1"), bound, &lan),
            ["tcp://127.0.0.1:4000"]
        );
        let any: std::net::SocketAddr = ([0, 0, 0, 0], 22000).into();
        assert_eq!(announce_addresses(None, any, &[]), ["tcp://0.0.0.0:22000"]);
        assert_eq!(
            announce_addresses(None, any, &lan),
            ["tcp://0.0.0.0:22000", "tcp://10.0.0.5:22000"]
        );
    }

    #[test]
    fn multicast_group_falls_back_to_syncthings() {
        assert_eq!(parse_group("[ff12::8384]:21027").to_string(), "ff12::8384");
        assert_eq!(parse_group("[ff15::1]:5").to_string(), "ff15::1");
        assert_eq!(parse_group("garbage").to_string(), "ff12::8384");
        assert_eq!(parse_group("[::1]:5").to_string(), "ff12::8384");
    }
}
