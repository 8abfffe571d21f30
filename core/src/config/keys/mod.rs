//! The table of configuration keys: their environment variables, `init` flags and value kinds.
//!
//! One table drives both environment overrides and the `init` flags, so every key has both and
//! they parse values the same way.

pub use super::values::Kind;

/// How an `init` flag is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagStyle {
    /// `--flag VALUE`
    Value,
    /// `--flag` alone means true (the reference's switches).
    Switch,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// `nymvisor`, `daemon`, `tuning` or `fleet`.
    pub section: &'static str,
    pub key: &'static str,
    /// Environment variables, first is the documented one.
    pub envs: &'static [&'static str],
    /// The `init` flag (without `--`).
    pub flag: &'static str,
    pub style: FlagStyle,
    pub kind: Kind,
    pub help: &'static str,
}

impl KeyDef {
    /// `section.key`, as used in messages.
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// The documented environment variable.
    pub fn env(&self) -> &'static str {
        self.envs[0]
    }
}

macro_rules! key {
    ($section:literal, $key:literal, [$($env:literal),+], $flag:literal, $style:ident, $kind:expr, $help:literal) => {
        KeyDef {
            section: $section,
            key: $key,
            envs: &[$($env),+],
            flag: $flag,
            style: FlagStyle::$style,
            kind: $kind,
            help: $help,
        }
    };
}

mod daemon;
mod fleet;
mod nymvisor;
mod tuning;

/// How many keys there are.
const COUNT: usize =
    nymvisor::KEYS.len() + daemon::KEYS.len() + tuning::KEYS.len() + fleet::KEYS.len();

/// The sections' tables one after the other (a table per file, one table for the callers).
const fn concat(parts: [&[KeyDef]; 4]) -> [KeyDef; COUNT] {
    let mut out = [parts[0][0]; COUNT];
    let (mut p, mut n) = (0, 0);
    while p < parts.len() {
        let mut i = 0;
        while i < parts[p].len() {
            out[n] = parts[p][i];
            i += 1;
            n += 1;
        }
        p += 1;
    }
    out
}

const TABLE: [KeyDef; COUNT] = concat([nymvisor::KEYS, daemon::KEYS, tuning::KEYS, fleet::KEYS]);

/// Every configuration key, in file order.
pub const KEYS: &[KeyDef] = &TABLE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_documented() {
        let reference = include_str!("../../../../docs/REFERENCE.md");
        for def in KEYS {
            let row = format!("| `{}` | `{}`", def.path(), def.env());
            assert!(reference.contains(&row), "docs/REFERENCE.md lacks {row}");
            assert!(
                reference.contains(&format!("`--{}`", def.flag)),
                "docs/REFERENCE.md lacks --{}",
                def.flag
            );
        }
    }

    #[test]
    fn keys_are_unique() {
        let mut envs: Vec<_> = KEYS.iter().flat_map(|k| k.envs.iter()).collect();
        let mut flags: Vec<_> = KEYS.iter().map(|k| k.flag).collect();
        let (ne, nf) = (envs.len(), flags.len());
        envs.sort();
        envs.dedup();
        flags.sort();
        flags.dedup();
        assert_eq!((envs.len(), flags.len()), (ne, nf));
    }
}
