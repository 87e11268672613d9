//! The shape stays true: every top-level module of `src/` imports only modules of a lower
//! layer, in the order docs/ARCHITECTURE.md draws them, and the submodules of one folder
//! (`store/`, `teacher/`, …) import each other without a circle. Reading the `crate::` and
//! `super::` paths of each file is enough; test modules may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use super::support::repo_root;

/// The layers, top first, as the first code block under "## Layers" in docs/ARCHITECTURE.md
/// lists them: each line starts with its modules, separated by " · ", then two spaces.
fn layers_of(doc: &str) -> Vec<Vec<String>> {
    let section = doc
        .split("\n## Layers")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a `## Layers` section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the Layers section starts with a code block");
    block
        .lines()
        .skip(1)
        .filter_map(|line| {
            let names = line.split("  ").next()?.trim();
            if names.is_empty() || !names.starts_with(|c: char| c.is_ascii_lowercase()) {
                return None;
            }
            Some(names.split(" · ").map(|n| n.trim().to_string()).collect())
        })
        .collect()
}

/// The source without its `#[cfg(test)]` modules and comments.
fn code_of(source: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_cfg_test = false;
    for line in source.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if let Some(start) = skip_depth {
            depth += opens - closes;
            if depth <= start {
                skip_depth = None;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test {
            pending_cfg_test = false;
            if trimmed.starts_with("mod ") && opens > closes {
                skip_depth = Some(depth);
                depth += opens - closes;
                continue;
            }
            if trimmed.starts_with("mod ") {
                continue;
            }
        }
        depth += opens - closes;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules a file's code names through `crate::` (grouped `use crate::{a, b}`
/// included).
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let path = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    for c in path.captures_iter(code) {
        found.insert(c[1].to_string());
    }
    let group = regex::Regex::new(r"use crate::\{([^;]*)\};").unwrap();
    let head = regex::Regex::new(r"(?:^|[{,])\s*([a-z_][a-z0-9_]*)").unwrap();
    for g in group.captures_iter(code) {
        // Only the first segment of each path in the group: `{a::{x, y}, b}` → a, b.
        let mut depth = 0;
        let mut top = String::new();
        for ch in g[1].chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                top.push(ch);
            } else if ch == '{' && depth == 1 {
                top.push(',');
            }
        }
        for h in head.captures_iter(&top) {
            found.insert(h[1].to_string());
        }
    }
    found.remove("self");
    found
}

/// The sibling submodules a file's code names through `super::` (grouped uses included).
fn super_imports(code: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let path = regex::Regex::new(r"super::([a-z_][a-z0-9_]*)").unwrap();
    for c in path.captures_iter(code) {
        found.insert(c[1].to_string());
    }
    let group = regex::Regex::new(r"use super::\{([^;]*)\};").unwrap();
    let head = regex::Regex::new(r"(?:^|[{,])\s*([a-z_][a-z0-9_]*)::").unwrap();
    for g in group.captures_iter(code) {
        for h in head.captures_iter(&g[1]) {
            found.insert(h[1].to_string());
        }
    }
    found.retain(|m| siblings.contains(m));
    found
}

/// Every `.rs` file below `dir`, as (path relative to `src/`, text).
fn sources(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The imports that break the layering: (file, module it imports, why).
fn violations(layers: &[Vec<String>], files: &[(String, String)]) -> Vec<String> {
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), i)))
        .collect();
    let mut problems = Vec::new();
    for (rel, text) in files {
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(&own) = rank.get(top) else {
            problems.push(format!(
                "{rel}: module `{top}` is in no layer of docs/ARCHITECTURE.md"
            ));
            continue;
        };
        for used in crate_imports(&code_of(text)) {
            if used == top {
                continue;
            }
            match rank.get(used.as_str()) {
                None => problems.push(format!("{rel}: imports `{used}`, which is in no layer")),
                Some(&r) if r < own => {
                    problems.push(format!("{rel}: `{top}` imports `{used}`, a layer above it"))
                }
                Some(&r) if r == own => {
                    problems.push(format!("{rel}: `{top}` imports `{used}` of its own layer"))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

/// Circles among the submodules of each folder: (folder, one circle).
fn folder_circles(files: &[(String, String)]) -> Vec<String> {
    let mut folders: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (rel, text) in files {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.len() == 2 && parts[1] != "mod.rs" {
            folders
                .entry(parts[0].to_string())
                .or_default()
                .insert(parts[1].trim_end_matches(".rs").to_string(), code_of(text));
        }
    }
    let mut circles = Vec::new();
    for (folder, modules) in &folders {
        let names: BTreeSet<String> = modules.keys().cloned().collect();
        let edges: BTreeMap<&str, BTreeSet<String>> = modules
            .iter()
            .map(|(name, code)| {
                let mut uses = super_imports(code, &names);
                // `crate::store::sqlite` from inside store/ is a sibling import too.
                let own =
                    regex::Regex::new(&format!(r"crate::{folder}::([a-z_][a-z0-9_]*)")).unwrap();
                uses.extend(
                    own.captures_iter(code)
                        .map(|c| c[1].to_string())
                        .filter(|m| names.contains(m)),
                );
                uses.remove(name);
                (name.as_str(), uses)
            })
            .collect();
        for start in edges.keys() {
            if let Some(path) = circle_from(start, &edges) {
                circles.push(format!("{folder}/: {}", path.join(" → ")));
                break;
            }
        }
    }
    circles
}

/// A path from `start` back to itself, if there is one.
fn circle_from(start: &str, edges: &BTreeMap<&str, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(node.as_str()).into_iter().flatten() {
            if next == start {
                let mut circle = path.clone();
                circle.push(next.clone());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn project_sources() -> Vec<(String, String)> {
    let src = repo_root().join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    files
}

fn documented_layers() -> Vec<Vec<String>> {
    let doc = fs::read_to_string(repo_root().join("docs/ARCHITECTURE.md")).unwrap();
    layers_of(&doc)
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let layers = documented_layers();
    assert!(
        layers.len() >= 5,
        "docs/ARCHITECTURE.md lists too few layers: {layers:?}"
    );
    let problems = violations(&layers, &project_sources());
    assert!(
        problems.is_empty(),
        "imports against the layering of docs/ARCHITECTURE.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_folder_has_a_circle_of_imports() {
    let circles = folder_circles(&project_sources());
    assert!(circles.is_empty(), "circles: {}", circles.join("\n"));
}

#[test]
fn every_documented_module_exists() {
    let files = project_sources();
    for name in documented_layers().into_iter().flatten() {
        assert!(
            files.iter().any(
                |(rel, _)| rel == &format!("{name}.rs") || rel.starts_with(&format!("{name}/"))
            ),
            "docs/ARCHITECTURE.md names `{name}`, which is not a module of src/"
        );
    }
}

/// The checker itself can fail: an import upward, one within a layer, a grouped import and
/// a circle inside a folder are all caught, and test modules are ignored.
#[test]
fn the_checker_catches_upward_imports_and_circles() {
    let layers = vec![
        vec!["cli".to_string()],
        vec!["store".to_string(), "teacher".to_string()],
        vec!["process".to_string()],
    ];
    let files = vec![
        (
            "process.rs".to_string(),
            "use crate::{cli::run, teacher};\n".to_string(),
        ),
        (
            "store/mod.rs".to_string(),
            "fn f() { crate::teacher::ask(); }\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n"
                .to_string(),
        ),
        (
            "cli.rs".to_string(),
            "use crate::store;\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n".to_string(),
        ),
        (
            "store/a.rs".to_string(),
            "use super::b::X;\n".to_string(),
        ),
        (
            "store/b.rs".to_string(),
            "use super::{a::Y, Z};\n".to_string(),
        ),
    ];
    let problems = violations(&layers, &files);
    assert_eq!(
        problems,
        vec![
            "process.rs: `process` imports `cli`, a layer above it".to_string(),
            "process.rs: `process` imports `teacher`, a layer above it".to_string(),
            "store/mod.rs: `store` imports `teacher` of its own layer".to_string(),
        ]
    );
    assert_eq!(
        folder_circles(&files),
        vec!["store/: a → b → a".to_string()]
    );
}
