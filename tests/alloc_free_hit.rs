//! A warm cache hit allocates nothing: `Auth::token()` and
//! `Auth::authorization()` with a fresh cached token, counted by a global
//! allocator that counts the allocations of the calling thread (its own
//! test binary, so that no other test shares the allocator).
//!
//! The count is exact, not timed: N warm calls, zero allocations. The
//! same allocator counts what a generated API call adds to the same request
//! sent with raw reqwest (the work behind the B1 overhead ratio).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint};
use m2m::provider::Provider;
use m2m::sandbox::demo::{COGNITO_CLIENT_ID, COGNITO_CLIENT_SECRET};
use m2m::sandbox::{ProviderStyle, Sandbox};

/// The system allocator, counting the allocations of each thread while it
/// is told to.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: a thread being torn down has no locals any more.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is passed on to `System` unchanged; the counting only
// touches const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The allocations `work` makes on this thread.
fn allocations_in(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|counting| counting.set(true));
    work();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

const WARM_CALLS: u64 = 10_000;

/// A current-thread runtime (every poll runs on the counting thread), the
/// sandbox on it, and an NXTsoft-style endpoint at its token URL.
fn sandbox_endpoint() -> (tokio::runtime::Runtime, Sandbox, TokenEndpoint) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = runtime.block_on(async {
        Sandbox::builder()
            .token_lifetime(Duration::from_secs(3600))
            .start()
            .await
            .unwrap()
    });
    let token_url = url::Url::parse(&sandbox.token_url(ProviderStyle::Cognito)).unwrap();
    let endpoint = TokenEndpoint::builder(
        Provider::nxtsoft().with_token_url(token_url),
        COGNITO_CLIENT_ID,
        ClientCredential::secret(COGNITO_CLIENT_SECRET),
    )
    .build()
    .unwrap();
    (runtime, sandbox, endpoint)
}

#[test]
fn a_warm_cache_hit_allocates_nothing() {
    let (runtime, sandbox, endpoint) = sandbox_endpoint();
    let cache = TokenCache::in_memory();
    let auth = Auth::new(endpoint, &cache);

    // The cold call fetches; the first warm ones set up what is set up
    // once per thread or per token (the lock-free read's slot, the header's
    // shared bytes).
    let first = runtime.block_on(auth.token()).unwrap();
    for _ in 0..10 {
        runtime.block_on(auth.token()).unwrap();
        runtime.block_on(auth.authorization()).unwrap();
    }
    let hits_before = cache.stats().hits;

    let allocations = allocations_in(|| {
        runtime.block_on(async {
            for _ in 0..WARM_CALLS {
                let token = auth.token().await.unwrap();
                assert!(token.is_sent_as(first.authorization()));
                let header = auth.authorization().await.unwrap();
                assert!(first.is_sent_as(&header));
            }
        })
    });

    assert_eq!(allocations, 0, "allocations in {WARM_CALLS} warm hits");
    assert_eq!(cache.stats().hits - hits_before, 2 * WARM_CALLS);
    assert_eq!(cache.stats().fetches, 1);
    runtime.block_on(sandbox.shutdown()).unwrap();
}

const CALLS: u64 = 200;

/// What a generated call (hooks, progenitor's builder, the whole-body read)
/// allocates beyond the same POST sent with raw reqwest, per call, against
/// the sandbox on the same thread. A ceiling, not a timing: the counts are
/// exact, so a new copy on every call fails it.
#[test]
fn a_generated_call_allocates_little_beyond_raw_reqwest() {
    use m2m::apis::nxtsoft_transactions as nxtsoft;
    use m2m::sandbox::demo::accepted_transaction;

    let (runtime, sandbox, endpoint) = sandbox_endpoint();
    let auth = Auth::new(endpoint, &TokenCache::in_memory());
    let http = reqwest::Client::new();
    let client =
        nxtsoft::Client::new_with_client(&sandbox.nxtsoft_api_url(), http.clone(), auth.clone());
    let url = format!("{}/transactions/mock", sandbox.nxtsoft_api_url());
    let body = serde_json::to_vec(
        &nxtsoft::types::TransactionRequest::try_from(accepted_transaction()).unwrap(),
    )
    .unwrap();

    let generated = || async {
        let answer = client
            .post_validation_message()
            .body(accepted_transaction())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    };
    let raw = || async {
        let header = auth.authorization().await.unwrap();
        let answer = http
            .post(&url)
            .header(http::header::AUTHORIZATION, header)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
        let value: nxtsoft::types::ValidationResult = answer.json().await.unwrap();
        std::hint::black_box(value);
    };
    let (raw_per_call, generated_per_call) = per_call(&runtime, raw, generated);
    eprintln!(
        "allocations per call: raw reqwest {raw_per_call:.1}, generated {generated_per_call:.1}, \
         added {:.3}",
        generated_per_call - raw_per_call
    );
    assert!(
        generated_per_call - raw_per_call <= ADDED_ALLOCATIONS_CEILING,
        "a generated call allocates {generated_per_call:.1} times, raw reqwest {raw_per_call:.1}"
    );
    runtime.block_on(sandbox.shutdown()).unwrap();
}

/// A Cenda organisation, as `getOrganisation` returns it (the body of
/// the benchmark's floor server).
const ORGANISATION: &str = r#"{"organisationId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","name":"Acme Corporation","cssUrl":"https://www.acme.example/cenda/qr-page.css","roundLogo":"https://www.acme.example/assets/round-logo.png","validated":true}"#;
const ORGANISATION_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

/// B1's call, counted: `GET /api/Organisation/{id}` through the generated
/// Cenda client against raw reqwest with a fixed `Authorization` header
/// (and the same `Accept`, `api-version` and JSON decoding), to a minimal
/// axum server on the counting thread. The server's allocations are the
/// same for both paths and cancel out.
#[test]
fn a_generated_get_allocates_little_beyond_raw_reqwest() {
    use m2m::apis::cenda_configuration as cenda;

    let (runtime, sandbox, endpoint) = sandbox_endpoint();
    let auth = Auth::new(endpoint, &TokenCache::in_memory());
    let floor = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route(
            "/api/Organisation/{id}",
            axum::routing::get(|| async {
                (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    ORGANISATION,
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}")
    });
    let http = reqwest::Client::new();
    let client = cenda::Client::new_with_client(&floor, http.clone(), auth.clone());
    let url = format!("{floor}/api/Organisation/{ORGANISATION_ID}");
    let header = runtime.block_on(auth.authorization()).unwrap();

    let generated = || async {
        let organisation = client
            .get_organisation()
            .organisation_id(ORGANISATION_ID)
            .send()
            .await
            .unwrap();
        assert_eq!(organisation.into_inner().organisation_id, ORGANISATION_ID);
    };
    let raw = || async {
        let answer = http
            .get(&url)
            .header(http::header::AUTHORIZATION, header.clone())
            .header(http::header::ACCEPT, "application/json")
            .header("api-version", "1.0")
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
        let organisation: cenda::types::Organisation = answer.json().await.unwrap();
        assert_eq!(organisation.organisation_id, ORGANISATION_ID);
    };
    let (raw_per_call, generated_per_call) = per_call(&runtime, raw, generated);
    eprintln!(
        "B1 GET allocations per call: raw reqwest {raw_per_call:.1}, generated \
         {generated_per_call:.1}, added {:.3}",
        generated_per_call - raw_per_call
    );
    assert!(
        generated_per_call - raw_per_call <= ADDED_GET_ALLOCATIONS_CEILING,
        "a generated GET allocates {generated_per_call:.1} times, raw reqwest {raw_per_call:.1}"
    );
    runtime.block_on(sandbox.shutdown()).unwrap();
}

/// Allocations B1's generated GET may add to raw reqwest's (see the test):
/// 14 measured on 2026-12-06 (14.005: the ceiling has half of one more, as
/// the other test's); 18 while the handle's timeout was set on the
/// request (reqwest keeps it in an extension map, and a boxed timer), 24
/// with reqwest's `Request::try_clone` for the resend copy. Of the 14,
/// m2m's hooks make 9 (the copy for the resend: URL and header map, 3; the
/// answer rebuilt with its body read, 6); progenitor's builder (the id,
/// its path encoding, the URL, a second header map: 9) and its
/// `ResponseValue` (a copy of the response headers: 2) make 11; the raw
/// call makes 6 that the generated one does not (header values made from
/// strings, and reqwest's copies of them).
const ADDED_GET_ALLOCATIONS_CEILING: f64 = 14.5;

/// Allocations a generated call may add to raw reqwest's (see the test):
/// 36 measured on 2026-12-06 (40 while the handle's timeout was set on the
/// request, 43 before the exec hook took its copy for the resend before
/// that, 46 before the URL was shown only when looked at). The ceiling is
/// the count and half of one more (an allocation that grows a shared
/// structure now and then shows as 36.005): a new copy on every call
/// fails it.
const ADDED_ALLOCATIONS_CEILING: f64 = 36.5;

/// Allocations per call of `raw` and of `generated` on `runtime`, each
/// after both were warmed (the token, the pooled connection, lazily made
/// statics).
fn per_call<R, RF, G, GF>(runtime: &tokio::runtime::Runtime, raw: R, generated: G) -> (f64, f64)
where
    R: Fn() -> RF,
    RF: std::future::Future<Output = ()>,
    G: Fn() -> GF,
    GF: std::future::Future<Output = ()>,
{
    runtime.block_on(async {
        for _ in 0..20 {
            generated().await;
            raw().await;
        }
    });
    (count(runtime, raw), count(runtime, generated))
}

/// Allocations per call of `call`, made `CALLS` times on `runtime`.
fn count<F, Fut>(runtime: &tokio::runtime::Runtime, call: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let allocations = allocations_in(|| {
        runtime.block_on(async {
            for _ in 0..CALLS {
                call().await;
            }
        })
    });
    allocations as f64 / CALLS as f64
}
