//! The shape of the house (docs/ARCHITECTURE.md "Layers"), checked on the sources: every
//! `crate::` and `super::` path in `core/src` points to the same layer or a lower one, no two
//! files import each other (directly or around a circle), and no module holds more than 500
//! lines of non-test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may use its own layer and those below.
const LAYERS: &[&[&str]] = &[
    // foundations
    &[
        "error",
        "env",
        "fsutil",
        "names",
        "paths",
        "failpoint",
        "memory",
        "sd_notify",
        "progress",
        "refusal",
        "timing",
    ],
    // documents and settings
    &["model", "config"],
    // mechanisms
    &[
        "daemon",
        "build_info",
        "source",
        "fleet",
        "verify",
        "health",
        "sandbox",
        "backup",
    ],
    // the instance: configuration and paths together (`instance/mod.rs` only)
    &["instance"],
    // the upgrade: policy, queue, lifecycle, prepare, transaction, recovery
    &["upgrade"],
    // what the commands and the helper do with it
    &["helper", "instance/*", "mirror", "status", "metrics"],
    // the event loop
    &["run"],
];

/// Longest module file accepted (lines before `#[cfg(test)]`).
const MAX_LINES: usize = 500;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src`, relative.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p.strip_prefix(src()).unwrap().to_owned());
        }
    }
}

/// The module path of a file: `a/b.rs` → `[a, b]`, `a/mod.rs` → `[a]`.
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The code of a file without its tests and comments.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(src().join(file)).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// The module paths a file's code names: `crate::a::b`, `super::a`, `use crate::{a, b}`.
fn paths_named(code: &str, me: &[String]) -> Vec<Vec<String>> {
    // `super` of `a/b.rs` (module a::b) is `a`; of `a/mod.rs` (module a) the root
    let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    let mut found = Vec::new();
    for (kw, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(kw) {
            let before = rest[..i].chars().last();
            rest = &rest[i + kw.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue; // `super::super::`, `some_crate::`
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    let (name, _) = ident(item.trim());
                    if !name.is_empty() && name != "self" {
                        let mut p = base.clone();
                        p.push(name.to_owned());
                        found.push(p);
                    }
                }
                continue;
            }
            let mut p = base.clone();
            let mut s = rest;
            loop {
                let (name, after) = ident(s);
                if name.is_empty() {
                    break;
                }
                p.push(name.to_owned());
                match after.strip_prefix("::") {
                    Some(next) => s = next,
                    None => break,
                }
            }
            found.push(p);
        }
    }
    found
}

/// The layer of a file.
fn layer_of(file: &Path) -> Option<usize> {
    let m = module_of(file);
    let top = m.first()?;
    let key = if top == "instance" && m.len() > 1 {
        "instance/*".to_owned()
    } else {
        top.clone()
    };
    LAYERS.iter().position(|l| l.contains(&key.as_str()))
}

#[test]
fn imports_point_down_and_never_around_a_circle() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let by_module: BTreeMap<Vec<String>, PathBuf> =
        all.iter().map(|f| (module_of(f), f.clone())).collect();
    let resolve = |path: &[String]| {
        (1..=path.len())
            .rev()
            .find_map(|n| by_module.get(&path[..n]).cloned())
    };
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut problems = Vec::new();
    for f in &all {
        if f == Path::new("lib.rs") {
            continue;
        }
        let Some(mine) = layer_of(f) else {
            problems.push(format!("{}: in no layer (add it to LAYERS)", f.display()));
            continue;
        };
        let me = module_of(f);
        for p in paths_named(&code(f), &me) {
            let Some(target) = resolve(&p) else { continue };
            if &target == f || target == Path::new("lib.rs") {
                continue;
            }
            if let Some(theirs) = layer_of(&target)
                && theirs > mine
            {
                problems.push(format!(
                    "{} (layer {mine}) uses {} (layer {theirs}): an arrow up",
                    f.display(),
                    target.display()
                ));
            }
            edges.entry(f.clone()).or_default().insert(target);
        }
    }
    // circles: a file reachable from itself
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(PathBuf, Vec<PathBuf>)> = edges[start]
            .iter()
            .map(|t| (t.clone(), vec![start.clone(), t.clone()]))
            .collect();
        while let Some((at, route)) = stack.pop() {
            if &at == start {
                let names: Vec<String> = route.iter().map(|r| r.display().to_string()).collect();
                problems.push(format!("a circle: {}", names.join(" → ")));
                break;
            }
            if !seen.insert(at.clone()) {
                continue;
            }
            for next in edges.get(&at).into_iter().flatten() {
                let mut r = route.clone();
                r.push(next.clone());
                stack.push((next.clone(), r));
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        edges.len() > 50,
        "the scan found too little: {}",
        edges.len()
    );
}

#[test]
fn no_module_is_over_500_lines() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut long: Vec<String> = all
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(src().join(f)).unwrap();
            let lines = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}
