//! How values are read: a null or an empty string means the default, lists must be lists,
//! durations are seconds, `failure_prompts` merges into the defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serializer};

use super::*;

/// A section written as `teacher:` with nothing below it is YAML null; treat
/// it as "all defaults" rather than a type error, since that is what people
/// mean when they comment out every key of a section.
pub(super) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

pub(super) fn failure_sources_or_default<'de, D>(
    deserializer: D,
) -> Result<Vec<FailureSource>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(mut sources) = Option::<Vec<FailureSource>>::deserialize(deserializer)? else {
        return Ok(default_failure_sources());
    };
    for source in &mut sources {
        if source.kind.is_empty()
            && let Some((_, kind)) = KNOWN_FAILURE_SOURCES
                .iter()
                .find(|(name, _)| *name == source.name)
        {
            source.kind = (*kind).to_string();
        }
    }
    Ok(sources)
}

pub(super) fn failure_prompts_merged<'de, D>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let mut prompts = default_failure_prompts();
    if let Some(given) = Option::<BTreeMap<String, String>>::deserialize(deserializer)? {
        prompts.extend(given);
    }
    Ok(prompts)
}

/// Empty strings mean "unset": the prototype's users write `key: ""` for that.
pub(super) fn non_empty_opt<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.trim().is_empty()))
}

pub(super) fn non_empty_path<'de, D>(deserializer: D) -> Result<Option<PathBuf>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(non_empty_opt(deserializer)?.map(PathBuf::from))
}

/// A list of paths, written like [`string_list`].
pub(super) fn path_list<'de, D>(deserializer: D) -> Result<Vec<PathBuf>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(string_list(deserializer)?
        .into_iter()
        .map(PathBuf::from)
        .collect())
}

/// A list of strings; a single string is refused because splitting it
/// shell-style would guess at quoting the user never wrote.
pub(super) fn string_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(items)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(E::custom(format!(
                "expected a list of strings, found the single string {v:?}; \
                 write one item per entry, e.g. [\"--verbose\", \"--debug\"]"
            )))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }

    deserializer.deserialize_any(ListVisitor)
}

/// Durations are written as seconds; integers are the norm, floats are
/// accepted because the prototype's YAML allowed them.
pub(super) mod seconds {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole seconds print as integers so the effective settings look
        // like what users write.
        if value.subsec_nanos() == 0 {
            serializer.serialize_u64(value.as_secs())
        } else {
            serializer.serialize_f64(value.as_secs_f64())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct SecondsVisitor;

        impl Visitor<'_> for SecondsVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("expected a number of seconds, found {v}")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("expected a number of seconds, found {v}")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a number of seconds, e.g. 120, found {v:?}"
                )))
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}
