//! TOML to config types, reporting every error rather than the first.
//!
//! The `toml` crate stops at the first error. An operator fixing a config one error per run
//! wastes a maintenance window, so on failure the document is deserialized again in parts
//! (each top-level table, each of its keys, each `[[sites]]` entry), and each part's error is
//! reported with its line.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeString, DeTable, DeValue, ValueDeserializer};

/// Parses `text` as `T`; on failure, every syntax error, or else every error of a part.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Vec<toml::de::Error>> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax);
    }
    let whole = match T::deserialize(toml::de::Deserializer::from(root.clone())) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let mut errors: Vec<toml::de::Error> = Vec::new();
    for (key, value) in root.get_ref() {
        for error in part_errors::<T>(key, value) {
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
    }
    if errors.is_empty() {
        errors.push(whole);
    }
    errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    for error in &mut errors {
        error.set_input(Some(text));
    }
    Err(errors)
}

/// The errors of one top-level entry: per `[[array]]` element, and per key of a table.
fn part_errors<T: DeserializeOwned>(key: &Spanned<DeString<'_>>, value: &Spanned<DeValue<'_>>) -> Vec<toml::de::Error> {
    let try_part = |value: Spanned<DeValue<'_>>| T::deserialize(value_deserializer(single(key, value))).err();
    match value.get_ref() {
        DeValue::Array(items) if items.iter().all(|item| item.get_ref().as_table().is_some()) => items
            .iter()
            .filter_map(|item| {
                let mut array = DeArray::new();
                array.push(item.clone());
                try_part(Spanned::new(value.span(), DeValue::Array(array)))
            })
            .collect(),
        DeValue::Table(table) => {
            let Some(whole) = try_part(value.clone()) else { return Vec::new() };
            // Per key, so a wrong type and an unknown key in one table are both reported. A part
            // lacks the table's other keys: "missing field" errors there are artefacts.
            let per_key: Vec<_> = table
                .iter()
                .filter_map(|(k, v)| try_part(Spanned::new(value.span(), single(k, v.clone()).into_inner())))
                .filter(|e| !e.message().starts_with("missing field"))
                .collect();
            if per_key.is_empty() { vec![whole] } else { per_key }
        }
        _ => try_part(value.clone()).into_iter().collect(),
    }
}

/// A table holding `key = value` only.
fn single<'i>(key: &Spanned<DeString<'i>>, value: Spanned<DeValue<'i>>) -> Spanned<DeValue<'i>> {
    let span = value.span();
    let mut table = DeTable::new();
    table.insert(key.clone(), value);
    Spanned::new(span, DeValue::Table(table))
}

fn value_deserializer(value: Spanned<DeValue<'_>>) -> ValueDeserializer<'_> {
    ValueDeserializer::from(value)
}
