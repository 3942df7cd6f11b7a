//! `m2m call`'s way into each generated client of m2m: [`Api`], and per
//! operation its builder with every value typed as the builder takes it
//! (written by build.rs from the generated code).

include!(concat!(env!("OUT_DIR"), "/dispatch.rs"));
