//! File-name patterns (`*.pem`, `.env*`, `config/secrets/*`): private files that are never
//! sent to a teacher, noise files left out of diffs, JUnit report globs.

/// Whether the path matches one of `patterns` (`*` matches any run): on the file name, or
/// on the whole path (or its end) for patterns with a `/`.
pub fn matches_any<'a>(path: &str, patterns: impl IntoIterator<Item = &'a str>) -> bool {
    let path = path.trim_start_matches("./");
    let name = path.rsplit('/').next().unwrap_or(path);
    patterns.into_iter().any(|p| {
        if p.contains('/') {
            let p = p.trim_start_matches("**/").trim_start_matches('/');
            // `config/*.yml` matches `config/a.yml` and `app/config/a.yml`.
            glob_match(p.as_bytes(), path.as_bytes())
                || path
                    .match_indices('/')
                    .any(|(i, _)| glob_match(p.as_bytes(), &path.as_bytes()[i + 1..]))
        } else {
            glob_match(p.as_bytes(), name.as_bytes())
        }
    })
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, text_rest)| t == c && glob_match(rest, text_rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::DEFAULT_PRIVATE_FILES;

    #[test]
    fn glob_matches_file_names() {
        assert!(matches_any("config/.env.local", [".env.*"]));
        assert!(matches_any("certs/server.pem", ["*.pem"]));
        assert!(!matches_any("src/envelope.py", [".env*"]));
        assert!(matches_any("app/.envrc", [".env*"]));
        assert!(!matches_any(
            "src/id_utils.py",
            DEFAULT_PRIVATE_FILES.iter().copied()
        ));
        assert!(matches_any(
            "home/.ssh/id_ed25519",
            DEFAULT_PRIVATE_FILES.iter().copied()
        ));
    }
}
