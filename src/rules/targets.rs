//! One learned rule, every agent's file: the instruction files a project keeps in step
//! (`CLAUDE.md`, `AGENTS.md`, `GEMINI.md`, `.cursor/rules/promptloop.mdc`,
//! `.github/copilot-instructions.md`, any path), each written in the form it expects.
//!
//! Every file gets the same managed section, rendered from the rule store through
//! [`file::replace_section_body`] (`learn::curate`), so the safety is the same for all: only
//! the section changes, atomically, under the lock. A new Cursor rule starts with its
//! front matter.

use std::path::{Path, PathBuf};

use super::file;
use super::format::normalized_key;

/// The YAML front matter a Cursor project rule (`.mdc`) needs to be applied to every
/// request; written only when promptloop creates the file.
pub const CURSOR_FRONT_MATTER: &str = "---\n\
description: Rules promptloop learned from failed attempts (Rule / When / Why)\n\
alwaysApply: true\n\
---";

/// The form an instruction file expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileForm {
    /// Plain markdown: CLAUDE.md, AGENTS.md, GEMINI.md, copilot-instructions.md, …
    Markdown,
    /// A Cursor project rule: markdown after YAML front matter.
    CursorRule,
}

impl FileForm {
    /// The form of the file at `path`, from its extension.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("mdc") => FileForm::CursorRule,
            _ => FileForm::Markdown,
        }
    }

    /// What a new file of this form starts with (the `.mdc` front matter).
    pub fn preamble(self) -> Option<&'static str> {
        match self {
            FileForm::Markdown => None,
            FileForm::CursorRule => Some(CURSOR_FRONT_MATTER),
        }
    }
}

/// One file rules are written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesTarget {
    /// Absolute path.
    pub path: PathBuf,
    /// How the file is written.
    pub form: FileForm,
}

/// The files a learned rule goes to; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesTargets {
    targets: Vec<RulesTarget>,
}

impl RulesTargets {
    /// Targets for `paths` (relative ones are taken from `project_dir`), in order, each
    /// once; `fallback` when `paths` is empty.
    pub fn new(paths: &[PathBuf], fallback: &Path, project_dir: &Path) -> Self {
        let mut targets: Vec<RulesTarget> = Vec::new();
        let wanted: Vec<&Path> = if paths.is_empty() {
            vec![fallback]
        } else {
            paths.iter().map(PathBuf::as_path).collect()
        };
        for path in wanted {
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                project_dir.join(path)
            };
            if !targets.iter().any(|t| t.path == path) {
                targets.push(RulesTarget {
                    form: FileForm::of(&path),
                    path,
                });
            }
        }
        Self { targets }
    }

    /// The first file: the one reported as "the rules file".
    pub fn primary(&self) -> &Path {
        // `new` always adds at least the fallback.
        self.targets.first().map_or(Path::new(""), |t| &t.path)
    }

    /// Every target, in order.
    pub fn all(&self) -> &[RulesTarget] {
        &self.targets
    }

    /// The paths, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.targets.iter().map(|t| t.path.clone()).collect()
    }

    /// The paths, for messages.
    pub fn display(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| t.path.display().to_string())
            .collect()
    }

    /// The rules already in any target's managed section, each once, in file order.
    /// A file that cannot be read contributes nothing: it is reported when written.
    pub fn known_rules(&self) -> Vec<String> {
        let mut seen = Vec::new();
        let mut rules = Vec::new();
        for target in &self.targets {
            for rule in file::read_section_rules(&target.path).unwrap_or_default() {
                let key = normalized_key(&rule);
                if !seen.contains(&key) {
                    seen.push(key);
                    rules.push(rule);
                }
            }
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::format::Rule;

    fn rule(text: &str) -> Rule {
        Rule {
            rule: text.into(),
            when: "always".into(),
            why: "tests".into(),
            category: None,
        }
    }

    #[test]
    fn forms_come_from_the_extension() {
        assert_eq!(
            FileForm::of(Path::new(".cursor/rules/promptloop.mdc")),
            FileForm::CursorRule
        );
        assert_eq!(FileForm::of(Path::new("AGENTS.md")), FileForm::Markdown);
        assert_eq!(
            FileForm::of(Path::new(".github/copilot-instructions.md")),
            FileForm::Markdown
        );
    }

    #[test]
    fn targets_are_resolved_deduplicated_and_default_to_the_fallback() {
        let project = Path::new("/p");
        let t = RulesTargets::new(&[], Path::new("GEMINI.md"), project);
        assert_eq!(t.primary(), Path::new("/p/GEMINI.md"));
        let t = RulesTargets::new(
            &[
                PathBuf::from("AGENTS.md"),
                PathBuf::from("/abs/CLAUDE.md"),
                PathBuf::from("AGENTS.md"),
            ],
            Path::new("GEMINI.md"),
            project,
        );
        assert_eq!(t.display(), ["/p/AGENTS.md", "/abs/CLAUDE.md"]);
    }

    #[test]
    fn known_rules_are_read_from_every_target_once() {
        let dir = tempfile::tempdir().unwrap();
        let entry =
            |text: &str| format!("- **Rule**: {text}\n- **When**: always\n- **Why**: tests");
        file::add_entry(
            &dir.path().join("AGENTS.md"),
            &rule("Use None"),
            &entry("Use None"),
        )
        .unwrap();
        let claude = dir.path().join("CLAUDE.md");
        file::add_entry(&claude, &rule("use none"), &entry("use none")).unwrap();
        file::add_entry(&claude, &rule("Quote paths"), &entry("Quote paths")).unwrap();
        let targets = RulesTargets::new(
            &[
                PathBuf::from("AGENTS.md"),
                PathBuf::from("CLAUDE.md"),
                PathBuf::from("GEMINI.md"),
            ],
            Path::new("CLAUDE.md"),
            dir.path(),
        );
        // The same rule in two files counts once; a missing file contributes nothing.
        assert_eq!(targets.known_rules(), ["Use None", "Quote paths"]);
    }
}
