//! The docs match the program: every `nymvisor …` command line in the README, the operator
//! guide and the migration guide names a command that exists and flags that command takes (its
//! `--help` lists them). Arguments after `run` are the daemon's and are not checked.

use std::collections::BTreeMap;

use nymvisor_tests::*;

const DOCS: &[&str] = &["README.md", "docs/OPERATOR_GUIDE.md", "docs/MIGRATION.md"];

/// The `nymvisor …` invocations in a document: in shell blocks, and code spans that are a
/// command (starting with `nymvisor `, possibly after `sudo …` and variable assignments).
fn invocations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_shell = false;
    let mut in_block = false;
    let mut prose = String::new();
    for line in text.lines() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            if in_block {
                in_block = false;
                in_shell = false;
            } else {
                in_block = true;
                in_shell = matches!(lang.trim(), "sh" | "bash" | "shell");
            }
            continue;
        }
        if in_shell {
            found.extend(from_line(line));
        } else if !in_block {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    for (i, span) in prose.split('`').enumerate() {
        let words: Vec<&str> = span.split_whitespace().collect();
        // a command: `nymvisor …`, `sudo [-u USER] [VAR=value…] nymvisor …`
        let first_word = words
            .iter()
            .position(|w| !(*w == "sudo" || w.starts_with('-') || w.contains('=') || *w == "nym"));
        if i % 2 == 1 && first_word.is_some_and(|p| words[p] == "nymvisor") {
            found.extend(from_line(span));
        }
    }
    found
}

/// The `nymvisor` command in a shell line, if one of its commands is `nymvisor` (possibly
/// after `sudo [-u USER]`, `env` and `VAR=value` words): its arguments up to the end of that
/// command. `docker run … nymvisor` (an image name) or a path is not one.
fn from_line(line: &str) -> Option<String> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let code = line.split(" #").next().unwrap_or(line);
    for segment in code.split(['|', ';', '&', '(', ')', '`']) {
        let words: Vec<&str> = segment.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            match words[i] {
                "sudo" | "env" | "exec" => i += 1,
                "-u" => i += 2,
                w if w.contains('=') || w.starts_with('-') => i += 1,
                _ => break,
            }
        }
        if words.get(i) == Some(&"nymvisor") {
            let rest: Vec<&str> = words[i + 1..]
                .iter()
                .copied()
                .take_while(|w| !w.starts_with('>'))
                .collect();
            if !rest.is_empty() {
                return Some(rest.join(" "));
            }
        }
    }
    None
}

/// `nymvisor <path…> --help`, cached.
fn help<'a>(cache: &'a mut BTreeMap<String, Option<String>>, path: &[&str]) -> Option<&'a str> {
    let key = path.join(" ");
    cache
        .entry(key)
        .or_insert_with(|| {
            let out = std::process::Command::new(nymvisor_bin())
                .args(path)
                .arg("--help")
                .env_clear()
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .as_deref()
}

#[test]
fn every_documented_command_line_matches_the_cli() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cache = BTreeMap::new();
    let mut checked = 0;
    let mut problems = Vec::new();
    for doc in DOCS {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for cmd in invocations(&text) {
            let words: Vec<&str> = cmd
                .split_whitespace()
                .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
                .collect();
            // global options first
            let mut i = 0;
            while i < words.len() && (words[i] == "-c" || words[i].starts_with("--config-env-file"))
            {
                i += if words[i] == "-c" { 2 } else { 1 };
            }
            let Some(&sub) = words.get(i) else { continue };
            if sub.starts_with('-') || sub.starts_with('<') || sub.contains('…') {
                continue; // `nymvisor -V`, `nymvisor --version`, a placeholder
            }
            let mut path = vec![sub];
            // the commands with subcommands of their own
            if matches!(sub, "backups" | "mirror" | "fleet")
                && let Some(&second) = words.get(i + 1)
            {
                path.push(second);
            }
            let Some(text) = help(&mut cache, &path) else {
                problems.push(format!(
                    "{doc}: `nymvisor {cmd}`: no command `{}`",
                    path.join(" ")
                ));
                continue;
            };
            checked += 1;
            if sub == "run" {
                continue; // what follows is the daemon's
            }
            for w in &words[i + path.len()..] {
                let flag = w.split('=').next().unwrap_or(w);
                if flag.starts_with("--") && flag.len() > 2 && !text.contains(flag) {
                    problems.push(format!(
                        "{doc}: `nymvisor {cmd}`: `{}` takes no {flag}",
                        path.join(" ")
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked > 30,
        "only {checked} command lines found: the extraction broke"
    );
}

#[test]
fn the_extraction_finds_what_it_should() {
    let doc = "text `nymvisor status -o json` and `nymvisor` alone, `/usr/bin/nymvisor run $A`\nthen nymvisor picks\n```sh\nsudo -u nym NYM_HOME_DIR=/x nymvisor hold --reason x   # a nymvisor note\nsudo install target/release/nymvisor /usr/bin/nymvisor\nsystemctl start nymvisor@my-node\n```\n```ini\nExecStart=nymvisor run\n```\n";
    assert_eq!(invocations(doc), ["hold --reason x", "status -o json"]);
}
