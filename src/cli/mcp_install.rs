//! `promptloop mcp install|uninstall`: register the MCP server with an agent CLI in the
//! file that CLI reads, the way it writes such entries itself (`claude mcp add`, `codex mcp
//! add`, `gemini mcp add`), keeping every other byte of the file. The edits themselves are
//! `agent::mcp_config`'s; this module finds the files, writes them atomically, and remembers
//! (beside the user's rule store) which file or `mcpServers` object an install created, so
//! the uninstall removes that too and leaves the file as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Failure, project_dir};
use crate::agent::mcp_config::{self, EditError, Edited};
use crate::git::Repo;
use crate::process::find_program;
use crate::settings::process_env;

/// The server's name in every config (tools appear as `mcp__promptloop__…` in Claude Code).
pub(super) const SERVER_NAME: &str = "promptloop";

/// The agents `mcp install` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum AgentCli {
    /// Claude Code: .mcp.json (project) or ~/.claude.json (user).
    Claude,
    /// Codex CLI: ~/.codex/config.toml ($CODEX_HOME) [mcp_servers.promptloop] (user only).
    Codex,
    /// Gemini CLI: .gemini/settings.json (project) or ~/.gemini/settings.json (user).
    Gemini,
}

impl AgentCli {
    fn name(self) -> &'static str {
        match self {
            AgentCli::Claude => "Claude Code",
            AgentCli::Codex => "Codex CLI",
            AgentCli::Gemini => "Gemini CLI",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            AgentCli::Claude => "claude",
            AgentCli::Codex => "codex",
            AgentCli::Gemini => "gemini",
        }
    }
}

/// Where the registration goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum InstallScope {
    /// This project only (a file in the project, meant to be shared with the team).
    Project,
    /// Every project of this user (a file in the home directory).
    User,
}

/// `mcp install`.
#[derive(Debug, Args)]
pub(super) struct InstallArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A config file the server reads (its absolute path goes into the entry).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The command that starts promptloop (default: `promptloop` when it is this binary on
    /// PATH, else this binary's absolute path).
    #[arg(long, value_name = "PATH")]
    command: Option<String>,
}

/// `mcp uninstall`.
#[derive(Debug, Args)]
pub(super) struct UninstallArgs {
    #[command(flatten)]
    target: TargetArgs,
}

/// Which CLI and which of its files.
#[derive(Debug, Args)]
struct TargetArgs {
    /// The agent CLI.
    #[arg(long, value_enum, default_value = "claude")]
    agent: AgentCli,
    /// project (default; Codex has only user) or user.
    #[arg(long, value_enum)]
    scope: Option<InstallScope>,
    /// The project (for --scope project).
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
}

/// One config file of one CLI.
struct Target {
    agent: AgentCli,
    scope: InstallScope,
    path: PathBuf,
}

fn home() -> Result<PathBuf, Failure> {
    process_env("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Failure::usage("HOME is not set, so the user's config cannot be found"))
}

fn env_dir(name: &str) -> Option<PathBuf> {
    process_env(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl TargetArgs {
    fn resolve(&self) -> Result<Target, Failure> {
        let scope = self.scope.unwrap_or(match self.agent {
            AgentCli::Codex => InstallScope::User,
            _ => InstallScope::Project,
        });
        let project_root = || -> Result<PathBuf, Failure> {
            let dir = project_dir(&self.project_dir)?;
            Ok(Repo::open(&dir).map_or(dir, |r| r.root().to_path_buf()))
        };
        let path = match (self.agent, scope) {
            (AgentCli::Claude, InstallScope::Project) => project_root()?.join(".mcp.json"),
            // Claude Code keeps user-scope servers in ~/.claude.json ($CLAUDE_CONFIG_DIR when set).
            (AgentCli::Claude, InstallScope::User) => env_dir("CLAUDE_CONFIG_DIR")
                .map_or_else(home, Ok)?
                .join(".claude.json"),
            (AgentCli::Gemini, InstallScope::Project) => {
                project_root()?.join(".gemini").join("settings.json")
            }
            (AgentCli::Gemini, InstallScope::User) => home()?.join(".gemini").join("settings.json"),
            (AgentCli::Codex, InstallScope::User) => env_dir("CODEX_HOME")
                .map_or_else(|| home().map(|h| h.join(".codex")), Ok)?
                .join("config.toml"),
            (AgentCli::Codex, InstallScope::Project) => {
                return Err(Failure::usage(
                    "Codex CLI reads MCP servers from ~/.codex/config.toml ($CODEX_HOME) only: \
                     use --scope user (the server then serves the project Codex runs in)",
                ));
            }
        };
        Ok(Target {
            agent: self.agent,
            scope,
            path,
        })
    }
}

/// The command that starts this promptloop: `promptloop` when that is this binary on
/// PATH, else the absolute path of this binary.
fn own_command() -> Result<String, Failure> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Failure::usage(format!("find this promptloop binary: {e}")))?;
    let on_path = find_program("promptloop").and_then(|p| p.canonicalize().ok());
    if on_path.as_deref() == Some(exe.as_path()) {
        return Ok("promptloop".to_string());
    }
    Ok(exe.display().to_string())
}

/// What an install remembered about a file, so its uninstall removes what it created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Created {
    /// The file did not exist before.
    file: bool,
    /// Its folder did not exist before (`.gemini/`).
    dir: bool,
    /// The `mcpServers` object did not exist before.
    key: bool,
}

/// `$XDG_DATA_HOME/promptloop/mcp-installs.json`, beside the user's rule store.
fn state_path() -> Option<PathBuf> {
    crate::store::user_db_path(&process_env)
        .and_then(|db| db.parent().map(|d| d.join("mcp-installs.json")))
}

fn read_state() -> BTreeMap<String, Created> {
    state_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn write_state(state: &BTreeMap<String, Created>) -> Result<(), Failure> {
    let Some(path) = state_path() else {
        return Ok(());
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("create {}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    write_atomic(&path, format!("{text}\n").as_bytes(), false)
}

/// The file a symlink points to (edits go there, the link stays).
fn real_path(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => path.canonicalize().unwrap_or(path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Replaces `path` with `bytes` (temporary file in the same folder, fsync, rename): a
/// reader sees the old file or the new one, never half of one. An existing file keeps its
/// permissions; a new one is private to the user when `private`.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), Failure> {
    let cannot = |e: std::io::Error| Failure::usage(format!("write {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".promptloop-").suffix(".tmp");
    let existing = std::fs::metadata(path).ok();
    #[cfg(unix)]
    if existing.is_none() {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(if private {
            0o600
        } else {
            0o666
        }));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(cannot)?;
    if let Some(meta) = &existing {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(cannot)?;
    }
    tmp.write_all(bytes).map_err(cannot)?;
    tmp.as_file().sync_all().map_err(cannot)?;
    tmp.persist(path).map_err(|e| cannot(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn edit_failure(path: &Path, e: EditError) -> Failure {
    Failure::usage(format!("cannot edit {}: {e}", path.display()))
}

fn is_toml(agent: AgentCli) -> bool {
    agent == AgentCli::Codex
}

/// Runs `mcp install`.
pub(super) fn install(args: InstallArgs) -> Result<u8, Failure> {
    let target = args.target.resolve()?;
    let command = match &args.command {
        Some(c) if !c.trim().is_empty() => c.clone(),
        Some(_) => return Err(Failure::usage("--command is empty")),
        None => own_command()?,
    };
    let mut server_args = vec!["mcp".to_string()];
    if target.agent != AgentCli::Claude {
        // Rules go to the agent's own file (AGENTS.md, GEMINI.md).
        server_args.extend(["--agent".to_string(), target.agent.kind().to_string()]);
    }
    if let Some(config) = &args.config {
        let abs = config
            .canonicalize()
            .map_err(|e| Failure::usage(format!("--config {}: {e}", config.display())))?;
        server_args.extend(["--config".to_string(), abs.display().to_string()]);
    }
    let path = real_path(&target.path);
    let before = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Failure::usage(format!("read {}: {e}", path.display()))),
    };
    let text = before.as_deref().unwrap_or("");
    let edited = if is_toml(target.agent) {
        mcp_config::toml_install(text, SERVER_NAME, &command, &server_args)
    } else {
        let entry = match target.agent {
            // As `claude mcp add` writes it.
            AgentCli::Claude => json!({
                "type": "stdio",
                "command": command,
                "args": server_args,
                "env": {},
            }),
            _ => json!({ "command": command, "args": server_args }),
        };
        mcp_config::json_install(text, SERVER_NAME, &entry)
    }
    .map_err(|e| edit_failure(&path, e))?;
    let Some(Edited {
        text: new_text,
        created_key,
        ..
    }) = edited
    else {
        println!(
            "{} already runs promptloop's MCP server from {}; nothing changed",
            target.agent.name(),
            path.display()
        );
        return Ok(0);
    };
    let mut created = Created {
        file: before.is_none(),
        dir: false,
        key: created_key,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("create {}: {e}", dir.display())))?;
        created.dir = true;
    }
    write_atomic(
        &path,
        new_text.as_bytes(),
        target.scope == InstallScope::User,
    )?;
    let mut state = read_state();
    let key = path.display().to_string();
    // A re-install over an entry keeps what the first install created.
    let previous = state.remove(&key).unwrap_or_default();
    state.insert(
        key,
        Created {
            file: created.file || previous.file,
            dir: created.dir || previous.dir,
            key: created.key || previous.key,
        },
    );
    write_state(&state)?;
    println!(
        "registered promptloop's MCP server with {} in {} ({} scope):\n  {} {}",
        target.agent.name(),
        path.display(),
        match target.scope {
            InstallScope::Project => "project",
            InstallScope::User => "user",
        },
        command,
        server_args.join(" ")
    );
    println!("{}", next_step(target.agent, target.scope));
    Ok(0)
}

/// What the user still has to do for the CLI to use the server.
fn next_step(agent: AgentCli, scope: InstallScope) -> &'static str {
    match (agent, scope) {
        (AgentCli::Claude, InstallScope::Project) => {
            "An interactive Claude Code asks once to approve a project's .mcp.json servers \
             (`claude mcp list` shows it as pending until then); `claude -p` starts them \
             without asking. Allow its tools with `--allowedTools mcp__promptloop` (or \
             /permissions)."
        }
        (AgentCli::Claude, InstallScope::User) => {
            "Claude Code starts it in every project; allow its tools with \
             `--allowedTools mcp__promptloop` (or /permissions)."
        }
        (AgentCli::Codex, _) => "Codex CLI starts it in every session (`codex mcp list`).",
        (AgentCli::Gemini, _) => {
            "Gemini CLI starts it in trusted folders (`gemini mcp list`; `--skip-trust` for \
             one headless run); it asks before each tool call unless the entry has \
             \"trust\": true."
        }
    }
}

/// Runs `mcp uninstall`.
pub(super) fn uninstall(args: UninstallArgs) -> Result<u8, Failure> {
    let target = args.target.resolve()?;
    let path = real_path(&target.path);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "{} does not exist; promptloop is not registered there",
                path.display()
            );
            return Ok(0);
        }
        Err(e) => return Err(Failure::usage(format!("read {}: {e}", path.display()))),
    };
    let mut state = read_state();
    let key = path.display().to_string();
    let created = state.get(&key).cloned().unwrap_or_default();
    let edited = if is_toml(target.agent) {
        mcp_config::toml_uninstall(&text, SERVER_NAME)
    } else {
        mcp_config::json_uninstall(&text, SERVER_NAME, created.key)
    }
    .map_err(|e| edit_failure(&path, e))?;
    let Some(edited) = edited else {
        println!(
            "promptloop is not registered in {}; nothing changed",
            path.display()
        );
        return Ok(0);
    };
    if created.file && edited.empty {
        std::fs::remove_file(&path)
            .map_err(|e| Failure::usage(format!("remove {}: {e}", path.display())))?;
        if created.dir
            && let Some(dir) = path.parent()
        {
            // Only if nothing else was put there since.
            let _ = std::fs::remove_dir(dir);
        }
        println!(
            "removed {} (promptloop's install had created it)",
            path.display()
        );
    } else {
        write_atomic(&path, edited.text.as_bytes(), false)?;
        println!("removed promptloop's MCP server from {}", path.display());
    }
    if state.remove(&key).is_some() {
        write_state(&state)?;
    }
    Ok(0)
}
