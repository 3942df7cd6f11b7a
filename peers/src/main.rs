//! m2m side by side with the Rust token managers a team would pick instead,
//! in one run against the m2m sandbox's Entra-style token endpoint on
//! loopback: `cargo run --release` in `peers/` (`-- --quick`: seconds, for
//! checking the wiring). Prints one Markdown table; see README.md.

mod alloc;
mod env;
mod measure;
mod peers;
mod sample;
mod table;
mod tls_front;

use std::time::Instant;

use measure::{Figures, Sizes};
use peers::Kind;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let descriptors = raise_descriptor_limit();
    let started = Instant::now();
    eprintln!(
        "m2m peers ({} run, {} cores, open-file limit {descriptors})",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let env = env::Env::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("peers-client")
        .enable_all()
        .build()
        .expect("the client runtime starts");
    let figures: Vec<Figures> = runtime.block_on(async {
        vec![
            measure::peer::<peers::m2m::M2m>(&env, &sizes).await,
            measure::peer::<peers::azure::Azure>(&env, &sizes).await,
            measure::peer::<peers::aws::Aws>(&env, &sizes).await,
            measure::peer::<peers::oauth2_rs::Oauth2>(&env, &sizes).await,
            measure::peer::<peers::huskarl::Huskarl>(&env, &sizes).await,
        ]
    });
    drop(runtime);
    env.stop();
    println!("{}", table::render(&figures, &sizes));
    println!("Ratios are peer ÷ m2m. Each peer's steady-load tokens:");
    let lifetimes = [
        (peers::m2m::M2m::NAME, peers::m2m::M2m::REFRESH),
        (peers::azure::Azure::NAME, peers::azure::Azure::REFRESH),
        (peers::aws::Aws::NAME, peers::aws::Aws::REFRESH),
        (
            peers::oauth2_rs::Oauth2::NAME,
            peers::oauth2_rs::Oauth2::REFRESH,
        ),
        (
            peers::huskarl::Huskarl::NAME,
            peers::huskarl::Huskarl::REFRESH,
        ),
    ];
    for ((name, refresh), figures) in lifetimes.iter().zip(&figures) {
        println!(
            "- {name}: lifetime {} s; {refresh}.",
            figures.steady_lifetime.as_secs()
        );
    }
    println!("\n{}", table::GOOGLE_LEFT_OUT);
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
}

/// Raises the open-file limit as far as allowed (10,000 callers of a peer
/// without a cache hold 10,000 client and 10,000 server sockets in this one
/// process); returns the limit in force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let wanted = libc::rlimit {
            rlim_cur: 65_536,
            rlim_max: limit.rlim_max.max(65_536),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            return wanted.rlim_cur;
        }
        let soft = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return soft.rlim_cur;
        }
    }
    limit.rlim_cur
}
