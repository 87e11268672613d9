//! Small text helpers shared by the output parsers.

use std::path::Path;

/// Removes ANSI escape sequences (colours, cursor moves) and carriage returns.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte; OSC: ESC ] ... BEL or ESC \.
                match chars.peek() {
                    Some('[') => {
                        chars.next();
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    Some(']') => {
                        chars.next();
                        while let Some(c) = chars.next() {
                            if c == '\u{7}' {
                                break;
                            }
                            if c == '\u{1b}' {
                                chars.next();
                                break;
                            }
                        }
                    }
                    _ => {
                        chars.next();
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Removes the indentation all non-empty lines share.
pub fn dedent_block(lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rewrites absolute paths under `project_dir` (also as `file://` URLs) as relative ones.
pub fn relative_to(text: &str, project_dir: &Path) -> String {
    let dir = project_dir.display().to_string();
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() || dir == "." {
        return text.to_string();
    }
    text.replace(&format!("file://{dir}/"), "")
        .replace(&format!("{dir}/"), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours() {
        assert_eq!(clean("\u{1b}[32m- 3\u{1b}[39m\r"), "- 3");
        assert_eq!(clean("a\u{1b}]8;;http://x\u{7}b"), "ab");
    }

    #[test]
    fn dedents_and_relativises() {
        assert_eq!(
            dedent_block(&["    a", "      b", "", "    c"]),
            "a\n  b\n\nc"
        );
        assert_eq!(
            relative_to(
                "at f (/p/x/src/a.js:1:2) file:///p/x/b.js",
                Path::new("/p/x")
            ),
            "at f (src/a.js:1:2) b.js"
        );
    }
}
