//! Any other agent (aider, opencode, a script): a shell command template from `agent.command`
//! with `{task}` and `{project_dir}` placeholders, run through `sh -c` in the project.
//! Success is judged by the exit code; the last lines of its output are its final message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Agent, AgentError, AgentOutcome, AgentStatus, stderr_suffix};
use crate::process::{self, CancelToken, ProcessSpec, SpawnError, Stop, tail_lines};

/// The setting that holds the template, for messages.
const SETTING: &str = "agent.command";

/// How to run the command agent.
#[derive(Clone, Debug)]
pub struct CommandConfig {
    /// The template: `my-agent --message {task} --dir {project_dir}`.
    pub template: String,
    /// The instruction file the agent reads (relative to the project unless absolute).
    pub rules_file: PathBuf,
    /// Wall-clock limit for one run.
    pub timeout: Duration,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
}

/// The command adapter.
pub struct CommandAgent {
    config: CommandConfig,
}

impl CommandAgent {
    /// An adapter with this configuration.
    pub fn new(config: CommandConfig) -> Self {
        Self { config }
    }

    /// The shell command for one run: each placeholder replaced by its value, shell-quoted.
    pub fn command_line(&self, task: &str, project_dir: &Path) -> String {
        self.config
            .template
            .replace("{task}", &shell_quote(task))
            .replace(
                "{project_dir}",
                &shell_quote(&project_dir.to_string_lossy()),
            )
    }

    /// The program the template starts, when it is a plain word we can look for.
    fn program(&self) -> Option<&str> {
        let first = self.config.template.split_whitespace().next()?;
        // Assignments, expansions, quoting or shell syntax: leave the judgement to the shell.
        let plain = first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./+@".contains(c));
        (plain && !first.contains('=')).then_some(first)
    }
}

/// `'…'` with every `'` written as `'\''`: the shell takes the value as one word, verbatim.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Shell words that are not programs.
const SHELL_WORDS: &[&str] = &[
    "cd", "exec", "env", "if", "for", "while", "case", "export", "set", "test", "[", "true",
    "false", "echo", "printf", ".", "source", "eval", "command", "nice", "time", "timeout",
];

impl Agent for CommandAgent {
    fn name(&self) -> &'static str {
        "command"
    }

    fn instruction_file(&self) -> &Path {
        &self.config.rules_file
    }

    fn check(&self) -> Result<(), AgentError> {
        if process::find_program("sh").is_none() {
            return Err(AgentError::CommandNotFound {
                program: "sh".into(),
                setting: SETTING,
            });
        }
        match self.program() {
            Some(p) if !SHELL_WORDS.contains(&p) && process::find_program(p).is_none() => {
                Err(AgentError::CommandNotFound {
                    program: p.to_string(),
                    setting: SETTING,
                })
            }
            _ => Ok(()),
        }
    }

    fn run(
        &self,
        task: &str,
        project_dir: &Path,
        cancel: &CancelToken,
    ) -> Result<AgentOutcome, AgentError> {
        let line = self.command_line(task, project_dir);
        let mut spec = ProcessSpec::shell(&line, project_dir, self.config.timeout)
            // Also as variables, for scripts that would rather read them than parse arguments.
            .env("PROMPTLOOP_TASK", task)
            .env("PROMPTLOOP_PROJECT_DIR", project_dir);
        for (key, value) in &self.config.env {
            spec = spec.env(key, value);
        }
        let output = process::run(&spec, cancel).map_err(|e| match e {
            SpawnError::NotFound { program } | SpawnError::Other { program, .. }
                if program == "sh" =>
            {
                AgentError::CommandNotFound {
                    program,
                    setting: SETTING,
                }
            }
            SpawnError::NotFound { program } => AgentError::CommandNotFound {
                program,
                setting: SETTING,
            },
            SpawnError::Other { program, source } => AgentError::Spawn { program, source },
        })?;
        let mut outcome = AgentOutcome::new(AgentStatus::Finished, output.duration, &output.stderr);
        let said = tail_lines(output.stdout.trim(), 20);
        outcome.final_message = (!said.is_empty()).then_some(said);
        outcome.status = match output.stop {
            Stop::Cancelled => AgentStatus::Interrupted,
            Stop::TimedOut => AgentStatus::TimedOut,
            Stop::Exited if output.exit.success() => AgentStatus::Finished,
            // `sh` says 127 when the program is missing and 126 when it cannot run it.
            Stop::Exited if matches!(output.exit, process::Exit::Code(126 | 127)) => {
                AgentStatus::StartFailed {
                    message: format!(
                        "the shell could not run `{}` ({}); fix {SETTING}{}",
                        self.config.template,
                        output.exit,
                        stderr_suffix(&output.stderr, 2)
                    ),
                }
            }
            Stop::Exited => AgentStatus::Failed {
                reason: format!("{}{}", output.exit, stderr_suffix(&output.stderr, 5)),
            },
        };
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(template: &str) -> CommandAgent {
        CommandAgent::new(CommandConfig {
            template: template.into(),
            rules_file: PathBuf::from("AGENTS.md"),
            timeout: Duration::from_secs(5),
            env: vec![("EXTRA".into(), "yes".into())],
        })
    }

    #[test]
    fn values_are_quoted_so_the_shell_takes_them_verbatim() {
        let task = "fix it; rm -rf / $(whoami) `id` 'quoted' \"double\" \\ \n next line";
        let dir = tempfile::tempdir().unwrap();
        let a = agent("printf '%s|' {task} {project_dir} \"$EXTRA\"");
        let out = a.run(task, dir.path(), &CancelToken::new()).unwrap();
        assert_eq!(out.status, AgentStatus::Finished);
        let expected = format!("{task}|{}|yes|", dir.path().display());
        assert_eq!(out.final_message.as_deref(), Some(expected.trim()));
    }

    #[test]
    fn the_task_is_also_in_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent("printf '%s' \"$PROMPTLOOP_TASK\"");
        let out = a.run("do X", dir.path(), &CancelToken::new()).unwrap();
        assert_eq!(out.final_message.as_deref(), Some("do X"));
    }

    #[test]
    fn non_zero_exit_is_a_failure_with_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let out = agent("echo working; echo 'it broke' >&2; exit 3")
            .run("t", dir.path(), &CancelToken::new())
            .unwrap();
        assert_eq!(
            out.status,
            AgentStatus::Failed {
                reason: "exit code 3: it broke".into()
            }
        );
        assert!(out.status.worked_on_task());
        assert_eq!(out.final_message.as_deref(), Some("working"));
    }

    #[test]
    fn a_missing_program_is_found_before_the_run() {
        let err = agent("no-such-agent-xyz --message {task}").check();
        assert!(
            matches!(&err, Err(AgentError::CommandNotFound { program, .. }) if program == "no-such-agent-xyz"),
            "{err:?}"
        );
        assert!(agent("sh -c true").check().is_ok());
        assert!(
            agent("cd {project_dir} && no-such-agent-xyz")
                .check()
                .is_ok()
        );
        assert!(agent("FOO=1 no-such-agent-xyz").check().is_ok());
        let dir = tempfile::tempdir().unwrap();
        let out = agent("no-such-agent-xyz {task}")
            .run("t", dir.path(), &CancelToken::new())
            .unwrap();
        assert!(
            matches!(&out.status, AgentStatus::StartFailed { message } if message.contains("127")),
            "{:?}",
            out.status
        );
    }

    #[test]
    fn shell_quote_handles_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
