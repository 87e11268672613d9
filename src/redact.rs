//! Removing secrets from text before it leaves the machine. Every teacher payload goes
//! through [`Redactor::redact`]; each secret becomes a marker that says what was removed
//! (`[REDACTED openai-key]`), so the teacher still sees that a key was there.
//!
//! Three kinds of evidence, strongest first:
//! 1. the shape of a provider's token (`sk-ant-…`, `AKIA…`, `ghp_…`, PEM blocks, JWTs);
//! 2. where a value sits: a URL's password, an `Authorization` header, a `--password` flag,
//!    an `.env` line or a config key whose name says secret (`DB_PASSWORD=…`,
//!    `client_secret: …`), a connection string's `Password=…;`;
//! 3. for names that only might be secret (`key`, `auth`, `session`), a value that looks
//!    random (long, mixed, high entropy).
//!
//! Code stays readable: `token = get_token()`, `password: ${DB_PASSWORD}`,
//! `api_key = os.environ["API_KEY"]` and `password: str` are left alone.
//! docs/teachers.md has the false-positive figures on ordinary source.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::{Captures, Regex};

use crate::failure::FailureContext;

/// Text with its secrets replaced, and what was replaced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redacted {
    /// The text, safe to send.
    pub text: String,
    /// How many secrets of each kind were removed.
    pub removed: BTreeMap<String, usize>,
}

impl Redacted {
    /// Secrets removed in all.
    pub fn count(&self) -> usize {
        self.removed.values().sum()
    }

    /// `3 secrets (2 openai-key, 1 url-password)`, or `no secrets`.
    pub fn summary(&self) -> String {
        match self.count() {
            0 => "no secrets".to_string(),
            n => format!(
                "{n} secret{} ({})",
                if n == 1 { "" } else { "s" },
                self.removed
                    .iter()
                    .map(|(kind, n)| format!("{n} {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn add(&mut self, other: &BTreeMap<String, usize>) {
        for (kind, n) in other {
            *self.removed.entry(kind.clone()).or_default() += n;
        }
    }
}

/// How a match is judged before it is replaced.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Check {
    /// The shape alone is proof (provider tokens, PEM blocks).
    Always,
    /// A literal, not code or a placeholder (`looks_secret`).
    Literal,
    /// Whatever stands there is the value (`.env` lines, `-u user:pass`), unless it is a
    /// variable, a template or a placeholder.
    Value,
    /// Random-looking: long, mixed, high entropy.
    Random,
}

struct Rule {
    kind: String,
    regex: Regex,
    /// The group that holds the secret; the whole match when absent.
    group: Option<&'static str>,
    check: Check,
}

/// An extra pattern from the config that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("redaction.patterns[{index}]: {message}")]
pub struct PatternError {
    /// Its place in the list.
    pub index: usize,
    /// The regex engine's message.
    pub message: String,
}

/// The secret patterns: built-in, plus the user's `redaction.patterns`.
pub struct Redactor {
    rules: Vec<Rule>,
}

/// Names whose literal value is a secret.
const SECRET_NAME: &str = r"(?:passwor[dt]|passwd|pwd|passphrase|passcode|pass|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?secret|auth[_-]?key|credentials?|bearer|signing[_-]?key|encryption[_-]?key|master[_-]?key|account[_-]?key|sas[_-]?key|session[_-]?key|dsn)";

/// Names whose value is a secret only when it looks random.
const MAYBE_SECRET_NAME: &str = r"(?:key|auth|cookie|session|sig|signature|salt|seed|license|hmac)";

/// Built-in rules: (kind, regex, secret group, check). Order matters: specific shapes first,
/// so their markers say which provider.
const BUILTIN: &[(&str, &str, Option<&str>, Check)] = &[
    (
        "private-key",
        // The body must read as a key (base64 lines, `Proc-Type:` headers, quotes, `\n`
        // escapes, diff `+`), so a sentence that mentions the marker is not swallowed;
        // a key cut short still goes, up to the end of the text.
        r#"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=]{16,}|[A-Za-z0-9+/=]{1,15}(?:["',]|\\[nr]|\r?\n|\z)|\s|["',+]|\\[nr]|(?m:^)[ \t+]*[A-Za-z][A-Za-z-]*:[^\n]*)*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)"#,
        None,
        Check::Always,
    ),
    (
        "anthropic-key",
        r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
        None,
        Check::Always,
    ),
    (
        "openai-key",
        r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
        None,
        Check::Always,
    ),
    (
        "aws-access-key-id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b",
        None,
        Check::Always,
    ),
    (
        "github-token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        None,
        Check::Always,
    ),
    (
        "gitlab-token",
        r"\bgl(?:pat|dt|ptt|rt|cbt|oas|soat|ft|imt|agent)-[A-Za-z0-9_\-]{20,}",
        None,
        Check::Always,
    ),
    (
        "slack-token",
        r"\b(?:xox[abposre]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,})",
        None,
        Check::Always,
    ),
    (
        "slack-webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
        None,
        Check::Always,
    ),
    (
        "google-api-key",
        r"\bAIza[0-9A-Za-z_\-]{35}",
        None,
        Check::Always,
    ),
    (
        "google-oauth",
        r"\b(?:GOCSPX-[A-Za-z0-9_\-]{20,}|ya29\.[A-Za-z0-9_\-]{20,}|1//0[A-Za-z0-9_\-]{30,})",
        None,
        Check::Always,
    ),
    (
        "stripe-key",
        r"\b(?:(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{16,}|whsec_[A-Za-z0-9]{24,})",
        None,
        Check::Always,
    ),
    (
        "package-registry-token",
        r"\b(?:npm_[A-Za-z0-9]{36}|pypi-AgE[A-Za-z0-9_\-]{40,}|dckr_pat_[A-Za-z0-9_\-]{20,})",
        None,
        Check::Always,
    ),
    (
        "sendgrid-key",
        r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{20,}",
        None,
        Check::Always,
    ),
    (
        "huggingface-token",
        r"\bhf_[A-Za-z0-9]{30,}",
        None,
        Check::Always,
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        None,
        Check::Always,
    ),
    // `scheme://user:password@host`, the user kept; also `redis://:password@host`.
    (
        "url-password",
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:(?P<secret>[^/\s@]+)@",
        Some("secret"),
        Check::Value,
    ),
    // Sentry DSNs carry their key as the URL's user.
    (
        "sentry-dsn",
        r"https?://(?P<secret>[0-9a-f]{32})(?::[0-9a-f]{32})?@[A-Za-z0-9.\-]*sentry",
        Some("secret"),
        Check::Always,
    ),
    (
        "bearer-token",
        r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9_\-.=~+/]{16,})",
        Some("secret"),
        Check::Always,
    ),
    (
        "basic-auth",
        r"(?i)\bbasic\s+(?P<secret>(?-i:[A-Za-z0-9+/]*[0-9+/][A-Za-z0-9+/]*)={0,2})",
        Some("secret"),
        Check::Random,
    ),
    // `Authorization: token …`, `X-API-Key: …`, `PRIVATE-TOKEN: …` headers.
    (
        "auth-header",
        r#"(?i)\b(?:authorization|proxy-authorization|x-api-key|api-key|x-auth-token|private-token|x-access-token|x-goog-api-key)["']?[ \t]*[:=][ \t]*["']?(?:token[ \t]+)?(?P<secret>[^\s"',;}]{8,})"#,
        Some("secret"),
        Check::Literal,
    ),
    // Connection strings: `Password=…;`, `AccountKey=…;`.
    (
        "connection-string",
        r"(?i)(?:^|;|[\x22'])[ \t]*(?:password|pwd|accountkey|sharedaccesskey|sharedaccesssignature|sig)=(?P<secret>[^;\x22'\s]+)(?:;|[\x22']|$)",
        Some("secret"),
        Check::Value,
    ),
    // Command-line secrets: `--password X`, `--db-password=X`, `--token=X`, `-p X` after
    // `-u USER`, `mysql -pX`, `sshpass -p X`, `redis-cli -a X`, `curl -u user:pass`,
    // `aws configure set aws_secret_access_key X`.
    (
        "command-line-secret",
        r"(?i)(?:^|\s)(?P<flag>--?(?:[a-z0-9]+-)*(?:password|passwd|pass|token|api-?key|apikey|secret|(?:secret|access|private|auth|signing|encryption|master)-key))(?:=|\s+)(?P<secret>[^\s'\x22]+)",
        Some("secret"),
        Check::Value,
    ),
    (
        "command-line-secret",
        r"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|mariadb|mariadb-dump)\b[^\n|;&]*?[ \t]-p(?P<secret>[^\s'\x22-][^\s'\x22]*)",
        Some("secret"),
        Check::Value,
    ),
    (
        "command-line-secret",
        r"\b(?:sshpass[ \t]+-p|redis-cli\b[^\n|;&]*?[ \t]-a)[ \t]*['\x22]?(?P<secret>[^\s'\x22]+)",
        Some("secret"),
        Check::Value,
    ),
    (
        "command-line-secret",
        r"[ \t]-u[ \t]*['\x22]?[^\s:'\x22]+(?:[ \t]+\S+)*?[ \t]-p[ \t]?['\x22]?(?P<secret>[^\s'\x22]+)",
        Some("secret"),
        Check::Value,
    ),
    (
        "command-line-secret",
        r"(?:\s-u|--user)\s*['\x22]?[^\s:'\x22/]+:(?P<secret>[^\s'\x22@]+)",
        Some("secret"),
        Check::Value,
    ),
    // A long random string a few words after "key", "token", "secret" (prose, comments).
    (
        "random-secret",
        r"(?i)\b(?:key|token|secret|password|passphrase|credential)s?\b[^\n.;]{0,40}?\b(?P<secret>[A-Za-z0-9+/_\-]{32,}={0,2})",
        Some("secret"),
        Check::Random,
    ),
    (
        "command-line-secret",
        r"(?i)\bconfigure\s+set\s+\S*(?:secret|token|password)\S*\s+(?P<secret>\S+)",
        Some("secret"),
        Check::Value,
    ),
];

impl Redactor {
    /// The shared instance with the built-in patterns only.
    pub fn get() -> &'static Redactor {
        static REDACTOR: OnceLock<Redactor> = OnceLock::new();
        REDACTOR.get_or_init(|| Redactor::build(&[]).unwrap_or_else(|_| Redactor { rules: vec![] }))
    }

    /// The built-in patterns plus `extra` (`redaction.patterns`): a match is removed whole,
    /// or only its group named `secret` when it has one.
    pub fn with_patterns(extra: &[String]) -> Result<Redactor, PatternError> {
        Redactor::build(extra)
    }

    fn build(extra: &[String]) -> Result<Redactor, PatternError> {
        let mut rules = Vec::new();
        for (kind, re, group, check) in BUILTIN {
            // A built-in pattern that does not compile is a bug the tests below catch.
            if let Ok(regex) = Regex::new(re) {
                rules.push(Rule {
                    kind: kind.to_string(),
                    regex,
                    group: *group,
                    check: *check,
                });
            }
        }
        let generated = [
            // `.env` lines and shell/Dockerfile assignments: `DB_PASSWORD=hunter2` (also as a
    // diff's `+`/`-` line).
            (
                "env-secret",
                format!(
                    r#"(?m)^[+-]?[ \t]*(?:-[ \t]+|export[ \t]+|ENV[ \t]+|ARG[ \t]+|set[ \t]+)?["']?(?P<name>(?:[A-Z_][A-Z0-9_]*)?{upper}[A-Z0-9_]*|[A-Z][A-Z0-9_]*_KEY)=(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"'#]*))"#,
                    upper = SECRET_NAME.to_uppercase()
                ),
                Check::Value,
            ),
            // An assignment in front of a command, or inside a line: `PGPASSWORD=x psql`,
            // `docker run -e POSTGRES_PASSWORD=x`, `cd app && API_TOKEN=x make deploy`.
            (
                "env-secret",
                format!(
                    r#"(?:^|[ \t;&|"'])(?P<name>(?:[A-Z][A-Z0-9_]*)?{upper}[A-Z0-9_]*)=(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"'#;&|)]+))"#,
                    upper = SECRET_NAME.to_uppercase()
                ),
                Check::Value,
            ),
            // Config files: a whole line `name: value` (YAML, TOML with `=`, INI).
            (
                "config-secret",
                format!(
                    r#"(?im)^[+-]?[ \t]*(?:-[ \t]+)?["']?(?P<name>[A-Za-z0-9_.\-]*{SECRET_NAME}[A-Za-z0-9_.\-]*)["']?[ \t]*(?P<sep>[:=])[ \t]+(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"'#,;{{}}\[\]]+))[ \t]*(?:#.*)?$"#
                ),
                Check::Literal,
            ),
            // Assignments and key/value pairs inside code and JSON.
            (
                "secret-assignment",
                format!(
                    r#"(?i)(?P<name>\b[A-Za-z0-9_.\-]*{SECRET_NAME}[A-Za-z0-9_.\-]*)["']?(?:[ \t]*(?::|=|:=|=>)[ \t]*)(?:"(?P<dq>[^"\n]{{1,300}})"|'(?P<sq>[^'\n]{{1,300}})'|`(?P<bq>[^`\n]{{1,300}})`|(?P<bare>[^\s"'`,;)}}\]]+))"#
                ),
                Check::Literal,
            ),
            // Query strings: `?api_key=…&`.
            (
                "url-query-secret",
                format!(
                    r#"(?i)[?&](?P<name>[A-Za-z0-9_\-]*(?:{SECRET_NAME}|key|sig|signature|auth)[A-Za-z0-9_\-]*)=(?P<bare>[^&\s#"']+)"#
                ),
                Check::Literal,
            ),
            // In prose: "the password is Tr0ub4dor&3".
            (
                "secret-in-text",
                r#"(?i)\b(?P<name>password|passphrase|passcode|api key|secret key|token)\s+(?:is|was|=|:)\s+[`'"]?(?P<bare>[^\s`'"]{6,}?)[`'"]?(?:[\s,;:)]|\.(?:\s|$)|$)"#.to_string(),
                Check::Literal,
            ),
            // Names that only might be secret: the value must look random.
            (
                "random-secret",
                format!(
                    r#"(?i)(?P<name>\b[A-Za-z0-9_.\-]*{MAYBE_SECRET_NAME}[A-Za-z0-9_.\-]*)["']?[ \t]*(?::|=)[ \t]*(?:"(?P<dq>[^"\n]{{1,300}})"|'(?P<sq>[^'\n]{{1,300}})'|(?P<bare>[^\s"'`,;)}}\]]+))"#
                ),
                Check::Random,
            ),
        ];
        for (kind, re, check) in generated {
            if let Ok(regex) = Regex::new(&re) {
                rules.push(Rule {
                    kind: kind.to_string(),
                    regex,
                    group: None,
                    check,
                });
            }
        }
        for (index, re) in extra.iter().enumerate() {
            let regex = Regex::new(re).map_err(|e| PatternError {
                index,
                message: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            })?;
            rules.push(Rule {
                kind: "custom".to_string(),
                group: regex
                    .capture_names()
                    .any(|n| n == Some("secret"))
                    .then_some("secret"),
                regex,
                check: Check::Always,
            });
        }
        Ok(Redactor { rules })
    }

    /// Replaces every secret found in `text` with a marker.
    pub fn redact(&self, text: &str) -> Redacted {
        let mut removed: BTreeMap<String, usize> = BTreeMap::new();
        let mut text = text.to_string();
        for rule in &self.rules {
            let mut n = 0;
            let hay = text.as_str();
            let replaced = rule
                .regex
                .replace_all(hay, |c: &Captures| {
                    let whole = c.get(0).map_or("", |m| m.as_str());
                    match replace(rule, c, hay) {
                        Some(out) => {
                            n += 1;
                            out
                        }
                        None => whole.to_string(),
                    }
                })
                .into_owned();
            if n > 0 {
                *removed.entry(rule.kind.clone()).or_default() += n;
                text = replaced;
            }
        }
        Redacted { text, removed }
    }

    /// The failure with every text field redacted (before any of it is compacted, so a
    /// secret cannot be cut in two and escape its pattern), and what was removed.
    pub fn redact_failure(&self, failure: &FailureContext) -> (FailureContext, Redacted) {
        let mut total = Redacted::default();
        let mut clean = |s: &str| {
            let r = self.redact(s);
            total.add(&r.removed);
            r.text
        };
        let mut f = failure.clone();
        f.task = clean(&f.task);
        f.diff = clean(&f.diff);
        f.test_summary = clean(&f.test_summary);
        f.test_command = f.test_command.as_deref().map(&mut clean);
        f.agent_message = f.agent_message.as_deref().map(&mut clean);
        f.description = f.description.as_deref().map(&mut clean);
        f.context = f.context.as_deref().map(&mut clean);
        f.failing_ids = f.failing_ids.iter().map(|s| clean(s)).collect();
        for t in &mut f.tests {
            t.id = clean(&t.id);
            t.message = clean(&t.message);
            t.evidence = clean(&t.evidence);
            t.captured_output = t.captured_output.as_deref().map(&mut clean);
        }
        (f, total)
    }
}

/// The replacement for one match, or `None` to keep it.
fn replace(rule: &Rule, c: &Captures, hay: &str) -> Option<String> {
    let whole = c.get(0)?;
    if let Some(name) = c.name("name")
        && !name_says_secret(
            name.as_str(),
            name.start(),
            hay,
            rule.check == Check::Random,
            rule.kind == "env-secret",
        )
    {
        return None;
    }
    // `--no-password x` is a switch followed by an argument.
    if let Some(flag) = c.name("flag")
        && flag.as_str().trim_start_matches('-').starts_with("no-")
    {
        return None;
    }
    // `connect(host, PASSWORD=pw)`: a keyword argument in code, not an environment.
    if rule.kind == "env-secret"
        && let Some(name) = c.name("name")
        && hay[..name.start()]
            .trim_end_matches([' ', '\t'])
            .ends_with([',', '('])
    {
        return None;
    }
    let marker = format!("[REDACTED {}]", rule.kind);
    // The secret: a named group of the rule, or the value of a `name = value` rule.
    let value = match rule.group {
        Some(group) => c.name(group),
        None => ["dq", "sq", "bq", "bare"].iter().find_map(|g| c.name(g)),
    };
    // A sentence naming the markers (`between '-----BEGIN … KEY-----' and '-----END …'`)
    // holds no key material.
    if rule.kind == "private-key" && !key_material(whole.as_str()) {
        return None;
    }
    let Some(value) = value else {
        // AWS and others publish example keys that say so (`AKIAIOSFODNN7EXAMPLE`).
        let example = whole.as_str().to_ascii_lowercase().contains("example");
        return (rule.check == Check::Always && !example).then_some(marker);
    };
    let quoted = ["dq", "sq", "bq"].iter().any(|g| c.name(g).is_some());
    let name = c.name("name").map_or("", |m| m.as_str());
    let secret = match rule.check {
        Check::Always => !value.as_str().starts_with("[REDACTED"),
        Check::Literal => {
            let equals = c.name("sep").is_some_and(|m| m.as_str() == "=");
            !name_is_metadata(name)
                && looks_secret(value.as_str(), quoted, &rule.kind, equals, name)
        }
        Check::Value => {
            // `--password options` in prose: a flag followed by a word, not by a value.
            let spaced_word = rule.kind == "command-line-secret"
                && whole.as_str().contains(&format!(" {}", value.as_str()))
                && value.as_str().chars().all(|ch| ch.is_ascii_lowercase());
            !name_is_metadata(name) && !placeholder(value.as_str()) && !spaced_word
        }
        // A random `*_key_id` (Google's `private_key_id`) goes too: ids of keys are cheap to
        // drop and sometimes secret.
        Check::Random => {
            let key_id = name
                .to_ascii_lowercase()
                .trim_end_matches(['"', '\''])
                .ends_with("key_id");
            (key_id || !name_is_metadata(name)) && looks_random(value.as_str())
        }
    };
    if !secret {
        return None;
    }
    let start = value.start() - whole.start();
    let end = value.end() - whole.start();
    let text = whole.as_str();
    Some(format!("{}{marker}{}", &text[..start], &text[end..]))
}

/// Whether a name really names a secret: its last part (`config.password`, not
/// `Token.PromptNum`) has a secret word, and it is not one step of a path
/// (`AWS::IAM::AccessKey`, `secretsmanager:GetSecretValue`).
fn name_says_secret(name: &str, start: usize, hay: &str, maybe: bool, env: bool) -> bool {
    static WORDS: OnceLock<(Option<Regex>, Option<Regex>)> = OnceLock::new();
    let (secret, maybe_secret) = WORDS.get_or_init(|| {
        (
            Regex::new(&format!("(?i){SECRET_NAME}|api key|secret key")).ok(),
            Regex::new(&format!("(?i){MAYBE_SECRET_NAME}")).ok(),
        )
    });
    let word = if maybe { maybe_secret } else { secret };
    let bare = name.trim_matches(|c| c == '"' || c == '\'');
    let last = bare.rsplit('.').next().unwrap_or(bare);
    if word.as_ref().is_some_and(|w| !w.is_match(last)) {
        return false;
    }
    // `pass` says password only as the name's last word (`DB_PASS`, `smtpPass`), not in
    // `bypass`, `passes`, `PASS_THROUGH` or `compass`.
    if !maybe
        && let Some(w) = secret
        && w.find_iter(last)
            .all(|m| m.as_str().eq_ignore_ascii_case("pass"))
        && name_words(last).last().map(String::as_str) != Some("pass")
    {
        return false;
    }
    let before = hay[..start].chars().next_back();
    let after = &hay[start + name.len()..];
    // Inside a string the name must close it before the separator (`"token": …`), or it
    // is text (`"secretsmanager:ResourceTag/…"`); an environment assignment may fill the
    // whole string (`-e "POSTGRES_PASSWORD=x"`).
    if let Some(q @ ('"' | '\'')) = before
        && !env
        && !after.starts_with(q)
    {
        return false;
    }
    !(matches!(before, Some(':' | '/')) || after.trim_start_matches(['"', '\'']).starts_with("::"))
}

/// The words of a name, lowercased, trailing digits dropped: `DB_PASS` → `db pass`,
/// `clientSecret2` → `client secret`, `x-api-key` → `x api key`.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        let split = !c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && prev_lower);
        if split && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        if c.is_ascii_alphanumeric() {
            current.push(c.to_ascii_lowercase());
        }
    }
    words.push(current);
    words
        .into_iter()
        .map(|w| w.trim_end_matches(|c: char| c.is_ascii_digit()).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// A name that says outright what its value is: its last word is a password, a secret, a
/// token or a kind of key (`DB_PASS`, `passwd`, `client_secret`, `GITHUB_TOKEN`, `apiKey`,
/// `SECRET_KEY`). A literal assigned to it is a secret whatever its length or entropy.
fn names_a_secret(name: &str) -> bool {
    let bare = name.trim_matches(|c| c == '"' || c == '\'');
    let last = bare.rsplit('.').next().unwrap_or(bare);
    let words = name_words(last);
    match words.as_slice() {
        [.., w]
            if matches!(
                w.as_str(),
                "password"
                    | "passwd"
                    | "pass"
                    | "pwd"
                    | "passphrase"
                    | "passcode"
                    | "secret"
                    | "token"
                    | "apikey"
            ) =>
        {
            true
        }
        [.., kind, w] if w == "key" => matches!(
            kind.as_str(),
            "api"
                | "secret"
                | "private"
                | "access"
                | "auth"
                | "signing"
                | "encryption"
                | "master"
                | "account"
                | "client"
        ),
        _ => false,
    }
}

/// Names that hold something about a secret rather than the secret: `TOKEN_URL`,
/// `password_field`, `api_key_env`, `SECRET_KEY_PATH`.
fn name_is_metadata(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "url",
        "uri",
        "path",
        "file",
        "dir",
        "type",
        "name",
        "id",
        "endpoint",
        "header",
        "prefix",
        "field",
        "len",
        "length",
        "size",
        "env",
        "var",
        "pattern",
        "regex",
        "re",
        "count",
        "format",
        "mode",
        "expires",
        "expiry",
        "ttl",
        "timeout",
        "method",
        "kind",
        "label",
        "class",
        "cls",
        "help",
        "prompt",
        "hint",
        "policy",
        "rotation",
        "required",
        "enabled",
        "error",
        "errors",
        "message",
        "msg",
        "description",
        "desc",
        "limit",
        "host",
        "port",
        "user",
        "username",
        "at",
        "in",
        "location",
        "ref",
        "arn",
        "version",
        "store",
        "manager",
        "provider",
        "backend",
        "service",
        "template",
        "placeholder",
        "example",
        "tokens",
        "budget",
        "seconds",
        "secs",
        "ms",
        "minutes",
        "hours",
        "days",
        "duration",
        "selection",
        "expression",
        "arn",
        "arns",
        "names",
        "ids",
        "types",
        "keys",
        "chars",
        "alphabet",
        "charset",
        "window",
        "refresh",
    ];
    let name = name.trim_matches(|c| c == '"' || c == '\'');
    // The last word, also of camelCase names (`imagePullCredentialsType` → `type`).
    let camel_last = name
        .rfind(|c: char| c.is_ascii_uppercase())
        .filter(|&i| i > 0 && name[..i].chars().any(|c| c.is_ascii_lowercase()))
        .map(|i| name[i..].to_ascii_lowercase());
    let lower = name.to_ascii_lowercase();
    let last = camel_last.unwrap_or_else(|| {
        lower
            .rsplit(['_', '-', '.'])
            .next()
            .unwrap_or("")
            .to_string()
    });
    let last = last.as_str();
    // `AWS_ACCESS_KEY_ID` and `SECRET_NAME` are names of things, not the things.
    lower != last && SUFFIXES.contains(&last)
        || lower.starts_with("max_")
        || lower.starts_with("min_")
        || lower.starts_with("num_")
        || lower.starts_with("is_")
        || lower.starts_with("has_")
        || lower.starts_with("no_")
}

/// Whether a value assigned to a secret-looking name is a literal secret rather than code
/// (`token = get_token()`, `password: ${DB_PASSWORD}`, `api_key=None`) or a placeholder.
fn looks_secret(value: &str, quoted: bool, kind: &str, equals: bool, name_hint: &str) -> bool {
    let value = value.trim();
    if placeholder(value) {
        return false;
    }
    // Unquoted, it is code unless it looks like a literal: calls, attribute paths,
    // generics and indexing (`Optional[str]`, `Vec<u8>`, `args[1]`), YAML anchors and
    // block scalars are not values.
    let code_like = value.contains('(')
        || value.contains(')')
        || value.contains('[')
        || value.contains('<')
        || value.trim_end_matches('=').contains('=')
        || value.starts_with(':')
        || value.starts_with('{')
        || value.starts_with('*')
        || value.starts_with('&')
        || value.starts_with('!')
        || value.starts_with('|')
        || value.starts_with('>')
        || dotted_name(value);
    if !quoted && code_like {
        return false;
    }
    // `DB_PASS`, `client_secret`, `GITHUB_TOKEN`: the name says what the value is.
    let named = names_a_secret(name_hint);
    // YAML values are literals: any non-placeholder value is the secret (a short number is
    // a count, `max_tokens: 1024`). `key = value` in INI looks like code, so it is judged
    // like code below.
    if kind == "config-secret" && !equals && !quoted {
        if named {
            // `db_pass: x7kQ2pz`, `token: abc`, `password: 1234`.
            return named_value_is_secret(value, name_hint);
        }
        let short_number = value.len() < 16 && value.chars().all(|c| c.is_ascii_digit());
        // `pseudo_token: Pattern`: a type; for a password it could be the value.
        let capitalised = value.len() > 1
            && value.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && value.chars().skip(1).all(|c| c.is_ascii_lowercase());
        let type_name = !password_like(name_hint) && (plain_words(value) || capitalised);
        return !(looks_like_type(value) || short_number || camel_case(value) || type_name);
    }
    if quoted && named {
        // `DB_PASS = "x7!kQ2pz"`, `"token": "abc"`.
        return named_value_is_secret(value, name_hint);
    }
    if quoted {
        // Short quoted words are labels and test data (`"tok"`, `"pw"`), not keys; words
        // (`"next_token"`, `"NextToken"`, `"Access-Control-Allow-Credentials"`) are
        // identifiers. Tokens and keys are never plain words or phrases (passwords may be).
        if value.len() < 4 || identifier_words(value) || color(value) {
            return false;
        }
        return password_like(name_hint) || !(plain_words(value) || value.contains(' '));
    }
    // Unquoted inside code: a plain identifier (`token = user_token`) is code, and so are
    // closures, operators and grammar (`|api_key: String|`, `1*tchar`); a literal has digits
    // or symbols mixed in, or is long.
    if value.len() < 6
        || value.contains('|')
        || value.contains('*')
        || value.contains("->")
        || identifier_words(value)
    {
        return false;
    }
    let identifier = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    let has_digit = value.chars().any(|c| c.is_ascii_digit());
    !identifier || (has_digit && value.len() >= 8) || value.len() >= 24
}

/// Whether a literal under a name that says secret ([`names_a_secret`]) is the secret: it
/// is, whatever its length or entropy, unless it is plainly something else.
fn named_value_is_secret(value: &str, name: &str) -> bool {
    // Text, not a credential: punctuation (`token = "'"` in a tokenizer), words with an
    // escaped line break (`'pass': 'The "pass" statement\n'`; an answer to a prompt,
    // `'secret\n'`, still goes), a colour, a type (`token: str`).
    if !value.chars().any(|c| c.is_ascii_alphanumeric())
        || (value.contains("\\n") && value.contains(' '))
        || color(value)
        || looks_like_type(value)
    {
        return false;
    }
    if password_like(name) {
        // Passwords may be words or phrases; a field's label is not one (`"new_password"`).
        return !(word_label(value) && value.to_ascii_lowercase().contains("pass"));
    }
    // Tokens and keys are never one character (`_token = 'e'`), a small number (a page
    // token `"100"`), a type (`pseudo_token: Pattern`), a label (`next_token`,
    // `NextToken`, `"input_token": "marker"`) or a phrase (a message).
    let small_number = value.len() < 6 && value.chars().all(|c| c.is_ascii_digit());
    let capitalised = value.len() > 1
        && value.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && value.chars().skip(1).all(|c| c.is_ascii_lowercase());
    let word = plain_words(value) && value.len() >= 5;
    !(value.chars().count() == 1
        || small_number
        || capitalised
        || word
        || word_label(value)
        || value.contains(' '))
}

/// An identifier made of words: `next_token`, `credential_duration_seconds`,
/// `AWS_SECRET_ACCESS_KEY`, `NextToken`, `PKCS7PrivateKeyTypes`.
fn identifier_words(value: &str) -> bool {
    let value = value.trim_start_matches('_');
    // `Access-Control-Allow-Credentials`, `next-token`.
    let kebab = value.contains('-')
        && value.split('-').all(|w| {
            let letters = w.chars().all(|c| c.is_ascii_alphabetic());
            let lower = w.chars().skip(1).all(|c| c.is_ascii_lowercase());
            letters && lower && (2..=16).contains(&w.len())
        });
    let snake = |upper: bool| {
        value.contains('_')
            && value.split('_').all(|w| {
                !w.is_empty()
                    && w.len() <= 16
                    && w.chars().all(|c| {
                        c.is_ascii_digit()
                            || if upper {
                                c.is_ascii_uppercase()
                            } else {
                                c.is_ascii_lowercase()
                            }
                    })
                    && w.chars().filter(|c| c.is_ascii_digit()).count() <= 1
            })
    };
    kebab || snake(false) || snake(true) || camel_case(value)
}

/// A label made of words, without digits (`next_token`, `NextToken`, `AWS_SECRET_KEY`):
/// the name of a field, not a value (`x7kQ2pz` and `x7_kq` are values).
fn word_label(value: &str) -> bool {
    identifier_words(value) && !value.chars().any(|c| c.is_ascii_digit())
}

/// `NextToken`, `secretClient`, `PKCS7PrivateKeyTypes`: runs of capitalised words.
fn camel_case(value: &str) -> bool {
    if value.len() > 48 || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    // Split before each capital that follows a lowercase letter; each piece must read as
    // a word (a capital or digits, then lowercase letters).
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in value.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase();
        current.push(c);
    }
    words.push(current);
    let letters = value.chars().filter(|c| c.is_ascii_alphabetic()).count();
    let lower = value.chars().filter(|c| c.is_ascii_lowercase()).count();
    words.len() >= 2
        && value.chars().filter(|c| c.is_ascii_digit()).count() <= 2
        && lower * 2 >= letters
        && words
            .iter()
            .all(|w| w.chars().any(|c| c.is_ascii_lowercase()) && w.len() <= 16)
}

/// Passwords may be words or phrases; tokens and keys never are.
fn password_like(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.is_empty() || ["pass", "pwd"].iter().any(|w| lower.contains(w))
}

/// `comment`, `secrets-manager`, `role-secret-key`, `no-password-required`: lowercase words.
fn plain_words(value: &str) -> bool {
    value.len() <= 40
        && value
            .split(['-', '_', ' '])
            .all(|w| !w.is_empty() && w.len() <= 16 && w.chars().all(|c| c.is_ascii_lowercase()))
}

/// `#cccccc`: a colour.
fn color(value: &str) -> bool {
    value.starts_with('#')
        && matches!(value.len(), 4 | 5 | 7 | 9)
        && value[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// `form.password`, `settings.api_key`: an attribute path, which is code.
fn dotted_name(value: &str) -> bool {
    value.contains('.')
        && value.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A variable, template or placeholder standing where a secret would be:
/// `${DB_PASSWORD}`, `os.environ[...]`, `{{ .Values.token }}`, `<your-key>`, `changeme`.
fn placeholder(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() || value.contains("[REDACTED") {
        return true;
    }
    // A format string (`"%s:%s"`, `'{0}:{1}'`) is a template, not a value.
    let template = ["%s", "%d", "%r", "{}", "{0}", "{1}"]
        .iter()
        .any(|t| value.contains(t));
    let reference = template
        || value.starts_with('$')
        || value.starts_with("%(")
        || value.contains("{{")
        || value.starts_with("os.")
        || value.starts_with("process.env")
        || value.starts_with("env.")
        || value.starts_with("ENV[")
        || value.starts_with("self.")
        || value.starts_with("this.")
        || value.starts_with("settings.")
        || value.starts_with("config.")
        || value.starts_with("secrets.")
        || value.starts_with("vault:")
        || value.starts_with("ref+")
        || value.starts_with('<') && value.ends_with('>')
        || value.starts_with('<')
        || value.starts_with('{') && value.ends_with('}')
        || call(value);
    if reference {
        return true;
    }
    // Masked values: `****`, `:****`, `****/**/**`.
    if value.chars().filter(|&c| c == '*' || c == '•').count() * 2 >= value.chars().count() {
        return true;
    }
    let lower = value.to_ascii_lowercase();
    const NOT_SECRETS: &[&str] = &[
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
        "bytes",
        "int",
        "bool",
        "any",
        "secretstr",
        "text",
        "password",
        "secret",
        "token",
        "changeme",
        "change-me",
        "change_me",
        "example",
        "placeholder",
        "redacted",
        "hidden",
        "masked",
        "dummy",
        "test",
        "empty",
        "default",
        "bearer",
        "basic",
        "string?",
        "str?",
        "pass",
        "passwd",
        "pwd",
        "pw",
        "secret_key",
        "api_key",
        "apikey",
    ];
    // Documentation and test values say so (`wJalr…EXAMPLEKEY`, `test-secret-key`).
    let marked = [
        "example",
        "dummy",
        "fake",
        "sample",
        "changeme",
        "placeholder",
    ]
    .iter()
    .any(|m| lower.contains(m))
        || lower.starts_with("test-")
        || lower.starts_with("test_");
    marked
        || NOT_SECRETS.contains(&lower.as_str())
        || lower.starts_with("your")
        || lower.starts_with("<your")
        || lower
            .chars()
            .all(|c| c == '*' || c == 'x' || c == '.' || c == '-')
}

/// A run of 16 base64 characters somewhere between the markers.
fn key_material(block: &str) -> bool {
    let mut run = 0;
    for c in block.chars() {
        if c.is_ascii_alphanumeric() || c == '+' || c == '/' {
            run += 1;
            if run >= 16 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// `SecretStr(`, `get_token(user)`: a call.
fn call(value: &str) -> bool {
    value.find('(').is_some_and(|i| {
        i > 0
            && value[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// `str`, `Optional[str]`, `string`: a type annotation rather than a value.
fn looks_like_type(value: &str) -> bool {
    value.contains('[')
        || value.ends_with('?')
        || matches!(
            value,
            "str"
                | "string"
                | "String"
                | "bytes"
                | "int"
                | "bool"
                | "SecretStr"
                | "SecretBytes"
                | "Any"
                | "object"
        )
}

/// Long, mixed and high-entropy: how keys and signatures look, and names and words do not.
fn looks_random(value: &str) -> bool {
    let value = value.trim();
    if value.len() < 16 || value.contains(char::is_whitespace) || value.starts_with("[REDACTED") {
        return false;
    }
    let is_uuid = value.len() == 36 && value.matches('-').count() == 4;
    // Escapes, `k=v` pairs and `a:b` are text; keys are base64/hex/url-safe runs.
    let inner_equals = value.trim_end_matches('=').contains('=');
    if is_uuid
        || value.contains("://")
        || value.starts_with('/')
        || value.contains('(')
        || value.contains('\\')
        || value.contains(':')
        || inner_equals
    {
        return false;
    }
    let digits = value.chars().filter(|c| c.is_ascii_digit()).count();
    let letters = value.chars().filter(|c| c.is_ascii_alphabetic()).count();
    if digits == 0 || letters == 0 {
        return false;
    }
    // Identifiers (`PKCS7PrivateKeyTypes`, `fs.s3.enableServerSideEncryption`) and code
    // (`backends[account_id]`) are not random.
    if value.contains('[') || dotted_name(value) || identifier_words(value) || camel_words(value) {
        return false;
    }
    // A dotted or snake_case name (`module.sub_module.attr_2`) is not random.
    let word_like = value
        .split(['_', '.', '-'])
        .filter(|p| !p.is_empty())
        .all(|p| p.len() <= 12 && p.chars().filter(|c| c.is_ascii_digit()).count() <= 2);
    if word_like {
        return false;
    }
    shannon_entropy(value) >= 3.5
}

/// Mostly capitalised words (`MLKEM768X25519PrivateKey`): at least 60 % of it in runs like
/// `Private`, `Key`.
fn camel_words(value: &str) -> bool {
    static WORDS: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(words) = WORDS.get_or_init(|| Regex::new(r"[A-Z][a-z]{2,}").ok()) else {
        return false;
    };
    let covered: usize = words.find_iter(value).map(|m| m.len()).sum();
    covered * 10 >= value.len() * 6
}

/// Bits per character.
fn shannon_entropy(value: &str) -> f64 {
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    for c in value.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let len = value.chars().count() as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Redacted {
        Redactor::get().redact(s)
    }

    #[test]
    fn every_builtin_pattern_compiles() {
        for (kind, re, _, _) in BUILTIN {
            assert!(Regex::new(re).is_ok(), "{kind}: {re}");
        }
        // 7 generated rules follow the fixed ones.
        assert_eq!(Redactor::get().rules.len(), BUILTIN.len() + 7);
    }

    #[test]
    fn provider_tokens_are_removed_with_their_kind() {
        let secrets = [
            (
                "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
                "anthropic-key",
            ),
            ("sk-proj-abcdefghijklmnopqrstuvwxyz0123", "openai-key"),
            ("AKIAZ5QWERTYUIOP1234", "aws-access-key-id"),
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
                .contains("postgres://app:[REDACTED url-password]@db:5432/app"),
            "{}",
            out.text
        );
        assert!(!out.text.contains("horse"), "{}", out.text);
        assert!(!out.text.contains("s3cr3tValue99"));
    }

    #[test]
    fn env_lines_redact_short_and_plain_values_too() {
        let out = r(
            "DB_PASSWORD=hunter2\nLOG_LEVEL=debug\nexport API_TOKEN='abc'\nAWS_REGION=eu-west-1\nMASTER_KEY=k\n",
        );
        assert!(!out.text.contains("hunter2"), "{}", out.text);
        assert!(!out.text.contains("'abc'"), "{}", out.text);
        assert!(out.text.contains("LOG_LEVEL=debug"));
        assert!(out.text.contains("AWS_REGION=eu-west-1"));
        assert!(
            out.text.contains("MASTER_KEY=[REDACTED env-secret]"),
            "{}",
            out.text
        );
    }

    #[test]
    fn config_lines_connection_strings_and_commands() {
        let text = "database:\n  password: hunter2\n  password_file: /run/secrets/db\n\
                    conn = \"Server=db;User Id=sa;Password=P@ss;\"\n\
                    docker login -u bot -p s3cretpass registry\n\
                    curl -u deploy:pa55word https://x\n\
                    the password is Tr0ub4dor&3 and it leaked\n\
                    GET /geo?address=Berlin&api_key=abcdef123456 HTTP/1.1\n";
        let out = r(text);
        for secret in [
            "hunter2",
            "P@ss",
            "s3cretpass",
            "pa55word",
            "Tr0ub4dor&3",
            "abcdef123456",
        ] {
            assert!(!out.text.contains(secret), "{secret}: {}", out.text);
        }
        assert!(
            out.text.contains("password_file: /run/secrets/db"),
            "{}",
            out.text
        );
    }

    #[test]
    fn random_values_under_maybe_secret_names() {
        let out = r(
            "signing_key: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\ncache_key = \"user_profile_v2\"\n",
        );
        assert!(!out.text.contains("9f86d081"), "{}", out.text);
        assert!(out.text.contains("user_profile_v2"));
    }

    #[test]
    fn ordinary_code_stays_readable() {
        let code = "def refresh(token):\n    token = get_token(user)\n    password = form.password\n    api_key = os.environ[\"API_KEY\"]\n    secret_santa = None\n    return safe_divide(a, b)\n\
                    password: str\nclass Settings:\n    api_key: Optional[str] = None\n\
                    TOKEN_URL = \"https://oauth2.googleapis.com/token\"\n\
                    db_password: ${DB_PASSWORD}\nkey = self.cache_key(name)\nfor key, value in items:\n";
        let out = r(code);
        assert_eq!(out.text, code, "{:?}", out.removed);
        assert_eq!(out.count(), 0);
    }

    #[test]
    fn published_examples_and_marker_mentions_are_kept() {
        let text = "user_id = \"AKIAIOSFODNN7EXAMPLE\"\nOnly the part between '-----BEGIN RSA PRIVATE KEY-----' and\n'-----END RSA PRIVATE KEY-----' is read.\n";
        assert_eq!(r(text).text, text);
    }

    #[test]
    fn a_truncated_key_still_goes() {
        let out = r(
            "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7",
        );
        assert!(
            !out.text.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            "{}",
            out.text
        );
    }

    #[test]
    fn extra_patterns_and_their_secret_group() {
        let red = Redactor::with_patterns(&[
            r"ACME-[0-9]{6}".to_string(),
            r"internal_id=(?P<secret>\w+)".to_string(),
        ])
        .unwrap();
        let out = red.redact("ticket ACME-123456, internal_id=abc99");
        assert_eq!(
            out.text,
            "ticket [REDACTED custom], internal_id=[REDACTED custom]"
        );
        let e = Redactor::with_patterns(&["ok".into(), "(".into()])
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("redaction.patterns[1]:"), "{e}");
    }
}
