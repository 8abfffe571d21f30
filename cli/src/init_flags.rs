//! `init`'s flags, one per configuration key, generated from the core's key table so that no
//! key can lack its flag.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use nymvisor_core::config::{FlagStyle, KEYS, KeyDef, Kind};

/// The configuration flags given to `init`, as (key, raw value) pairs.
#[derive(Debug, Clone, Default)]
pub struct InitFlags(pub Vec<(&'static KeyDef, String)>);

impl FromArgMatches for InitFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Vec::new();
        for def in KEYS {
            match def.style {
                FlagStyle::Switch => {
                    if matches.get_flag(def.flag) {
                        flags.push((def, "true".to_owned()));
                    }
                }
                FlagStyle::Value => {
                    if let Some(v) = matches.get_one::<String>(def.flag) {
                        flags.push((def, v.clone()));
                    }
                }
            }
        }
        Ok(InitFlags(flags))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for InitFlags {
    fn augment_args(mut cmd: Command) -> Command {
        for def in KEYS {
            let help = format!("{} [env: {}]", def.help, def.env());
            let arg = Arg::new(def.flag).long(def.flag).help(help);
            let arg = match def.style {
                FlagStyle::Switch => arg.action(ArgAction::SetTrue),
                FlagStyle::Value => arg.action(ArgAction::Set).value_name(value_name(def.kind)),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

fn value_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str | Kind::OptStr => "VALUE",
        Kind::Bool | Kind::OptBool => "BOOL",
        Kind::Duration => "DURATION",
        Kind::Count => "N",
        Kind::List => "LIST",
        Kind::Choice(words) => words,
        Kind::Bytes => "BYTES",
    }
}
