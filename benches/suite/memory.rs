//! B4: memory. A cache whose store holds at most 10,000 keys is filled
//! with 10,000 tokens of a realistic size (a ~1 KB JWT), one per client,
//! each behind the `Auth`-side source a service would keep: resident
//! memory (`VmRSS`) is read before and after. Then five rounds of 10,000
//! more keys are used (without keeping their sources): the store must stay
//! within its bound, and memory must stop growing with the keys beyond it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use m2m::auth::clock::{RandomJitter, SystemClock};
use m2m::auth::{
    AccessToken, AuthError, BoxFuture, CacheKey, CacheSettings, FetchToken, MemoryStore, TokenCache,
};
use secrecy::SecretString;
use serde_json::json;

use super::machine::resident_bytes;
use super::sample::round;
use super::wiring::client_runtime;
use super::{Options, Row};

/// Most resident memory the 10,000 entries may take, in MiB.
pub const TARGET_MIB: f64 = 64.0;
/// Rounds of new keys past the bound.
const OVERFLOW_ROUNDS: usize = 5;

/// Hands out a new ~1 KB token per fetch, without I/O.
struct LocalTokens {
    issued: AtomicU64,
}

impl FetchToken for LocalTokens {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, AuthError>> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        // Header, claims and signature of a typical Entra/Cognito token.
        let value = format!(
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{}.{:0>342}",
            "e".repeat(640),
            n
        );
        Box::pin(std::future::ready(AccessToken::new(
            SecretString::from(value),
            "Bearer",
            SystemTime::now() + Duration::from_secs(3600),
            None,
        )))
    }
}

fn key(n: usize) -> CacheKey {
    CacheKey::new(
        "Custom",
        "https://login.example.com/7d1b3c5e-0f4a-4e8b-9c2d-5a6f7e8d9c0b/oauth2/v2.0/token",
        &format!("client-{n:08}"),
        ["api://c3e1a7f0-5b2d-4c8e-9f1a-2b3c4d5e6f70/.default"],
        None,
    )
}

/// Runs B4 (first in the suite: the process has allocated least then).
pub fn run(options: &Options) -> Row {
    let entries = if options.quick { 1_000 } else { 10_000 };
    let name = &format!("B4 memory, {entries} entries");
    let target = format!("<= {TARGET_MIB} MiB, len <= bound, RSS plateaus");
    let runtime = client_runtime(0);
    let store = Arc::new(MemoryStore::with_capacity(entries));
    let cache = TokenCache::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(RandomJitter),
        CacheSettings::default(),
    );
    let fetcher = Arc::new(LocalTokens {
        issued: AtomicU64::new(0),
    });
    let Some(before) = resident_bytes() else {
        return Row::unmeasured(
            name,
            "MiB",
            &target,
            "no /proc/self/status on this system: resident memory unknown",
        );
    };
    let mut sources = Vec::with_capacity(entries);
    runtime.block_on(async {
        for n in 0..entries {
            let source = cache.source(key(n), fetcher.clone());
            source.token().await.expect("a local token");
            sources.push(source);
        }
    });
    let filled = resident_bytes().unwrap_or(before);
    let len_filled = store.len();
    // Beyond the bound: three more rounds of as many new keys, their
    // sources dropped at once. The store must stay within its bound, and
    // memory must stop growing: what the first round adds is the
    // allocator's (freed blocks of a different size class), not entries.
    let mut after_round = Vec::with_capacity(OVERFLOW_ROUNDS);
    let mut len_after = 0;
    for round in 1..=OVERFLOW_ROUNDS {
        runtime.block_on(async {
            for n in round * entries..(round + 1) * entries {
                let source = cache.source(key(n), fetcher.clone());
                source.token().await.expect("a local token");
            }
        });
        after_round.push(resident_bytes().unwrap_or(filled));
        len_after = len_after.max(store.len());
    }
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let used = mib(filled.saturating_sub(before));
    let growth: Vec<f64> = std::iter::once(filled)
        .chain(after_round.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| round(mib(w[1].saturating_sub(w[0])), 2))
        .collect();
    // After the first round (hash tables resized once, freed blocks of
    // other size classes), the later rounds together add little: glibc's
    // allocator moves RSS by a MiB or so either way from round to round.
    let later_growth: f64 = growth.iter().skip(1).sum();
    let bound_holds = len_filled == entries && len_after <= store.capacity();
    let plateau = later_growth <= (used * 0.15).max(1.0);
    let pass = bound_holds && plateau && used <= TARGET_MIB;
    drop(sources);
    Row::new(
        name,
        round(used, 2),
        "MiB",
        &target,
        pass,
        json!({
            "summary": format!(
                "{:.0} bytes/entry; after {} keys: len <= {} (bound {}), RSS growth per round past the bound {:?} MiB",
                (filled.saturating_sub(before)) as f64 / entries as f64,
                (OVERFLOW_ROUNDS + 1) * entries, len_after, store.capacity(), growth
            ),
            "rss_before_mib": round(mib(before), 2),
            "rss_filled_mib": round(mib(filled), 2),
            "rss_after_each_overflow_round_mib": after_round.iter().map(|&b| round(mib(b), 2)).collect::<Vec<_>>(),
            "bytes_per_entry": round(filled.saturating_sub(before) as f64 / entries as f64, 0),
            "token_bytes": 1024,
            "len_filled": len_filled,
            "max_len_after_overflow": len_after,
            "bound": store.capacity(),
            "keys_used": (OVERFLOW_ROUNDS + 1) * entries,
            "bound_holds": bound_holds,
            "growth_per_overflow_round_mib": growth,
            "growth_after_first_round_mib": round(later_growth, 2),
            "memory_plateaus": plateau,
        }),
    )
}
