//! The memory a client holding one cached token retains: the peers
//! benchmark's row (d) (`peers/src/measure.rs`, `memory()`), measured here
//! deterministically and broken down, with an upper bound so that a growth
//! fails a test rather than showing up in the next benchmark run.
//!
//! A client is what the peers benchmark builds (`peers/src/peers/m2m.rs`):
//! a `TokenEndpoint` over a shared HTTP client, a `CacheKey` of its own and
//! an `Auth` over a source of one shared `TokenCache`, its fetcher the
//! endpoint wrapped in a fetcher of the caller's. Each client calls
//! `token()` once. A global allocator counts the live bytes (allocated
//! minus freed) of the calling thread while told to; the sandbox runs on a
//! runtime of its own threads, so that only the client side is counted.
//!
//! Its own test binary: it installs the global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use m2m::auth::{
    AccessToken, Auth, AuthError, BoxFuture, CacheKey, ClientCredential, FetchToken, HttpSettings,
    TokenCache, TokenEndpoint, TokenHttpClient,
};
use m2m::provider::Provider;
use m2m::sandbox::Sandbox;
use m2m::sandbox::demo::{
    CENDA_ENTRA_SCOPE, CENDA_GATEWAY_CLIENT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET,
    ENTRA_TENANT_ID,
};

/// The system allocator, counting the live bytes of each thread while it is
/// told to.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: a thread being torn down has no locals any more.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = LIVE.try_with(|live| live.set(live.get() + delta));
        }
    });
}

fn size(bytes: usize) -> i64 {
    i64::try_from(bytes).expect("an allocation's size fits")
}

// SAFETY: every call is passed on to `System` unchanged; the counting only
// touches const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(size(layout.size()));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(size(layout.size()));
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(size(new_size) - size(layout.size()));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-size(layout.size()));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// `work`'s result and the bytes it left allocated on this thread.
fn retained_by<T>(work: impl FnOnce() -> T) -> (T, i64) {
    LIVE.with(|live| live.set(0));
    COUNTING.with(|counting| counting.set(true));
    let out = work();
    COUNTING.with(|counting| counting.set(false));
    (out, LIVE.with(Cell::get))
}

/// The peers benchmark's fetcher: the endpoint, and a count shared by all
/// clients (the benchmark's record of fetch windows).
struct Counted {
    endpoint: TokenEndpoint,
    fetches: Arc<AtomicU64>,
}

impl FetchToken for Counted {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async {
            let token = self.endpoint.request_token().await;
            self.fetches.fetch_add(1, Ordering::Relaxed);
            token
        })
    }
}

const CLIENTS: usize = 200;

/// Bytes retained per client (one cached token), today about 3,800 (see
/// the printed breakdown); the bound leaves some headroom for noise in
/// the amortised growth of shared maps, not for a new per-token copy.
const MAX_BYTES_PER_TOKEN: i64 = 4_000;

/// One client's parts, built in the phases the breakdown counts.
struct Phases {
    endpoints: i64,
    sources: i64,
    tokens: i64,
}

struct Fleet {
    runtime: tokio::runtime::Runtime,
    cache: TokenCache,
    http: TokenHttpClient,
    url: String,
    fetches: Arc<AtomicU64>,
}

impl Fleet {
    fn endpoint(&self) -> TokenEndpoint {
        let url = url::Url::parse(&self.url).expect("a token URL");
        TokenEndpoint::builder(
            Provider::cenda(ENTRA_TENANT_ID, CENDA_GATEWAY_CLIENT_ID).with_token_url(url),
            ENTRA_CLIENT_ID,
            ClientCredential::secret(ENTRA_CLIENT_SECRET),
        )
        .http_client(self.http.clone())
        .build()
        .expect("the sandbox endpoint is valid")
    }

    fn auth(&self, endpoint: TokenEndpoint, name: &str) -> Auth {
        let key = CacheKey::new("Cenda", &self.url, name, [CENDA_ENTRA_SCOPE], None);
        let fetcher = Counted {
            endpoint,
            fetches: Arc::clone(&self.fetches),
        };
        Auth::from_source(self.cache.source(key, Arc::new(fetcher)))
    }

    /// `n` clients named `prefix-i`, each with its first token, phase by
    /// phase; the clients are returned so that nothing is freed before the
    /// counts are read.
    fn fill(&self, prefix: &str, n: usize) -> (Vec<Auth>, Phases) {
        // The vectors are allocated outside the counts (the benchmark's
        // `Vec<Client>` is `size_of::<Auth>()` a client, added below).
        let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:08}")).collect();
        let mut built = Vec::with_capacity(n);
        let mut clients = Vec::with_capacity(n);
        let ((), endpoints) = retained_by(|| built.extend((0..n).map(|_| self.endpoint())));
        let ((), sources) = retained_by(|| {
            clients.extend(
                built
                    .drain(..)
                    .zip(&names)
                    .map(|(endpoint, name)| self.auth(endpoint, name)),
            );
        });
        let ((), tokens) = retained_by(|| {
            for auth in &clients {
                self.runtime
                    .block_on(auth.token())
                    .expect("the sandbox issues a token");
            }
        });
        (
            clients,
            Phases {
                endpoints,
                sources,
                tokens,
            },
        )
    }
}

fn per_client(bytes: i64) -> f64 {
    bytes as f64 / CLIENTS as f64
}

#[test]
fn a_client_holding_one_cached_token_retains_a_bounded_number_of_bytes() {
    // The sandbox on threads of its own: its allocations are not counted.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = server.block_on(async {
        Sandbox::builder()
            .seed(7)
            .token_lifetime(Duration::from_secs(3599))
            .start()
            .await
            .unwrap()
    });
    // The clients on this thread: every poll of theirs is counted.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fleet = Fleet {
        cache: TokenCache::in_memory(),
        http: TokenHttpClient::new(&HttpSettings::default()).expect("an HTTP client"),
        url: sandbox.entra_token_url(ENTRA_TENANT_ID),
        fetches: Arc::default(),
        runtime,
    };

    // Warm-up, as the benchmark's: the connection, lazily built statics,
    // the runtime's and the cache's first allocations.
    let (warm, _) = fleet.fill("warm", 16);
    let (clients, phases) = fleet.fill("client", CLIENTS);
    assert_eq!(
        fleet.fetches.load(Ordering::Relaxed),
        (16 + CLIENTS) as u64,
        "one fetch a client"
    );

    let slot = size(std::mem::size_of::<Auth>());
    let total = phases.endpoints + phases.sources + phases.tokens + slot * size(CLIENTS);
    eprintln!("memory per client holding one cached token ({CLIENTS} clients):");
    eprintln!(
        "  TokenEndpoint built:             {:>8.1} B",
        per_client(phases.endpoints)
    );
    eprintln!(
        "  CacheKey + source + Auth:        {:>8.1} B",
        per_client(phases.sources)
    );
    eprintln!(
        "  first token() (cache entry):     {:>8.1} B",
        per_client(phases.tokens)
    );
    eprintln!("  the Auth in the caller's Vec:    {slot:>8} B");
    eprintln!(
        "  total (peers' row d):            {:>8.1} B",
        per_client(total)
    );
    eprintln!(
        "  size_of: TokenEndpoint {}, Auth {}, AccessToken {}, CacheKey {}",
        std::mem::size_of::<TokenEndpoint>(),
        std::mem::size_of::<Auth>(),
        std::mem::size_of::<AccessToken>(),
        std::mem::size_of::<CacheKey>(),
    );
    {
        use m2m::auth::{
            ClientSecrets, Discovery, Dpop, EndpointIdentity, PrivateKeyJwt, RetryPolicy,
            TokenLifetimes,
        };
        use std::mem::size_of;
        eprintln!(
            "  size_of: ClientCredential {}, PrivateKeyJwt {}, ClientSecrets {}, Provider {}, \
             EndpointIdentity {}, Discovery {}, TokenHttpClient {}, RetryPolicy {}, \
             TokenLifetimes {}, Option<Dpop> {}",
            size_of::<ClientCredential>(),
            size_of::<PrivateKeyJwt>(),
            size_of::<ClientSecrets>(),
            size_of::<Provider>(),
            size_of::<EndpointIdentity>(),
            size_of::<Discovery>(),
            size_of::<TokenHttpClient>(),
            size_of::<RetryPolicy>(),
            size_of::<TokenLifetimes>(),
            size_of::<Option<Dpop>>(),
        );
    }

    assert!(
        total <= MAX_BYTES_PER_TOKEN * size(CLIENTS),
        "{:.1} bytes a client holding one token, more than {MAX_BYTES_PER_TOKEN}",
        per_client(total)
    );
    drop(clients);
    drop(warm);
    server.block_on(sandbox.shutdown()).unwrap();
}
