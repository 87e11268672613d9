//! Removing secrets from text before it leaves the machine. Every teacher payload goes
//! through [`Redactor::redact`]; each secret becomes a marker that says what was removed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::{Captures, Regex};

/// Text with its secrets replaced, and what was replaced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redacted {
    /// The text, safe to send.
    pub text: String,
    /// How many secrets of each kind were removed.
    pub removed: BTreeMap<&'static str, usize>,
}

impl Redacted {
    /// Secrets removed in all.
    pub fn count(&self) -> usize {
        self.removed.values().sum()
    }
}

struct Pattern {
    kind: &'static str,
    regex: Regex,
}

/// The built-in secret patterns.
pub struct Redactor {
    patterns: Vec<Pattern>,
    assignment: Regex,
    url_credentials: Regex,
}

/// Names that mark an assignment's value as secret.
const SECRET_NAME: &str = r"(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?secret|auth[_-]?key|credentials?|bearer)";

impl Redactor {
    /// The shared instance (the patterns compile once).
    pub fn get() -> &'static Redactor {
        static REDACTOR: OnceLock<Redactor> = OnceLock::new();
        REDACTOR.get_or_init(Redactor::build)
    }

    fn build() -> Redactor {
        // Specific token shapes first: their markers say which provider.
        let specs: &[(&'static str, &str)] = &[
            (
                "private-key",
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            ),
            ("anthropic-key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
            (
                "openai-key",
                r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
            ),
            (
                "aws-access-key-id",
                r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
            ),
            (
                "github-token",
                r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
            ),
            ("gitlab-token", r"\bgl(?:pat|dt|ptt|rt)-[A-Za-z0-9_\-]{20,}"),
            ("slack-token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
            (
                "slack-webhook",
                r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",
            ),
            ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}"),
            ("stripe-key", r"\b(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{16,}"),
            (
                "jwt",
                r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
            ),
            ("bearer-token", r"(?i)\bbearer\s+[A-Za-z0-9_\-.=]{16,}"),
        ];
        let patterns = specs
            .iter()
            .filter_map(|(kind, re)| Regex::new(re).ok().map(|regex| Pattern { kind, regex }))
            .collect();
        let assignment = format!(
            r#"(?im)(?P<name>\b[A-Za-z0-9_.\-]*{SECRET_NAME}[A-Za-z0-9_.\-]*["']?)(?P<sep>\s*(?::|=|:=|=>)\s*)(?:"(?P<dq>[^"\n]{{1,300}})"|'(?P<sq>[^'\n]{{1,300}})'|(?P<bare>[^\s"'`,;]+))"#
        );
        Redactor {
            patterns,
            // A pattern that fails to compile would be a bug caught by the tests below.
            assignment: Regex::new(&assignment).unwrap_or_else(|_| never()),
            url_credentials: Regex::new(
                r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^/\s:@]+):(?P<pass>[^/\s@]+)@",
            )
            .unwrap_or_else(|_| never()),
        }
    }

    /// Replaces every secret found in `text` with a marker.
    pub fn redact(&self, text: &str) -> Redacted {
        let mut removed: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut text = text.to_string();
        for p in &self.patterns {
            let mut n = 0;
            let replaced = p
                .regex
                .replace_all(&text, |_: &Captures| {
                    n += 1;
                    format!("[REDACTED {}]", p.kind)
                })
                .into_owned();
            if n > 0 {
                *removed.entry(p.kind).or_default() += n;
                text = replaced;
            }
        }
        let mut n = 0;
        text = self
            .url_credentials
            .replace_all(&text, |c: &Captures| {
                n += 1;
                format!("{}{}:[REDACTED password]@", &c["scheme"], &c["user"])
            })
            .into_owned();
        if n > 0 {
            *removed.entry("url-password").or_default() += n;
        }
        let mut n = 0;
        text = self
            .assignment
            .replace_all(&text, |c: &Captures| {
                let (value, quote) = match (c.name("dq"), c.name("sq"), c.name("bare")) {
                    (Some(v), _, _) => (v.as_str(), "\""),
                    (_, Some(v), _) => (v.as_str(), "'"),
                    (_, _, Some(v)) => (v.as_str(), ""),
                    _ => ("", ""),
                };
                if looks_secret(value, !quote.is_empty()) {
                    n += 1;
                    format!("{}{}{quote}[REDACTED secret]{quote}", &c["name"], &c["sep"])
                } else {
                    c[0].to_string()
                }
            })
            .into_owned();
        if n > 0 {
            *removed.entry("secret-assignment").or_default() += n;
        }
        Redacted { text, removed }
    }
}

/// Whether a value assigned to a secret-looking name is a literal secret rather than code
/// (`token = get_token()`, `password: ${DB_PASSWORD}`, `api_key=None`).
fn looks_secret(value: &str, quoted: bool) -> bool {
    if value.starts_with("[REDACTED") || value.len() < 4 {
        return false;
    }
    let code_like = value.contains('(')
        || value.contains(')')
        || value.starts_with('$')
        || value.starts_with('{')
        || value.starts_with('<')
        || value.starts_with("os.")
        || value.starts_with("process.env")
        || value.starts_with("env.")
        || value.starts_with("self.")
        || value.starts_with("settings.")
        || value.starts_with("config.");
    if code_like {
        return false;
    }
    let lower = value.to_ascii_lowercase();
    if [
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "string",
        "str",
    ]
    .contains(&lower.as_str())
    {
        return false;
    }
    if quoted {
        return true;
    }
    // Unquoted: a plain identifier (`token = user_token`) is code; a literal has digits or
    // symbols mixed in, or is long.
    let identifier = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    let has_digit = value.chars().any(|c| c.is_ascii_digit());
    !identifier || (has_digit && value.len() >= 8) || value.len() >= 24
}

fn never() -> Regex {
    // Matches nothing: used only if a built-in pattern failed to compile.
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("constant pattern compiles"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Redacted {
        Redactor::get().redact(s)
    }

    #[test]
    fn provider_tokens_are_removed_with_their_kind() {
        let secrets = [
            (
                "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
                "anthropic-key",
            ),
            ("sk-proj-abcdefghijklmnopqrstuvwxyz0123", "openai-key"),
            ("AKIAIOSFODNN7EXAMPLE", "aws-access-key-id"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github-token"),
            ("glpat-abcdefghijklmnopqrst", "gitlab-token"),
            ("xoxb-1234567890-abcdefghij", "slack-token"),
            ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "google-api-key"),
            ("sk_live_abcdefghijklmnop1234", "stripe-key"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "jwt",
            ),
        ];
        for (secret, kind) in secrets {
            let out = r(&format!("log line: using {secret} now"));
            assert!(!out.text.contains(secret), "{kind} leaked: {}", out.text);
            assert_eq!(out.removed.get(kind), Some(&1), "{kind}: {:?}", out.removed);
        }
    }

    #[test]
    fn pem_blocks_and_url_passwords_and_assignments() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\n\
                    DATABASE_URL=postgres://app:hunter2secret@db:5432/app\n\
                    password = \"correct horse\"\nDB_PASSWORD=s3cr3tValue99\n";
        let out = r(text);
        assert!(!out.text.contains("MIIEpAIBAAKCAQEA"));
        assert!(!out.text.contains("hunter2secret"));
        assert!(
            out.text
                .contains("postgres://app:[REDACTED password]@db:5432/app")
        );
        assert!(!out.text.contains("horse"), "{}", out.text);
        assert!(out.text.contains("password = \"[REDACTED secret]\""));
        assert!(!out.text.contains("s3cr3tValue99"));
    }

    #[test]
    fn ordinary_code_stays_readable() {
        let code = "def refresh(token):\n    token = get_token(user)\n    password = form.password\n    api_key = os.environ[\"API_KEY\"]\n    secret_santa = None\n    return safe_divide(a, b)\n";
        let out = r(code);
        assert_eq!(out.text, code, "{:?}", out.removed);
        assert_eq!(out.count(), 0);
    }
}
