//! A snapshot of the process environment, injected into library code.
//!
//! Library code never reads `std::env`: the CLI builds an [`Env`] once (process environment plus
//! any `-c` dotenv file) and passes it down, so tests run in parallel with their own values.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// An immutable set of environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// An environment built from the given pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set (an empty value counts as set).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of `name` if set and not empty.
    pub fn get_non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Sets (or replaces) a variable, returning the new snapshot.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Every variable, for passing to a child process.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The base directory under which `.nym/` lives: `$NYM_HOME_DIR`, else `$HOME`.
    pub fn home_dir(&self) -> Option<PathBuf> {
        self.get_non_empty("NYM_HOME_DIR")
            .or_else(|| self.get_non_empty("HOME"))
            .map(PathBuf::from)
    }
}
