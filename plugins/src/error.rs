//! The error type of the plugins crate: a plugin that cannot be used, named with its path and
//! what the operator can do.

use std::path::PathBuf;

/// A plugin cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configured file does not exist.
    #[error("the plugin {} does not exist; check NYMVISOR_PLUGIN_PATHS", path.display())]
    Missing { path: PathBuf },

    /// The file is not a loadable library.
    #[error("cannot load {}: {reason}", path.display())]
    Load { path: PathBuf, reason: String },

    /// A symbol of the ABI is missing.
    #[error("{} lacks {symbol}; it is not a nymvisor plugin", path.display())]
    Symbol { path: PathBuf, symbol: String },

    /// The plugin was built for another ABI version.
    #[error("{} speaks plugin ABI version {found}, this nymvisor speaks {expected}; rebuild the plugin", path.display())]
    Abi {
        path: PathBuf,
        found: u32,
        expected: u32,
    },

    /// No configured plugin has the name a `plugin:<name>` source asks for.
    #[error("no plugin named `{name}` among NYMVISOR_PLUGIN_PATHS (found: {found})")]
    NoSuchPlugin { name: String, found: String },

    /// The plugin does not provide an upstream source.
    #[error("the plugin `{name}` ({}) is not a source: it lacks nymvisor_plugin_latest", path.display())]
    NotASource { name: String, path: PathBuf },

    /// The fetcher for a source plugin's URLs could not be set up.
    #[error(transparent)]
    Fetch(#[from] nymvisor_sources::Error),
}
