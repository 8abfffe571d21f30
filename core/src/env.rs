//! A snapshot of the process environment, injected into library code.
//!
//! Library code never reads `std::env`: the CLI builds an [`Env`] once (process environment plus
//! any `-c` dotenv file) and passes it down, so tests run in parallel with their own values.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// An immutable set of environment variables.
///
/// Variables whose name or value is not UTF-8 are kept as bytes: nymvisor does not read them,
/// but the daemon gets them unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
    opaque: BTreeMap<OsString, OsString>,
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
            opaque: BTreeMap::new(),
        }
    }

    /// An environment built from raw pairs (the process environment), keeping every one.
    pub fn from_os_pairs<I: IntoIterator<Item = (OsString, OsString)>>(pairs: I) -> Self {
        let mut env = Env::default();
        for (k, v) in pairs {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => {
                    env.vars.insert(k, v);
                }
                (k, v) => {
                    let k = k.map(OsString::from).unwrap_or_else(|k| k);
                    let v = v.map(OsString::from).unwrap_or_else(|v| v);
                    env.opaque.insert(k, v);
                }
            }
        }
        env
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
        let name = name.into();
        self.opaque.remove(OsStr::new(&name));
        self.vars.insert(name, value.into());
        self
    }

    /// The snapshot without `name` (e.g. a secret only one child may see).
    pub fn without(&self, name: &str) -> Self {
        let mut env = self.clone();
        env.vars.remove(name);
        env.opaque.remove(OsStr::new(name));
        env
    }

    /// Every UTF-8 variable.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every variable, as bytes, for passing to a child process.
    pub fn iter_os(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (OsStr::new(k.as_str()), OsStr::new(v.as_str())))
            .chain(
                self.opaque
                    .iter()
                    .map(|(k, v)| (k.as_os_str(), v.as_os_str())),
            )
    }

    /// The base directory under which `.nym/` lives: `$NYM_HOME_DIR`, else `$HOME`.
    pub fn home_dir(&self) -> Option<PathBuf> {
        self.get_non_empty("NYM_HOME_DIR")
            .or_else(|| self.get_non_empty("HOME"))
            .map(PathBuf::from)
    }
}
