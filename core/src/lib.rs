//! # nymvisor-core
//!
//! Everything nymvisor knows that is not HTTP or CLI: the configuration and its environment
//! overrides, the on-disk layout and JSON state files, crash-safe file primitives, the daemon
//! build-information protocol and the operations that change an instance's state.
//!
//! How it fits together: the CLI builds an [`env::Env`] snapshot, opens an
//! [`instance::Instance`] (config file + environment → paths), and calls an operation such as
//! [`instance::init`] or [`instance::add_upgrade`]. Library code never reads `std::env`.

pub mod backup;
pub mod build_info;
pub mod config;
pub mod daemon;
pub mod env;
pub mod error;
pub mod failpoint;
pub mod fleet;
pub mod fsutil;
pub mod health;
pub mod helper;
pub mod instance;
pub mod memory;
pub mod metrics;
pub mod mirror;
pub mod model;
pub mod names;
pub mod paths;
pub mod progress;
pub mod refusal;
pub mod run;
pub mod sandbox;
pub mod sd_notify;
pub mod source;
pub mod status;
pub mod timing;
pub mod upgrade;
pub mod verify;

pub use error::{Error, Result};
