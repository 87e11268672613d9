//! From settings to the agent that runs (`agent.kind` / `--agent`) and the instruction files
//! its rules go to (`--rules-file`, `rules.file`, `rules.targets`, else the agent's own file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::agent::Agent;
use crate::agent::claude::{ClaudeCode, ClaudeConfig};
use crate::agent::codex::{Codex, CodexConfig};
use crate::agent::command::{CommandAgent, CommandConfig};
use crate::agent::gemini::{Gemini, GeminiConfig};
use crate::rules::targets::RulesTargets;
use crate::settings::{AgentKind, Settings};

fn env_pairs(env: &BTreeMap<String, String>) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The agent the settings choose, configured from its section.
pub(crate) fn make_agent(settings: &Settings) -> Box<dyn Agent> {
    match settings.agent.kind {
        AgentKind::Claude => {
            let c = &settings.claude;
            Box::new(ClaudeCode::new(ClaudeConfig {
                command: c.command.clone(),
                max_turns: c.max_turns,
                permission_mode: c.permission_mode.as_str().to_string(),
                allowed_tools: c.allowed_tools.clone(),
                model: c.model.clone(),
                output_format: c.output_format.as_str().to_string(),
                extra_args: c.extra_args.clone(),
                timeout: c.timeout,
                env: env_pairs(&c.env),
            }))
        }
        AgentKind::Codex => {
            let c = &settings.codex;
            Box::new(Codex::new(CodexConfig {
                command: c.command.clone(),
                model: c.model.clone(),
                extra_args: c.extra_args.clone(),
                timeout: c.timeout,
                env: env_pairs(&c.env),
                home: c.home.clone(),
            }))
        }
        AgentKind::Gemini => {
            let c = &settings.gemini;
            Box::new(Gemini::new(GeminiConfig {
                command: c.command.clone(),
                model: c.model.clone(),
                extra_args: c.extra_args.clone(),
                timeout: c.timeout,
                env: env_pairs(&c.env),
            }))
        }
        AgentKind::Command => {
            let a = &settings.agent;
            Box::new(CommandAgent::new(CommandConfig {
                // Validation makes sure kind `command` comes with a template.
                template: a.command.clone().unwrap_or_default(),
                rules_file: a
                    .rules_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(AgentKind::Command.default_rules_file())),
                timeout: a.timeout,
                env: env_pairs(&a.env),
            }))
        }
    }
}

/// Where rules go: `--rules-file` / `rules.file` (one file), else `rules.targets`, else the
/// file of the agent in use.
pub(crate) fn rules_targets(
    settings: &Settings,
    project_dir: &Path,
    agent: &dyn Agent,
) -> RulesTargets {
    let single: Vec<PathBuf> = settings.rules.file.iter().cloned().collect();
    let paths = if single.is_empty() {
        &settings.rules.targets
    } else {
        &single
    };
    // `rules.scope: global` with no file named: the agent's file in the user's home
    // (`~/.claude/CLAUDE.md`), so the user's store never renders into a project's file.
    let global_home = match (settings.rules.scope, crate::settings::process_env("HOME")) {
        (crate::settings::RuleScope::Global, Some(home))
            if !home.is_empty() && paths.is_empty() =>
        {
            let dir = match agent.instruction_file().to_str() {
                Some("CLAUDE.md") => ".claude",
                Some("AGENTS.md") => ".codex",
                Some("GEMINI.md") => ".gemini",
                _ => ".promptloop",
            };
            Some(Path::new(&home).join(dir).join(agent.instruction_file()))
        }
        _ => None,
    };
    match global_home {
        Some(file) => RulesTargets::new(std::slice::from_ref(&file), &file, project_dir),
        None => RulesTargets::new(paths, agent.instruction_file(), project_dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_writes_to_its_own_file_by_default() {
        let project = Path::new("/p");
        for (kind, file) in [
            (AgentKind::Claude, "/p/CLAUDE.md"),
            (AgentKind::Codex, "/p/AGENTS.md"),
            (AgentKind::Gemini, "/p/GEMINI.md"),
            (AgentKind::Command, "/p/AGENTS.md"),
        ] {
            let mut s = Settings::default();
            s.agent.kind = kind;
            s.agent.command = Some("true".into());
            let agent = make_agent(&s);
            assert_eq!(agent.name(), kind.as_str());
            assert_eq!(rules_targets(&s, project, agent.as_ref()).display(), [file]);
        }
    }

    #[test]
    fn explicit_files_beat_the_agent_default() {
        let project = Path::new("/p");
        let mut s = Settings::default();
        s.agent.kind = AgentKind::Command;
        s.agent.command = Some("true".into());
        s.agent.rules_file = Some(PathBuf::from("docs/AI.md"));
        let agent = make_agent(&s);
        assert_eq!(
            rules_targets(&s, project, agent.as_ref()).display(),
            ["/p/docs/AI.md"]
        );
        s.rules.targets = vec![PathBuf::from("CLAUDE.md"), PathBuf::from("GEMINI.md")];
        assert_eq!(
            rules_targets(&s, project, agent.as_ref()).display(),
            ["/p/CLAUDE.md", "/p/GEMINI.md"]
        );
        s.rules.targets.clear();
        s.rules.file = Some(PathBuf::from("/abs/RULES.md"));
        assert_eq!(
            rules_targets(&s, project, agent.as_ref()).display(),
            ["/abs/RULES.md"]
        );
    }
}
