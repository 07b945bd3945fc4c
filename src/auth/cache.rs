//! The authentication cache (spec: security.md §1.1): remembers, per app key, which identity a
//! secret proved for 15 minutes, so that slow authenticators (hashed secrets, remote
//! directories) are asked once per key and secret rather than on every request.
//!
//! An entry keeps a random 24-byte salt and HMAC-SHA256(salt, secret), never the secret. A
//! presented secret whose HMAC differs from the stored one (a changed or wrong secret) goes to
//! the authenticator again; a refusal evicts the entry. Unlike the original the cache is
//! bounded: when full, expired entries go first, then the least recently used one.

use super::{Authenticator, Identity, IdentityKind};
use crate::clock::Instant;
use hmac::{Hmac, Mac};
use parking_lot::{Mutex, MutexGuard};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// How long a successful authentication is trusted.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// Most app keys remembered at once.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// How often expired entries are swept (on the next insertion after this interval).
const SWEEP_INTERVAL: Duration = Duration::from_secs(30 * 60);
const SALT_LEN: usize = 24;

struct Entry {
    salt: [u8; SALT_LEN],
    mac: [u8; 32],
    identity: Identity,
    expires: Instant,
    /// Recency stamp for least-recently-used eviction.
    used: u64,
}

struct State {
    entries: HashMap<String, Entry>,
    next_sweep: Instant,
    tick: u64,
}

/// Wraps an authenticator with the authentication cache.
pub struct CachedAuthenticator<A: ?Sized = dyn Authenticator> {
    inner: Box<A>,
    state: Mutex<State>,
    ttl: Duration,
    capacity: usize,
}

impl<A: Authenticator + ?Sized> CachedAuthenticator<A> {
    /// The cache with the spec's 15-minute lifetime and a bound of 10,000 app keys.
    pub fn new(inner: Box<A>) -> Self {
        Self::with_limits(inner, DEFAULT_TTL, DEFAULT_CAPACITY)
    }

    /// A cache with its own lifetime and bound (at least 1).
    pub fn with_limits(inner: Box<A>, ttl: Duration, capacity: usize) -> Self {
        let now = Instant::now();
        Self {
            inner,
            state: Mutex::new(State {
                entries: HashMap::new(),
                next_sweep: now + SWEEP_INTERVAL,
                tick: 0,
            }),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// App keys currently remembered (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic in another holder: every update is a
        // single map operation.
        self.state.lock()
    }

    /// The cached identity, if `app_key` has an unexpired entry for this very secret.
    fn lookup(&self, app_key: &str, app_secret: &str, now: Instant) -> Option<Identity> {
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        let entry = state.entries.get_mut(app_key)?;
        if now >= entry.expires || !mac_matches(&entry.salt, app_secret, &entry.mac) {
            return None;
        }
        entry.used = tick;
        Some(entry.identity.clone())
    }

    fn remember(&self, app_key: &str, app_secret: &str, identity: &Identity, now: Instant) {
        let mut salt = [0u8; SALT_LEN];
        if crate::random::fill(&mut salt).is_err() {
            // Without a random salt nothing is cached; authentication still works.
            self.lock().entries.remove(app_key);
            return;
        }
        let mac = mac_of(&salt, app_secret);
        let mut state = self.lock();
        if now >= state.next_sweep {
            state.entries.retain(|_, e| now < e.expires);
            state.next_sweep = now + SWEEP_INTERVAL;
        }
        if !state.entries.contains_key(app_key) && state.entries.len() >= self.capacity {
            state.entries.retain(|_, e| now < e.expires);
            if state.entries.len() >= self.capacity {
                let oldest = state.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    state.entries.remove(&oldest);
                }
            }
        }
        state.tick += 1;
        let used = state.tick;
        state.entries.insert(
            app_key.to_string(),
            Entry {
                salt,
                mac,
                identity: identity.clone(),
                expires: now + self.ttl,
                used,
            },
        );
    }
}

fn mac_of(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(salt).expect("HMAC accepts keys of any length");
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Constant-time comparison of HMAC(salt, secret) with `expected`.
fn mac_matches(salt: &[u8], secret: &str, expected: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(salt).expect("HMAC accepts keys of any length");
    mac.update(secret.as_bytes());
    mac.verify_slice(expected).is_ok()
}

/// Runs a possibly slow authenticator call; on a multi-threaded runtime other tasks move off
/// this worker meanwhile.
fn slow<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

impl<A: Authenticator + ?Sized> Authenticator for CachedAuthenticator<A> {
    fn authenticate(&self, app_key: &str, app_secret: &str) -> Identity {
        let now = Instant::now();
        if let Some(identity) = self.lookup(app_key, app_secret, now) {
            return identity;
        }
        let identity = slow(|| self.inner.authenticate(app_key, app_secret));
        if identity.kind == IdentityKind::Failed {
            self.lock().entries.remove(app_key);
        } else {
            self.remember(app_key, app_secret, &identity, now);
        }
        identity
    }

    fn credentials_for(&self, url: &str) -> Option<(String, String)> {
        self.inner.credentials_for(url)
    }
}

impl<A: ?Sized> std::fmt::Debug for CachedAuthenticator<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedAuthenticator")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Accepts `{key}` with secret `secret-{key}` unless the key is in `revoked`; counts calls.
    #[derive(Default)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        revoked: Arc<Mutex<Vec<String>>>,
        secret_suffix: Arc<Mutex<String>>,
    }

    impl Authenticator for Counting {
        fn authenticate(&self, app_key: &str, app_secret: &str) -> Identity {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let expected = format!("secret-{app_key}{}", self.secret_suffix.lock());
            if app_secret != expected || self.revoked.lock().iter().any(|k| k == app_key) {
                return Identity::failed();
            }
            Identity {
                kind: IdentityKind::User,
                org: "org".into(),
                user: app_key.into(),
            }
        }

        fn credentials_for(&self, url: &str) -> Option<(String, String)> {
            Some((url.to_string(), "s".into()))
        }
    }

    struct Fixture {
        cache: CachedAuthenticator<Counting>,
        calls: Arc<AtomicUsize>,
        revoked: Arc<Mutex<Vec<String>>>,
        suffix: Arc<Mutex<String>>,
    }

    impl Fixture {
        fn new(ttl: Duration, capacity: usize) -> Self {
            let inner = Counting::default();
            let (calls, revoked, suffix) = (inner.calls.clone(), inner.revoked.clone(), inner.secret_suffix.clone());
            Self {
                cache: CachedAuthenticator::with_limits(Box::new(inner), ttl, capacity),
                calls,
                revoked,
                suffix,
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        /// Moves the paused clock of the test's runtime.
        async fn advance(&self, by: Duration) {
            tokio::time::advance(by).await;
        }

        fn login(&self, key: &str) -> IdentityKind {
            self.cache.authenticate(key, &format!("secret-{key}")).kind
        }
    }

    #[test]
    fn a_hit_does_not_ask_the_authenticator_again() {
        let f = Fixture::new(DEFAULT_TTL, 10);
        assert_eq!(f.login("a"), IdentityKind::User);
        assert_eq!(f.login("a"), IdentityKind::User);
        assert_eq!(f.login("a"), IdentityKind::User);
        assert_eq!(f.calls(), 1);
        assert_eq!(f.cache.authenticate("a", "secret-a").user, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_credential_keeps_working_until_expiry() {
        let f = Fixture::new(Duration::from_secs(60), 10);
        assert_eq!(f.login("a"), IdentityKind::User);
        f.revoked.lock().push("a".into());
        f.advance(Duration::from_secs(59)).await;
        assert_eq!(f.login("a"), IdentityKind::User, "still cached");
        assert_eq!(f.calls(), 1);
        f.advance(Duration::from_secs(1)).await;
        assert_eq!(f.login("a"), IdentityKind::Failed, "expired: asked again");
        assert_eq!(f.calls(), 2);
    }

    #[test]
    fn a_changed_secret_is_validated_again() {
        let f = Fixture::new(DEFAULT_TTL, 10);
        assert_eq!(f.login("a"), IdentityKind::User);
        *f.suffix.lock() = "-v2".into();
        assert_eq!(f.cache.authenticate("a", "secret-a-v2").kind, IdentityKind::User);
        assert_eq!(f.calls(), 2);
        assert_eq!(f.cache.authenticate("a", "secret-a-v2").kind, IdentityKind::User);
        assert_eq!(f.calls(), 2, "the new secret is cached");
        assert_eq!(
            f.login("a"),
            IdentityKind::Failed,
            "the old secret is asked again and refused"
        );
        assert_eq!(f.calls(), 3);
    }

    #[test]
    fn a_wrong_secret_is_refused_and_evicts_the_entry() {
        let f = Fixture::new(DEFAULT_TTL, 10);
        assert_eq!(f.login("a"), IdentityKind::User);
        assert_eq!(f.cache.len(), 1);
        assert_eq!(f.cache.authenticate("a", "wrong").kind, IdentityKind::Failed);
        assert_eq!(f.calls(), 2);
        assert!(f.cache.is_empty(), "failure evicts");
        assert_eq!(f.login("a"), IdentityKind::User);
        assert_eq!(f.calls(), 3, "the right secret is validated again after the eviction");
        assert_eq!(f.cache.authenticate("b", "wrong").kind, IdentityKind::Failed);
        assert_eq!(f.cache.len(), 1, "failures are not cached");
    }

    #[test]
    fn the_size_is_bounded_least_recently_used_first() {
        let f = Fixture::new(DEFAULT_TTL, 3);
        for key in ["a", "b", "c"] {
            f.login(key);
        }
        f.login("a"); // a is now the most recently used; b the least
        f.login("d");
        assert_eq!(f.cache.len(), 3);
        let before = f.calls();
        f.login("a");
        f.login("c");
        f.login("d");
        assert_eq!(f.calls(), before, "a, c and d stayed cached");
        f.login("b");
        assert_eq!(f.calls(), before + 1, "b was evicted");
        assert_eq!(f.cache.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_evicted_before_live_ones() {
        let f = Fixture::new(Duration::from_secs(60), 3);
        f.login("old1");
        f.login("old2");
        f.advance(Duration::from_secs(30)).await;
        f.login("live");
        f.advance(Duration::from_secs(31)).await; // old1 and old2 expired, live not
        f.login("new");
        assert_eq!(f.cache.len(), 2, "both expired entries went");
        let before = f.calls();
        f.login("live");
        assert_eq!(f.calls(), before, "the live entry stayed");
    }

    #[test]
    fn outgoing_credentials_come_from_the_inner_authenticator() {
        let f = Fixture::new(DEFAULT_TTL, 3);
        assert_eq!(f.cache.credentials_for("u"), Some(("u".to_string(), "s".to_string())));
    }

    #[test]
    fn works_over_a_boxed_trait_object() {
        let inner: Box<dyn Authenticator> = Box::new(Counting::default());
        let cache: CachedAuthenticator = CachedAuthenticator::new(inner);
        assert_eq!(cache.authenticate("a", "secret-a").kind, IdentityKind::User);
        assert_eq!(cache.authenticate("a", "nope").kind, IdentityKind::Failed);
    }

    #[test]
    fn entries_keep_no_secret() {
        let f = Fixture::new(DEFAULT_TTL, 3);
        f.login("a");
        let state = f.cache.lock();
        let entry = state.entries.get("a").unwrap();
        assert_ne!(entry.mac.as_slice(), b"secret-a".as_slice());
        assert!(mac_matches(&entry.salt, "secret-a", &entry.mac));
        assert!(!mac_matches(&entry.salt, "secret-b", &entry.mac));
    }
}
