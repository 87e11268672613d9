//! The server's address as given (`store.url`, `PROMPTLOOP_STORE_URL`): parsed, its
//! password found (an environment reference in the URL, `PGPASSWORD`, or the `.pgpass` file
//! with libpq's rules) and never shown: every message names the URL through [`redact`].

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A URL with its password (if one is written in it) replaced by `***`. An environment
/// reference (`${NAME}`) is no secret and stays, so the message says where it is read from.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            return format!("{scheme}://{authority}{}", redact_query(tail));
        };
        let userinfo = match userinfo.split_once(':') {
            Some((user, pass)) if env_reference(pass).is_none() => format!("{user}:***"),
            _ => userinfo.to_string(),
        };
        return format!("{scheme}://{userinfo}@{host}{}", redact_query(tail));
    }
    // The key=value form: `host=db password=secret`.
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("password") => {
                if env_reference(value).is_some() {
                    pair.to_string()
                } else {
                    format!("{key}=***")
                }
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `?password=…` in a URL's query is a password too.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value))
                if key.eq_ignore_ascii_case("password") && env_reference(value).is_none() =>
            {
                format!("{key}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// `${NAME}` or `$NAME`: the name of an environment variable that holds the value.
fn env_reference(value: &str) -> Option<&str> {
    let name = value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .or_else(|| value.strip_prefix('$'))?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    valid.then_some(name)
}

/// Whether a URL is one for this store (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Why a URL cannot be used; the message names the URL redacted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConnInfoError(pub String);

/// Parses `url` into a driver config with the password resolved: an environment reference
/// written in the URL's password (`postgres://app:${PG_PASS}@db/rules`), else `PGPASSWORD`,
/// else the first matching line of `PGPASSFILE` or `~/.pgpass`.
pub fn config(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<postgres::Config, ConnInfoError> {
    let shown = redact(url);
    if !is_postgres_url(url) {
        return Err(ConnInfoError(format!(
            "store.url {shown}: expected a postgres:// or postgresql:// URL"
        )));
    }
    // The environment reference is taken out before parsing and put in afterwards, so
    // neither the parser nor its messages ever see the secret.
    let (plain, reference) = take_env_reference(url);
    let mut config = postgres::Config::from_str(&plain).map_err(|e| {
        // The driver's messages name no password; the URL is shown redacted.
        ConnInfoError(format!("store.url {shown}: {e}"))
    })?;
    if let Some(name) = reference {
        let value = env(&name).filter(|v| !v.is_empty()).ok_or_else(|| {
            ConnInfoError(format!(
                "store.url {shown}: the password variable {name} is not set"
            ))
        })?;
        config.password(value);
    }
    if config.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD").filter(|v| !v.is_empty()) {
            config.password(p);
        } else if let Some(p) = pgpass_password(&config, env) {
            config.password(p);
        }
    }
    if config.get_user().is_none()
        && let Some(user) = env("PGUSER").or_else(|| env("USER"))
    {
        config.user(&user);
    }
    Ok(config)
}

/// The URL with an environment reference in its password slot removed, and that
/// reference's variable name.
fn take_env_reference(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    match userinfo.split_once(':') {
        Some((user, pass)) => match env_reference(pass) {
            Some(name) => (
                format!("{scheme}://{user}@{host}{tail}"),
                Some(name.to_string()),
            ),
            None => (url.to_string(), None),
        },
        None => (url.to_string(), None),
    }
}

/// The `.pgpass` file libpq would read: `PGPASSFILE`, else `~/.pgpass`.
fn pgpass_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(file) = env("PGPASSFILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(file));
    }
    env("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| Path::new(&home).join(".pgpass"))
}

/// The password of the first `.pgpass` line matching the config's host, port, database and
/// user (`*` matches anything; `\:` and `\\` are escapes). Like libpq, a file that others
/// can read is ignored.
fn pgpass_password(
    config: &postgres::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let path = pgpass_path(env)?;
    let meta = std::fs::metadata(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "ignoring {}: it is readable by others (chmod 0600 it)",
                path.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => {
            let dir = p.display().to_string();
            // libpq matches a socket directory as `localhost` when it is the default one.
            if dir.is_empty() {
                "localhost".into()
            } else {
                dir
            }
        }
        None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| env("USER"));
    let user = user.unwrap_or_default();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    let wanted = [host.as_str(), port.as_str(), db.as_str(), user.as_str()];
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = fields[..4]
            .iter()
            .zip(wanted)
            .all(|(field, want)| field == "*" || field == want);
        if matches {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

/// Splits a `.pgpass` line on unescaped colons, undoing `\:` and `\\`.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(last) = fields.last_mut()
                {
                    last.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            other => {
                if let Some(last) = fields.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn passwords_are_redacted_in_every_form() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example:5432/rules?sslmode=require"),
            "postgres://app:***@db.example:5432/rules?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://app:${PG_PASS}@db/rules"),
            "postgresql://app:${PG_PASS}@db/rules"
        );
        assert_eq!(
            redact("postgres://db/rules?user=app&password=hunter2"),
            "postgres://db/rules?user=app&password=***"
        );
        assert_eq!(
            redact("host=db user=app password=hunter2"),
            "host=db user=app password=***"
        );
        assert_eq!(redact("postgres://app@db/rules"), "postgres://app@db/rules");
    }

    #[test]
    fn an_env_reference_is_resolved_and_a_missing_one_named() {
        let env = |k: &str| (k == "PG_PASS").then(|| "from-env".to_string());
        let c = config("postgres://app:${PG_PASS}@127.0.0.1:5999/rules", &env).unwrap();
        assert_eq!(c.get_password(), Some(&b"from-env"[..]));
        assert_eq!(c.get_user(), Some("app"));
        assert_eq!(c.get_dbname(), Some("rules"));
        let err = config("postgres://app:${PG_PASS}@127.0.0.1/rules", &no_env).unwrap_err();
        assert!(err.0.contains("PG_PASS is not set"), "{err}");
        let err = config("mysql://app:pw@h/db", &no_env).unwrap_err();
        assert!(!err.0.contains("pw@"), "{err}");
    }

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:app:wrong\n127.0.0.1:5999:rules:app:pa\\:ss:word\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = file.display().to_string();
        let env = move |k: &str| (k == "PGPASSFILE").then(|| path.clone());
        let c = config("postgres://app@127.0.0.1:5999/rules", &env).unwrap();
        assert_eq!(c.get_password(), Some(&b"pa:ss:word"[..]));
        // Readable by others: ignored, as libpq does.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = config("postgres://app@127.0.0.1:5999/rules", &env).unwrap();
        assert_eq!(c.get_password(), None);
    }
}
