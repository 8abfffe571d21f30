//! The upgrade itself, apart from the event loop that drives it:
//! - [`policy`]: whether an upgrade may be queued and applied (the one copy of the rules);
//! - [`freshness`]: whether a signed feed is fresh and not a replay (pure, clock passed in);
//! - [`queue`]: what is due, what to prepare and when to wake (pure, clock passed in);
//! - [`lifecycle`]: the daemon's life between upgrades — restarts, confirmation, health,
//!   rollback of a failing new version, giving up (pure);
//! - [`prepare`](Preparer): fetching and verifying a binary while the old daemon runs;
//! - [`transaction`]: stop → backup → swap → restart → record, and rollback;
//! - [`recover`]: finishing or abandoning an upgrade interrupted by a crash;
//! - [`rollback`]: the operator's rollback (what it goes back to, and carrying it out).

pub mod fleet;
pub mod freshness;
pub mod hooks;
pub mod lifecycle;
pub mod policy;
mod prepare;
pub mod queue;
pub mod recover;
pub mod rollback;
pub mod transaction;

pub use prepare::{Elsewhere, Preparer, pick_platform};
pub use transaction::sleep_until_opt;
