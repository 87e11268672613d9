//! Closed sets of values (`teacher.mode`, `tests.framework`, …): one macro gives each its
//! canonical spelling, aliases, case-insensitive parsing and the list of valid values.

/// Declares an enum for a closed set of string values with its canonical
/// spelling, accepted aliases, case-insensitive parsing and serde impls, so
/// every enum-like field reports its valid values the same way.
macro_rules! closed_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident => $canon:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
        }

        impl $name {
            /// Every value, in the order they are listed in messages.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The canonical spelling, as written to the effective settings.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $canon,)+
                }
            }

            /// Alternative spellings accepted on input.
            fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($alias),*],)+
                }
            }

            /// The valid values for messages, aliases in parentheses.
            pub fn expected() -> String {
                $crate::settings::expected_list(Self::ALL.iter().map(|v| (v.as_str(), v.aliases())))
            }

            /// Parses a value case-insensitively (treating `_` like `-`);
            /// the error is a message listing the valid values.
            pub fn parse(input: &str) -> Result<Self, String> {
                let wanted = $crate::settings::normalize_choice(input);
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| {
                        $crate::settings::normalize_choice(v.as_str()) == wanted
                            || v.aliases().iter().any(|a| $crate::settings::normalize_choice(a) == wanted)
                    })
                    .ok_or_else(|| {
                        format!(
                            "unknown value {:?}, expected one of: {}",
                            input,
                            Self::expected()
                        )
                    })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&raw).map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// Lowercases and maps `_` to `-` so `Claude_CLI` and `claude-cli` match.
pub(crate) fn normalize_choice(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('_', "-")
}

pub(crate) fn expected_list<'a>(items: impl Iterator<Item = (&'a str, &'a [&'a str])>) -> String {
    items
        .map(|(canon, aliases)| {
            if aliases.is_empty() {
                canon.to_string()
            } else {
                format!("{canon} (alias {})", aliases.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

closed_enum! {
    /// Which backend the teacher LLM uses.
    TeacherMode {
        /// Pick a backend from what is available at run time.
        #[default]
        Auto => "auto",
        /// Anthropic Messages API; `local` is the prototype's name for it.
        Anthropic => "anthropic" | "local",
        /// No LLM: rules are derived without a teacher.
        Offline => "offline",
        /// An OpenAI-compatible chat API.
        OpenAi => "openai",
        /// An n8n (or other) webhook, configured under `n8n`.
        Webhook => "webhook",
        /// The `claude` CLI itself acts as teacher.
        ClaudeCli => "claude-cli",
    }
}

closed_enum! {
    /// Claude Code's `--permission-mode` values.
    PermissionMode {
        /// Ask for every action.
        Default => "default",
        /// Auto-accept file edits.
        AcceptEdits => "acceptEdits",
        /// Skip all permission prompts; the default for headless runs. The prototype's
        /// config spells it `dangerously-skip-permissions`, after the flag it passed.
        #[default]
        BypassPermissions => "bypassPermissions" | "dangerously-skip-permissions",
        /// Plan only, no edits.
        Plan => "plan",
        /// Deny whatever is not pre-approved.
        DontAsk => "dontAsk",
    }
}

closed_enum! {
    /// Which test runner output the failure parser expects.
    TestFramework {
        /// Python's pytest.
        #[default]
        Pytest => "pytest",
        /// Jest.
        Jest => "jest",
        /// Vitest.
        Vitest => "vitest",
        /// `go test`.
        Go => "go" | "gotest",
        /// `cargo test`.
        Cargo => "cargo" | "cargo-test",
        /// `cargo nextest run`.
        Nextest => "nextest" | "cargo-nextest",
        /// JUnit XML reports (`tests.report` says where).
        Junit => "junit",
        /// Detect from the command and the project.
        Auto => "auto",
        /// Judge by exit code only.
        None => "none",
    }
}

closed_enum! {
    /// What `promptloop hook claude` does when a Claude Code session stops with failing tests.
    StopAction {
        /// Capture the failures and learn rules from them.
        #[default]
        Learn => "learn",
        /// Capture the failures (kept pending for `promptloop learn`) and make the agent
        /// go on and fix them.
        Block => "block",
        /// Do nothing on Stop.
        Off => "off",
    }
}

closed_enum! {
    /// Claude Code's `--output-format` values that promptloop can parse.
    OutputFormat {
        /// One JSON object at the end.
        #[default]
        Json => "json",
        /// Newline-delimited JSON events.
        StreamJson => "stream-json",
    }
}

closed_enum! {
    /// Log verbosity, named as in Python's `logging` so the prototype's
    /// values keep working.
    LogLevel {
        /// Everything.
        Debug => "debug",
        /// Progress messages.
        #[default]
        Info => "info",
        /// Problems that do not stop the run.
        Warning => "warning" | "warn",
        /// Failures.
        Error => "error",
        /// Only fatal failures.
        Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::*;

    #[test]
    fn unknown_enum_values_list_valid_values() {
        let err = parse_err("# comment\nteacher:\n  mode: \"gpt\"\n");
        assert_eq!(
            err.to_string(),
            "config.yaml:3:9: teacher.mode: unknown value \"gpt\", expected one of: \
             auto, anthropic (alias local), offline, openai, webhook, claude-cli"
        );
        let err = parse_err("tests:\n  framework: mocha\n");
        assert!(
            err.to_string()
                .ends_with("tests.framework: unknown value \"mocha\", expected one of: pytest, jest, vitest, go (alias gotest), cargo (alias cargo-test), nextest (alias cargo-nextest), junit, auto, none"),
            "{err}"
        );
        let err = parse_err("claude:\n  output_format: text\n");
        assert!(err.to_string().contains("json, stream-json"), "{err}");
        let err = parse_err("claude:\n  permission_mode: yolo\n");
        assert!(
            err.to_string()
                .contains("default, acceptEdits, bypassPermissions (alias dangerously-skip-permissions), plan, dontAsk"),
            "{err}"
        );
        let err = parse_err("logging:\n  level: loud\n");
        assert!(err.to_string().contains("warning (alias warn)"), "{err}");
    }

    #[test]
    fn enum_values_are_case_insensitive() {
        let s = parse_ok(
            "teacher:\n  mode: Claude_CLI\ntests:\n  framework: PyTest\nclaude:\n  \
             permission_mode: acceptedits\n  output_format: STREAM-JSON\nlogging:\n  level: warn\n",
        );
        assert_eq!(s.teacher.mode, TeacherMode::ClaudeCli);
        assert_eq!(s.tests.framework, TestFramework::Pytest);
        assert_eq!(s.claude.permission_mode, PermissionMode::AcceptEdits);
        assert_eq!(s.claude.output_format, OutputFormat::StreamJson);
        assert_eq!(s.logging.level, LogLevel::Warning);
        assert_eq!(
            parse_ok("teacher:\n  mode: OpenAI\n")
                .teacher
                .api_key_env_name(),
            Some("OPENAI_API_KEY")
        );
    }
}
