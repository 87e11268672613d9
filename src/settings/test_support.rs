//! Helpers shared by the settings tests.

use std::collections::HashMap;
use std::path::Path;

use super::*;

/// The prototype's config.yaml, shared with the CLI tests.
pub(crate) const PROTOTYPE: &str = include_str!("../../tests/fixtures/prototype-config.yaml");

/// The config block of the prototype's README (shorter than the file it ships).
pub(crate) const PROTOTYPE_README: &str =
    include_str!("../../tests/fixtures/prototype-readme-config.yaml");

/// A fake environment; tests never read the real one.
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

pub(crate) fn parse(text: &str) -> Result<(Settings, Vec<ConfigWarning>), ConfigError> {
    from_yaml_str(
        text,
        Path::new("config.yaml"),
        &env_of(&[("HOME", "/home/u")]),
    )
}

pub(crate) fn parse_ok(text: &str) -> Settings {
    match parse(text) {
        Ok((s, w)) => {
            assert!(w.is_empty(), "unexpected warnings: {w:?}");
            s
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub(crate) fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e,
    }
}

pub(crate) fn pos(line: u64, column: u64) -> Option<Position> {
    Some(Position { line, column })
}
