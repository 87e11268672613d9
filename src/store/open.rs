//! Which store a project uses: its SQLite file (the default), or a team store on a
//! PostgreSQL server when `store.url` or `PROMPTLOOP_STORE_URL` names one.

use std::path::Path;
use std::process::Command;

use super::offline::{self, FallbackStore, OfflineStore};
use super::postgres::{PgStore, conninfo};
use super::{RuleStore, StoreError};
use crate::settings::StoreSettings;

/// The variable that names a team store (it overrides `store.url`).
pub const STORE_URL_ENV: &str = "PROMPTLOOP_STORE_URL";

/// The store a project is configured to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// `<project>/.promptloop/promptloop.db`.
    Sqlite,
    /// A PostgreSQL server, seen as project `project`.
    Postgres {
        /// The URL as given (it may hold a password: show it through `redacted`).
        url: String,
        /// The project key.
        project: String,
    },
}

impl StoreChoice {
    /// What is chosen for `project_dir`: `PROMPTLOOP_STORE_URL`, else `store.url`, else
    /// SQLite.
    pub fn of(
        project_dir: &Path,
        settings: &StoreSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> StoreChoice {
        let url = env(STORE_URL_ENV)
            .filter(|v| !v.trim().is_empty())
            .or_else(|| settings.url.clone());
        match url {
            Some(url) => StoreChoice::Postgres {
                url,
                project: project_key(project_dir, settings.project_id.as_deref()),
            },
            None => StoreChoice::Sqlite,
        }
    }

    /// A line for people: the file, or the server's URL with its password hidden.
    pub fn describe(&self, project_dir: &Path) -> String {
        match self {
            StoreChoice::Sqlite => super::project_db_path(project_dir).display().to_string(),
            StoreChoice::Postgres { url, project } => {
                format!("{} (project {project})", conninfo::redact(url))
            }
        }
    }
}

/// Whether a team store is set (`PROMPTLOOP_STORE_URL` or `store.url`).
pub fn team_store_set(settings: &StoreSettings, env: &dyn Fn(&str) -> Option<String>) -> bool {
    env(STORE_URL_ENV).is_some_and(|v| !v.trim().is_empty()) || settings.url.is_some()
}

/// Opens the store `project_dir` is configured to use.
pub fn open_for(
    project_dir: &Path,
    settings: &StoreSettings,
) -> Result<Box<dyn RuleStore>, StoreError> {
    let env = crate::settings::process_env;
    match StoreChoice::of(project_dir, settings, &env) {
        StoreChoice::Sqlite => Ok(Box::new(super::open_project(project_dir)?)),
        StoreChoice::Postgres { url, project } => match PgStore::connect(&url, &project, &env) {
            Ok(store) => {
                send_queue(project_dir, &store)?;
                Ok(Box::new(FallbackStore::new(store, project_dir)))
            }
            Err(StoreError::Unreachable(why)) => {
                let waiting = offline::pending(project_dir)?;
                eprintln!("{}", offline::offline_notice(&why, waiting));
                offline::note_offline(&why, waiting);
                Ok(Box::new(OfflineStore::open(project_dir)?))
            }
            Err(e) => Err(e),
        },
    }
}

/// Sends the lessons queued while the server was unreachable and the record kept offline
/// (failures, runs' events), and says so on stderr.
pub fn send_queue(project_dir: &Path, store: &PgStore) -> Result<offline::SyncReport, StoreError> {
    let done = offline::sync(project_dir, store)?;
    if done.sent + done.already > 0 {
        eprintln!(
            "promptloop: sent {} lesson(s) queued while the team store was unreachable to {}{}",
            done.sent,
            store.url(),
            if done.already > 0 {
                format!(" ({} it had already)", done.already)
            } else {
                String::new()
            }
        );
    }
    if done.failures + done.events > 0 {
        eprintln!(
            "promptloop: sent {} failure(s) and {} event(s) of {} run(s) recorded offline to {}",
            done.failures,
            done.events,
            done.runs,
            store.url()
        );
    }
    Ok(done)
}

/// The project's identity in a team store: `configured` when given, else the `origin`
/// remote's URL normalised (`git@github.com:Org/Repo.git` and
/// `https://user@github.com/Org/Repo` are both `github.com/Org/Repo`), else the work tree's
/// path (`path:/…`, shared by no other clone).
pub fn project_key(project_dir: &Path, configured: Option<&str>) -> String {
    if let Some(id) = configured.map(str::trim).filter(|s| !s.is_empty()) {
        return id.to_string();
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(project_dir)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    if let Some(url) = git(&["config", "--get", "remote.origin.url"]) {
        return normalise_remote(&url);
    }
    let root = git(&["rev-parse", "--show-toplevel"])
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| project_dir.to_path_buf());
    let root = root.canonicalize().unwrap_or(root);
    format!("path:{}", root.display())
}

/// A remote URL without scheme, credentials, port, `.git` and trailing slashes; the host
/// lowercased.
pub fn normalise_remote(url: &str) -> String {
    let url = url.trim();
    let (host_and_path, scheme) = match url.split_once("://") {
        Some((scheme, rest)) => (rest, Some(scheme.to_ascii_lowercase())),
        None => (url, None),
    };
    if scheme.as_deref() == Some("file") || (scheme.is_none() && url.starts_with('/')) {
        let path = host_and_path.trim_end_matches('/');
        return format!("file:{}", path.strip_suffix(".git").unwrap_or(path));
    }
    // Credentials go; scp-like `host:path` becomes `host/path`.
    let rest = host_and_path
        .rsplit_once('@')
        .map_or(host_and_path, |(_, r)| r);
    let (host, path) = match (scheme.is_some(), rest.find(['/', ':'])) {
        (_, None) => (rest, ""),
        (true, Some(i)) => {
            let (host, path) = rest.split_at(i);
            // `host:port/path`: the port goes.
            let path = match path.strip_prefix(':') {
                Some(p) => p.find('/').map_or("", |j| &p[j..]),
                None => path,
            };
            (host, path)
        }
        (false, Some(i)) => (&rest[..i], &rest[i + 1..]),
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{}/{}", host.to_ascii_lowercase(), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_of_one_repository_have_one_key() {
        for url in [
            "git@github.com:Org/Repo.git",
            "https://github.com/Org/Repo",
            "https://user:token@GitHub.com/Org/Repo.git/",
            "ssh://git@github.com:22/Org/Repo.git",
            "ssh://git@github.com/Org/Repo",
        ] {
            assert_eq!(normalise_remote(url), "github.com/Org/Repo", "{url}");
        }
        assert_eq!(normalise_remote("/srv/git/repo.git"), "file:/srv/git/repo");
        assert_eq!(
            normalise_remote("file:///srv/git/repo.git"),
            "file:/srv/git/repo"
        );
    }

    #[test]
    fn the_environment_overrides_the_config_and_a_configured_id_wins() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreSettings {
            url: Some("postgres://a@h/db".into()),
            project_id: Some("team/api".into()),
        };
        let none = |_: &str| None;
        assert_eq!(
            StoreChoice::of(dir.path(), &settings, &none),
            StoreChoice::Postgres {
                url: "postgres://a@h/db".into(),
                project: "team/api".into()
            }
        );
        let env = |k: &str| (k == STORE_URL_ENV).then(|| "postgres://b:pw@h/db".to_string());
        let choice = StoreChoice::of(dir.path(), &settings, &env);
        assert!(!choice.describe(dir.path()).contains("pw"));
        assert_eq!(
            StoreChoice::of(dir.path(), &StoreSettings::default(), &none),
            StoreChoice::Sqlite
        );
    }
}
