//! The vocabulary the analysis normalises rules with: function words, the common synonyms of
//! instructions, antonyms read as negations, phrases, units, and the sets of alternatives a
//! rule chooses between. General English and general developer vocabulary only: nothing here
//! names a rule of the labelled pairs.

use std::collections::HashMap;
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

/// Stems are cut to this many characters ("comparison" / "comparing" → `compar`).
pub(crate) const STEM_CHARS: usize = 7;

/// Words that carry no meaning for "what does this rule say".
pub(crate) const STOPWORDS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "it", "its", "of", "to", "in", "on", "at",
    "for", "from", "by", "with", "as", "is", "are", "be", "been", "being", "was", "were", "and",
    "or", "but", "if", "so", "such", "into", "onto", "via", "per", "when", "whenever", "while",
    "where", "which", "who", "whom", "whose", "what", "you", "your", "yours", "yourself", "we",
    "our", "us", "they", "them", "their", "he", "she", "his", "her", "i", "me", "my", "always",
    "must", "should", "shall", "need", "needs", "make", "makes", "made", "sure", "ensure",
    "ensures", "every", "each", "any", "all", "also", "just", "do", "does", "did", "please", "can",
    "could", "may", "might", "will", "would", "own", "use", "used", "uses", "using", "utilize",
    "employ", "have", "has", "had", "having", "here", "there", "whether", "too", "very", "really",
    "itself", "themselves", "something", "anything", "everything", "let", "lets", "keep", "keeps",
    "kept", "stay", "stays", "get", "gets", "got", "go", "goes", "able", "way", "thing", "things",
    "one's", "whatever", "how", "why", "than", "right", "away", "properly", "correctly", "explicitly",
    "actually", "simply", "directly", "instead", "rather", "yet", "still", "even", "other", "others",
    "some", "same", "both", "either", "about", "around", "within", "across", "along", "against",
    "between", "like", "e.g", "eg", "i.e", "ie", "etc", "there's", "it's", "they're", "you're",
    "we're", "upon", "whole", "entire", "full", "given", "certain", "only", "out", "up",
    "down", "through", "back", "off_particle", "along", "whatever", "wherever", "yourselves",
    "someone", "anyone", "everyone", "one", "ones", "anymore",
];

/// Words that start a negation of what follows (multi-word cues are phrases).
pub(crate) const NEGATIONS: &[&str] = &[
    "not", "no", "never", "avoid", "avoids", "avoiding", "without", "nor", "neither", "nothing",
    "cannot", "prevent", "prevents", "instead_of", "rather_than", "over_pref", "guard_against",
];

/// After "X is not …" or "X does not …", these words say the negation is about X.
pub(crate) const BACKWARD_PREDICATES: &[&str] = &[
    "used", "needed", "allowed", "supported", "wanted", "recommended", "required", "work",
    "works", "wrong", "forbidden", "banned", "deprecated", "enough", "necessary", "welcome",
    "secure", "safe", "reliable", "portable", "stable", "correct", "valid", "ideal", "good",
    "right", "acceptable", "ok", "okay", "fine", "appropriate", "suitable",
];

/// Words after which "over" means "rather than" ("prefer X over Y").
pub(crate) const PREFER: &[&str] = &["prefer", "prefers", "preferred", "favour", "favor", "choose"];

/// Multi-word phrases, matched on lowercase words, replaced before anything else.
pub(crate) const PHRASES: &[(&[&str], &[&str])] = &[
    (&["instead", "of"], &["instead_of"]),
    (&["rather", "than"], &["rather_than"]),
    (&["in", "place", "of"], &["instead_of"]),
    (&["as", "opposed", "to"], &["instead_of"]),
    (&["out", "of"], &["not"]),
    (&["guard", "against"], &["guard_against"]),
    (&["protect", "against"], &["guard_against"]),
    (&["do", "not"], &["not"]),
    (&["does", "not"], &["aux", "not"]),
    (&["do", "not", "work"], &["aux", "not", "work"]),
    (&["did", "not"], &["not"]),
    (&["must", "not"], &["modal", "not"]),
    (&["should", "not"], &["modal", "not"]),
    (&["can", "not"], &["modal", "not"]),
    (&["may", "not"], &["modal", "not"]),
    (&["will", "not"], &["modal", "not"]),
    (&["is", "not"], &["aux", "not"]),
    (&["are", "not"], &["aux", "not"]),
    (&["was", "not"], &["aux", "not"]),
    (&["were", "not"], &["aux", "not"]),
    (&["no", "longer"], &["not"]),
    (&["make", "sure"], &[]),
    (&["be", "sure", "to"], &[]),
    (&["at", "the", "top", "of"], &["before"]),
    (&["prior", "to"], &["before"]),
    (&["ahead", "of"], &["before"]),
    (&["in", "advance"], &["before"]),
    (&["only", "then"], &["after"]),
    (&["and", "then"], &["after"]),
    (&["up", "to"], &["cmp_le"]),
    (&["at", "most"], &["cmp_le"]),
    (&["no", "more", "than"], &["cmp_le"]),
    (&["not", "more", "than"], &["cmp_le"]),
    (&["a", "maximum", "of"], &["cmp_le"]),
    (&["at", "least"], &["cmp_ge"]),
    (&["a", "minimum", "of"], &["cmp_ge"]),
    (&["more", "than"], &["cmp_gt"]),
    (&["greater", "than"], &["cmp_gt"]),
    (&["less", "than"], &["cmp_lt"]),
    (&["fewer", "than"], &["cmp_lt"]),
    (&["lower", "than"], &["cmp_lt"]),
    (&["or", "newer"], &["cmp_or_more"]),
    (&["or", "later"], &["cmp_or_more"]),
    (&["or", "higher"], &["cmp_or_more"]),
    (&["or", "above"], &["cmp_or_more"]),
    (&["or", "more"], &["cmp_or_more"]),
    (&["look", "up"], &["check"]),
    (&["look", "it", "up"], &["check"]),
    (&["look", "them", "up"], &["check"]),
    (&["command", "line"], &["cli"]),
    (&["look", "at"], &["check"]),
    (&["look", "through"], &["check"]),
    (&["look", "for"], &["check"]),
    (&["looks", "at"], &["check"]),
    (&["go", "through"], &["check"]),
    (&["go", "over"], &["check"]),
    (&["find", "out"], &["check"]),
    (&["environment", "variables"], &["env"]),
    (&["environment", "variable"], &["env"]),
    (&["env", "vars"], &["env"]),
    (&["env", "var"], &["env"]),
    (&["env", "variables"], &["env"]),
    (&["env", "variable"], &["env"]),
    (&["pull", "requests"], &["pr"]),
    (&["pull", "request"], &["pr"]),
    (&["merge", "requests"], &["pr"]),
    (&["merge", "request"], &["pr"]),
    (&["test", "suite"], &["test"]),
    (&["tests", "suite"], &["test"]),
    (&["unit", "tests"], &["unit", "test"]),
    (&["type", "hints"], &["typehint"]),
    (&["type", "hint"], &["typehint"]),
    (&["type", "annotations"], &["typehint"]),
    (&["type", "annotate"], &["typehint"]),
    (&["hard", "code"], &["hardcode"]),
    (&["hard", "coded"], &["hardcode"]),
    (&["by", "hand"], &["manual"]),
    (&["turn", "off"], &["not", "enable"]),
    (&["turns", "off"], &["not", "enable"]),
    (&["switch", "off"], &["not", "enable"]),
    (&["turn", "on"], &["enable"]),
    (&["switch", "on"], &["enable"]),
    (&["set", "up"], &["setup"]),
    (&["clean", "up"], &["remove"]),
    (&["give", "back"], &["return"]),
    (&["gives", "back"], &["return"]),
    (&["check", "in"], &["commit"]),
    (&["checked", "in"], &["commit"]),
    (&["check", "into"], &["commit"]),
    (&["checked", "into"], &["commit"]),
    (&["single", "quotes"], &["singlequote"]),
    (&["single", "quote"], &["singlequote"]),
    (&["double", "quotes"], &["doublequote"]),
    (&["double", "quote"], &["doublequote"]),
    (&["more", "than", "once"], &["cmp_gt", "1", "times"]),
    (&["once", "per"], &["period_one"]),
    (&["once", "a"], &["period_one"]),
    (&["once", "an"], &["period_one"]),
    (&["once", "every"], &["period_one"]),
    (&["code", "base"], &["codebase"]),
    (&["developer", "machine"], &["local"]),
    (&["your", "machine"], &["local"]),
    (&["own", "machine"], &["local"]),
    (&["exit", "code"], &["exitcode"]),
    (&["return", "code"], &["exitcode"]),
    (&["exit", "status"], &["exitcode"]),
    (&["end", "to", "end"], &["e2e"]),
    (&["wrap", "up"], &["finish"]),
    (&["fire", "and", "forget"], &["fireforget"]),
    (&["time", "zone"], &["timezone"]),
    (&["time", "zones"], &["timezone"]),
    (&["shell", "script"], &["script"]),
    (&["right", "after"], &["after"]),
    (&["right", "away"], &[]),
    (&["as", "well"], &[]),
    (&["on", "top", "of"], &["onto"]),
    (&["each", "other"], &[]),
];

/// Hyphenated words that mean one thing (written with or without the hyphen).
pub(crate) const JOINED: &[(&str, &str)] = &[
    ("hard-code", "hardcode"),
    ("hard-coded", "hardcode"),
    ("hard-codes", "hardcode"),
    ("hardcoded", "hardcode"),
    ("non-empty", "nonempty"),
    ("force-push", "push force"),
    ("force-pushes", "push force"),
    ("force-pushing", "push force"),
    ("end-to-end", "e2e"),
    ("read-only", "readonly"),
    ("re-run", "rerun"),
    ("re-read", "reread"),
    ("re-enable", "enable"),
    ("type-annotate", "typehint"),
    ("type-check", "typecheck"),
    ("type-checks", "typecheck"),
    ("up-to-date", "current"),
    ("built-in", "builtin"),
    ("set-up", "setup"),
    ("e-mail", "email"),
    ("utf-8", "utf8"),
    ("pre-commit", "precommit"),
    ("hand-edit", "manual change"),
    ("hand-edited", "manual change"),
    ("hand-written", "manual"),
    ("hand-typed", "manual"),
    ("hand-made", "manual"),
    ("hand-merged", "manual merge"),
    ("fix-up", "fixup"),
    ("time-zone", "timezone"),
    ("timezone-aware", "timezone aware"),
    ("in-place", "inplace"),
    ("sign-off", "signoff"),
    ("opt-in", "optin"),
    ("opt-out", "optout"),
    ("lower-case", "lowercase"),
    ("command-line", "cli"),
    ("non-nil", "nonnil"),
    ("non-null", "nonnil"),
    ("non-zero", "nonzero"),
    ("non-negative", "nonnegative"),
    ("non-blocking", "nonblocking"),
    ("upper-case", "uppercase"),
];

/// Number words.
pub(crate) const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("single", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("twelve", "12"),
    ("fifteen", "15"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("fifty", "50"),
    ("hundred", "100"),
    ("twice", "2 times"),
];

/// Units a number can carry, with the base unit and factor they convert to.
pub(crate) const UNITS: &[(&str, &str, f64)] = &[
    ("ms", "s", 0.001),
    ("millisecond", "s", 0.001),
    ("milliseconds", "s", 0.001),
    ("s", "s", 1.0),
    ("sec", "s", 1.0),
    ("secs", "s", 1.0),
    ("second", "s", 1.0),
    ("seconds", "s", 1.0),
    ("min", "s", 60.0),
    ("mins", "s", 60.0),
    ("minute", "s", 60.0),
    ("minutes", "s", 60.0),
    ("h", "s", 3600.0),
    ("hr", "s", 3600.0),
    ("hrs", "s", 3600.0),
    ("hour", "s", 3600.0),
    ("hours", "s", 3600.0),
    ("day", "s", 86400.0),
    ("days", "s", 86400.0),
    ("week", "s", 604_800.0),
    ("weeks", "s", 604_800.0),
    ("kb", "b", 1e3),
    ("mb", "b", 1e6),
    ("gb", "b", 1e9),
    ("kib", "b", 1024.0),
    ("mib", "b", 1_048_576.0),
    ("gib", "b", 1_073_741_824.0),
    ("ki", "b", 1024.0),
    ("mi", "b", 1_048_576.0),
    ("gi", "b", 1_073_741_824.0),
    ("%", "%", 1.0),
    ("percent", "%", 1.0),
    ("times", "x", 1.0),
    ("time", "x", 1.0),
    ("x", "x", 1.0),
];

/// Time units that "a" or "an" counts as one of ("once an hour", "a day").
pub(crate) const COUNTABLE_UNITS: &[&str] = &[
    "second", "minute", "hour", "day", "week", "millisecond",
];

/// Common spellings of one idea in rules about code (each word → the first of its group).
/// Grouped by meaning; matched on stems, so inflections follow.
pub(crate) const SYNONYMS: &[&[&str]] = &[
    &["check", "validate", "validation", "inspect", "verify", "confirm", "examine", "consult", "lookup", "enumerate", "investigate"],
    &["create", "add", "introduce", "setup", "spin", "define"],
    &["exist", "existing", "already", "present", "available"],
    &["new", "another", "additional", "extra", "fresh", "second"],
    &["remove", "delete", "drop", "erase", "rm", "discard", "purge", "wipe"],
    &["run", "execute", "invoke", "launch", "call", "rerun", "trigger"],
    &["env", "environment"],
    &["config", "configuration", "cfg", "conf", "configure", "option", "options"],
    &["code", "codebase", "source", "sources"],
    &["repository", "repo", "git"],
    &["directory", "dir", "folder"],
    &["test", "tests", "spec", "specs", "testing", "suite"],
    &["ci", "pipeline", "pipelines"],
    &["error", "exception", "err", "errors"],
    &["raise", "throw"],
    &["before", "first", "prior", "beforehand", "earlier", "ahead"],
    &["after", "afterwards", "afterward", "then", "later", "once", "subsequently"],
    &["finish", "finished", "complete", "completed", "done", "ready", "finalize"],
    &["issue", "ticket"],
    &["read", "load", "take", "fetch", "obtain", "retrieve"],
    &["store", "put", "save", "place", "persist"],
    &["change", "modify", "edit", "update", "alter", "touch", "tweak", "adjust", "rewrite", "work", "changes", "edits"],
    &["enable", "activate"],
    &["allow", "permit", "accept"],
    &["require", "required", "mandatory", "obligatory"],
    &["include", "included", "includes"],
    &["export", "public", "exported"],
    &["mock", "stub", "fake"],
    &["guard", "protect"],
    &["doc", "docs", "documentation", "document"],
    &["big", "large", "huge"],
    &["temporary", "temp", "tmp"],
    &["strip", "trim"],
    &["binary", "binaries", "artifact", "artifacts", "artefact", "artefacts", "executable"],
    &["local", "locally", "laptop", "workstation"],
    &["old", "stale", "outdated", "superseded", "previous", "obsolete"],
    &["fast", "quick", "cheap", "faster", "cheaper"],
    &["depend", "dependency", "dependencies", "deps", "package", "packages", "crate", "crates", "library", "libraries", "lib"],
    &["cache", "caching", "cached", "memoize", "memoise", "memoization"],
    &["argument", "arguments", "args", "arg", "param", "params", "parameter", "parameters"],
    &["function", "func", "fn", "helper", "helpers"],
    &["none", "null", "nil"],
    &["manual", "manually", "hand"],
    &["hardcode", "inline", "embed"],
    &["secret", "secrets", "credential", "credentials"],
    &["pin", "pinned"],
    &["fail", "failure", "failing", "broken"],
    &["ignore", "skip", "silence", "hide"],
    &["user", "users", "caller", "callers"],
    &["start", "begin", "beginning", "starting"],
    &["pr", "prs", "mr"],
    &["commit", "commits", "committing"],
    &["leak", "expose", "disclose"],
    &["reuse", "extend"],
    &["split"],
    &["ask", "confirmation", "clarify", "clarifying", "permission", "approval", "consent"],
    &["mention", "reference", "link", "cite"],
    &["tell", "summarise", "summarize", "inform", "notify", "announce"],
    &["limit", "cap", "bound", "restrict"],
    &["quote", "quotes"],
    &["stop", "cancel", "abort", "halt"],
    &["say", "claim", "report", "declare", "call_done"],
];

/// Antonyms read as the negation of their partner: "disable X" is "not enable X".
pub(crate) const ANTONYMS: &[(&str, &str)] = &[
    ("disable", "enable"),
    ("disabled", "enable"),
    ("disables", "enable"),
    ("deactivate", "enable"),
    ("deactivated", "enable"),
    ("off", "enable"),
    ("false", "enable"),
    ("forbid", "allow"),
    ("forbids", "allow"),
    ("disallow", "allow"),
    ("prohibit", "allow"),
    ("deny", "allow"),
    ("reject", "allow"),
    ("rejects", "allow"),
    ("refuse", "allow"),
    ("optional", "require"),
    ("exclude", "include"),
    ("excludes", "include"),
    ("omit", "include"),
    ("unexported", "export"),
    ("private", "export"),
    ("unbuffered", "buffer"),
    ("unsigned", "sign"),
    ("unpinned", "pin"),
    ("unawaited", "await"),
    ("unhandled", "handle"),
    ("uncached", "cache"),
    ("unsorted", "sort"),
    ("untyped", "typehint"),
    ("leave", "remove"),
    ("leaves", "remove"),
];

/// Words that say "true" / "on", folded into `enable`.
pub(crate) const AFFIRMATIVES: &[&str] = &["true", "on_value", "enabled", "activated"];

/// Sets of alternatives: two rules that pick different members of one set for the same thing
/// choose differently (tabs or spaces, npm or pnpm). Members are stems or identifiers.
pub(crate) const CHOICES: &[&[&str]] = &[
    &["tab", "space"],
    &["singlequote", "doublequote"],
    &["npm", "yarn", "pnpm", "bun"],
    &["pip", "poetry", "uv", "pipenv", "conda", "pdm", "hatch"],
    &["black", "ruff", "autopep8", "yapf"],
    &["prettier", "biome", "dprint"],
    &["pytest", "unittest", "nose"],
    &["jest", "vitest", "mocha", "jasmine", "ava"],
    &["merge", "rebase", "squash", "cherry-pick"],
    &["no-ff", "ff-only"],
    &["named", "default"],
    &["interface", "type"],
    &["zap", "slog", "logrus", "zerolog"],
    &["thiserror", "anyhow", "eyre", "snafu"],
    &["parking_lot", "std"],
    &["rustls", "native-tls", "openssl"],
    &["current_thread", "multi"],
    &["pointer", "value"],
    &["toml", "yaml", "json", "ini", "xml"],
    &["snake_case", "camelcase", "pascalcase", "kebab-case"],
    &["alpine", "bookworm", "bullseye", "debian", "slim", "ubuntu"],
    &["trace", "debug", "info", "warn", "warning", "critical", "fatal"],
    &["reqwest", "ureq", "hyper"],
    &["clap", "argh", "structopt"],
    &["gorilla/mux", "chi", "http.servemux", "gin", "echo"],
    &["tailwind", "css"],
    &["jira", "github", "linear", "trello"],
    &["helm", "kustomize"],
    &["let", "var", "const"],
    &["decimal", "float", "integer", "cent"],
    &["lax", "strict_samesite", "none_samesite"],
    &["adr", "wiki"],
    &["utc", "local"],
    &["sync", "async"],
    &["gpg", "ssh"],
    &["postgres", "mysql", "sqlite", "mariadb"],
    &["react", "vue", "svelte", "angular"],
    &["webpack", "vite", "rollup", "esbuild", "parcel"],
    &["promise", "callback"],
    &["tokio", "async-std", "smol"],
    &["nightly", "weekly", "daily", "hourly"],
];

/// Words so common in rules that they say little about which rule it is (half weight).
pub(crate) const GENERIC: &[&str] = &[
    "test", "code", "file", "function", "change", "create", "run", "check", "set", "new", "exist",
    "before", "after", "finish", "task", "project", "work", "step", "case", "time", "value",
    "default", "rule", "data", "item", "thing", "way", "read", "store", "call", "result",
    "fail", "error", "return", "write", "line", "name", "need", "start", "add", "make", "handle",
    "correct", "proper", "specific", "explicit", "user", "instead", "always", "also", "only",
    "sure", "good", "better", "wrong", "right", "possibl", "relevant", "appropriate", "necessary",
    "require", "many", "much", "more", "less", "first", "last", "next", "long", "short", "small",
    "all", "allow",
];

/// Words that may stand between an action verb and its object without ending it
/// ("never add *the* type hints").
pub(crate) const DETERMINERS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "any", "your", "our", "their", "its",
    "his", "her", "my", "some", "every", "each", "all", "new", "such",
];

/// Words that name actions: a rule that differs from another only by one of these is worded
/// differently, not about something else.
pub(crate) const ACTIONS: &[&str] = &[
    "set", "give", "mark", "make", "put", "configure", "change", "create", "add", "write", "build",
    "run", "apply", "enable", "turn", "define", "declare", "implement", "introduce", "provide", "pass",
    "send", "return", "handle", "treat", "call", "invoke", "do", "keep", "leave", "get", "go",
    "bring", "hold", "bump", "raise", "lower", "increase", "decrease", "reduce", "move", "switch",
    "prefer", "need", "want", "choose", "pick", "select", "start", "begin", "follow", "wrap",
    "hardcode", "store", "check", "read", "apply",
];

/// Words mapped as written, before stemming (their stems would collide with other words).
pub(crate) const RAW_SYNONYMS: &[(&str, &str)] = &[
    ("settings", "config"),
    ("setting", "config"),
    ("readme.md", "readme"),
    ("readme", "readme"),
    ("[]", "emptylist"),
    ("{}", "emptydict"),
];

/// Verbs that are also common nouns: folded into their synonym group only at the start of
/// a clause, where an instruction's verb stands ("List the workflows" but "the filtered
/// list").
pub(crate) const VERB_ONLY: &[(&str, &str)] = &[
    ("list", "check"),
    ("lists", "check"),
    ("listing", "check"),
    ("search", "check"),
    ("searching", "check"),
    ("scan", "check"),
    ("review", "check"),
    ("reviewing", "check"),
    ("see", "check"),
    ("browse", "check"),
    ("break", "split"),
];

pub(crate) fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// The stem of one lowercase word, cut to [`STEM_CHARS`].
pub(crate) fn stem(word: &str) -> String {
    stemmer().stem(word).chars().take(STEM_CHARS).collect()
}

/// The lexicon's lookups, built once.
pub(crate) struct Lexicon {
    pub stopwords: HashMap<&'static str, ()>,
    /// stem → canonical token.
    pub synonyms: HashMap<String, &'static str>,
    /// lowercase word → the token it negates.
    pub antonyms: HashMap<&'static str, &'static str>,
    /// token → choice set index.
    pub choices: HashMap<String, usize>,
    /// token → weight factor (generic words).
    pub generic: HashMap<String, ()>,
    pub actions: HashMap<String, ()>,
}

pub(crate) fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut synonyms = HashMap::new();
        for group in SYNONYMS {
            let canonical = group[0];
            for word in group.iter() {
                synonyms.entry(stem(word)).or_insert(canonical);
                synonyms.entry((*word).to_string()).or_insert(canonical);
            }
        }
        let mut choices = HashMap::new();
        for (i, group) in CHOICES.iter().enumerate() {
            for member in group.iter() {
                choices.insert((*member).to_string(), i);
                choices.insert(stem(member), i);
            }
        }
        let generic = GENERIC
            .iter()
            .flat_map(|w| [(*w).to_string(), stem(w)])
            .map(|w| (w, ()))
            .collect();
        let actions = ACTIONS
            .iter()
            .flat_map(|w| [(*w).to_string(), stem(w)])
            .map(|w| (w, ()))
            .collect();
        Lexicon {
            stopwords: STOPWORDS.iter().map(|w| (*w, ())).collect(),
            synonyms,
            antonyms: ANTONYMS.iter().copied().collect(),
            choices,
            generic,
            actions,
        }
    })
}
