#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod apis;
pub mod auth;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod provider;
#[cfg(feature = "sandbox")]
pub mod sandbox;
