//! End-to-end tests: the real `nymvisor` binary driven in temporary homes against the fake daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod add_upgrade;
mod backups;
mod basics;
mod config;
mod container;
mod crash;
mod docs;
mod etcd;
mod fleet;
mod github;
mod hardening;
mod hardening2;
mod incidents;
mod init;
mod migration;
mod mirror;
mod observability;
mod operable;
mod plugins;
mod policy;
mod precopy;
mod run;
mod sandbox;
mod sources;
mod status;
