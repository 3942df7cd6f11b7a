//! B1: what m2m adds to a call once its token is cached.
//!
//! The same `GET /api/Organisation/{id}` to the floor server, sequentially
//! on one connection: through the generated Cenda client with a warm m2m
//! cache, and through raw reqwest with a fixed `Authorization` header (and
//! the same `api-version` and `Accept` headers and JSON decoding into the
//! same type). The paths alternate call by call, so that drift on a noisy
//! machine hits both alike; the ratio is the one of the medians of the
//! per-call times.
//!
//! A third path, raw reqwest taking its header from `Auth::authorization()`
//! on every call, splits the difference into m2m's share and the generated
//! client's (progenitor's builder and m2m's hooks).
//!
//! A cache hit is timed as a tight loop of `Auth::token()` with a warm
//! entry, median of batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use m2m::apis::cenda_configuration::{self as cenda, types};
use m2m::auth::{Auth, TokenCache};
use m2m::sandbox::DEFAULT_TOKEN_LIFETIME;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde_json::json;

use super::floor::ORGANISATION_ID;
use super::sample::{Sample, micros, round};
use super::wiring::{self, Servers, client_runtime};
use super::{Options, Row};

/// `info.version` of the Cenda document: the generated client sends it as
/// `api-version` on every call, so the raw call does too.
const API_VERSION: &str = "1.0";

/// Target for the ratio of medians, m2m over raw.
pub const RATIO_TARGET: f64 = 1.03;
/// Target for one cache hit, in nanoseconds.
pub const HIT_TARGET_NS: f64 = 1000.0;

struct Sizes {
    rounds: usize,
    batch: usize,
    hit_batches: usize,
    hit_batch: usize,
}

/// Runs B1: the overhead ratio and the cache-hit time.
pub fn run(options: &Options, servers: &Servers) -> Vec<Row> {
    let sizes = if options.quick {
        Sizes {
            rounds: 6,
            batch: 20,
            hit_batches: 5,
            hit_batch: 2_000,
        }
    } else {
        Sizes {
            rounds: 150,
            batch: 250,
            hit_batches: 41,
            hit_batch: 50_000,
        }
    };
    let sandbox = servers.sandbox(DEFAULT_TOKEN_LIFETIME, Duration::ZERO);
    let runtime = client_runtime(0);
    let rows = runtime.block_on(measure(&sizes, &servers.floor_url, &sandbox));
    servers.stop(sandbox);
    rows
}

async fn measure(sizes: &Sizes, floor_url: &str, sandbox: &m2m::sandbox::Sandbox) -> Vec<Row> {
    let cache = TokenCache::in_memory();
    let auth = wiring::auth(wiring::endpoint(sandbox), &cache);
    let token = auth.token().await.expect("the sandbox issues a token");
    let http = reqwest::Client::new();
    let client = cenda::Client::new_with_client(floor_url, http.clone(), auth.clone());
    let raw = Raw {
        http,
        url: format!("{floor_url}/api/Organisation/{ORGANISATION_ID}"),
        authorization: token.authorization().clone(),
    };
    let id = ORGANISATION_ID;

    // Warm every path (connection, allocator, branch predictors).
    for _ in 0..sizes.batch.max(50) {
        black_box(m2m_call(&client, id).await);
        black_box(raw.call(raw.authorization.clone()).await);
        black_box(raw_with_auth(&raw, &auth).await);
    }
    // Three paths, interleaved call by call in a rotating order: the
    // generated client, raw reqwest with a fixed header, and raw reqwest
    // asking m2m for the header on every call (m2m's own share of the
    // difference). Whatever drifts (CPU placement of the client and server
    // threads, frequency, other load) hits all three alike.
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..sizes.rounds * sizes.batch {
        for step in 0..3 {
            let path = (round + step) % 3;
            let started = Instant::now();
            match path {
                0 => black_box(m2m_call(&client, id).await),
                1 => black_box(raw.call(raw.authorization.clone()).await),
                _ => black_box(raw_with_auth(&raw, &auth).await),
            };
            times[path].push(started.elapsed());
        }
    }
    let [m2m_times, raw_times, raw_auth_times] = times;
    let (m2m_times, raw_times) = (Sample::new(m2m_times), Sample::new(raw_times));
    let (m2m_call_time, raw_call_time, raw_auth_time) = (
        m2m_times.median(),
        raw_times.median(),
        Sample::new(raw_auth_times).median(),
    );
    let (m2m_p99, raw_p99) = (m2m_times.p99(), raw_times.p99());
    let ratio = m2m_call_time.as_secs_f64() / raw_call_time.as_secs_f64();
    let added_ns = (m2m_call_time.as_secs_f64() - raw_call_time.as_secs_f64()) * 1e9;
    let auth_share_ns = (raw_auth_time.as_secs_f64() - raw_call_time.as_secs_f64()) * 1e9;

    let (resend_copy, headers_clone) = generated_extras(&raw, sizes);
    let rest_ns = added_ns
        - auth_share_ns
        - resend_copy.as_secs_f64() * 1e9
        - headers_clone.as_secs_f64() * 1e9;
    let hit = cache_hit_time(&auth, sizes).await;
    let hit_ns = hit.as_secs_f64() * 1e9;
    let stats = cache.stats();
    vec![
        Row::new(
            "B1 overhead ratio",
            round(ratio, 4),
            "ratio",
            &format!("<= {RATIO_TARGET}"),
            ratio <= RATIO_TARGET,
            json!({
                "summary": format!(
                    "median call {:.1} us via m2m vs {:.1} us raw ({:+.0} ns)",
                    micros(m2m_call_time), micros(raw_call_time), added_ns
                ),
                "m2m_median_us": round(micros(m2m_call_time), 2),
                "raw_median_us": round(micros(raw_call_time), 2),
                "added_ns": round(added_ns, 0),
                "raw_with_auth_token_median_us": round(micros(raw_auth_time), 2),
                "auth_token_share_ns": round(auth_share_ns, 0),
                "generated_client_share_ns": round(added_ns - auth_share_ns, 0),
                "breakdown_ns": {
                    "auth_token_in_pre_hook": round(auth_share_ns, 0),
                    "request_copy_in_exec_hook": round(resend_copy.as_secs_f64() * 1e9, 0),
                    "response_headers_clone_in_progenitor_response_value": round(headers_clone.as_secs_f64() * 1e9, 0),
                    "rest_of_generated_builder_path_and_hooks": round(rest_ns, 0),
                },
                "calls_per_path": sizes.rounds * sizes.batch,
                "m2m_p99_us": round(micros(m2m_p99), 2),
                "raw_p99_us": round(micros(raw_p99), 2),
                "server": "floor: axum on loopback, fixed 200 JSON body, no token check",
                "call": "GET /api/Organisation/{id} (Cenda getOrganisation)",
            }),
        ),
        Row::new(
            "B1 cache hit",
            round(hit_ns, 1),
            "ns",
            &format!("< {HIT_TARGET_NS}"),
            hit_ns < HIT_TARGET_NS,
            json!({
                "summary": "Auth::token() with a warm entry, median of batches",
                "batches": sizes.hit_batches,
                "calls_per_batch": sizes.hit_batch,
                "cache_hits": stats.hits,
                "token_fetches": stats.fetches,
            }),
        ),
    ]
}

/// The generated call; `true` when it returned the organisation.
async fn m2m_call(client: &cenda::Client, id: &str) -> bool {
    client
        .get_organisation()
        .organisation_id(id)
        .send()
        .await
        .is_ok_and(|organisation| organisation.into_inner().organisation_id == id)
}

/// The raw reqwest call with a fixed header.
struct Raw {
    http: reqwest::Client,
    url: String,
    authorization: HeaderValue,
}

/// Raw reqwest, its header from `Auth::authorization()` on every call.
async fn raw_with_auth(raw: &Raw, auth: &Auth) -> bool {
    match auth.authorization().await {
        Ok(authorization) => raw.call(authorization).await,
        Err(_) => false,
    }
}

impl Raw {
    async fn call(&self, authorization: HeaderValue) -> bool {
        let response = self
            .http
            .get(&self.url)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json")
            .header("api-version", API_VERSION)
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                response.json::<types::Organisation>().await.is_ok()
            }
            _ => false,
        }
    }
}

/// What the generated path does per call that the raw one does not, timed
/// alone (median of batches): the `exec` hook's copy of the request (kept
/// to send the call once more after a 401 `invalid_token`: for a request
/// without a body, its method, URL, headers and version, as
/// `m2m::apis::hooks` makes it), and the copy of the response headers
/// progenitor's `ResponseValue` keeps.
fn generated_extras(raw: &Raw, sizes: &Sizes) -> (Duration, Duration) {
    let request = raw
        .http
        .get(&raw.url)
        .header(AUTHORIZATION, raw.authorization.clone())
        .header(ACCEPT, "application/json")
        .header("api-version", API_VERSION)
        .build()
        .expect("a request");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(187u32));
    headers.insert(
        http::header::DATE,
        HeaderValue::from_static("Tue, 01 Dec 2026 11:00:00 GMT"),
    );
    let time = |f: &mut dyn FnMut()| {
        let mut batches = Vec::with_capacity(sizes.hit_batches);
        for _ in 0..sizes.hit_batches {
            let started = Instant::now();
            for _ in 0..sizes.hit_batch / 10 {
                f();
            }
            batches.push(started.elapsed() / (sizes.hit_batch / 10) as u32);
        }
        Sample::new(batches).median()
    };
    let resend_copy = time(&mut || {
        let mut copy = reqwest::Request::new(request.method().clone(), request.url().clone());
        *copy.headers_mut() = request.headers().clone();
        *copy.version_mut() = request.version();
        black_box(copy);
    });
    let headers_clone = time(&mut || {
        black_box(headers.clone());
    });
    (resend_copy, headers_clone)
}

/// The median time of one `Auth::token()` with a warm entry.
async fn cache_hit_time(auth: &Auth, sizes: &Sizes) -> Duration {
    for _ in 0..sizes.hit_batch {
        black_box(auth.token().await.is_ok());
    }
    let mut batches = Vec::with_capacity(sizes.hit_batches);
    for _ in 0..sizes.hit_batches {
        let started = Instant::now();
        for _ in 0..sizes.hit_batch {
            black_box(auth.token().await.is_ok());
        }
        batches.push(started.elapsed() / sizes.hit_batch as u32);
    }
    Sample::new(batches).median()
}
