//! Checks that the hand-written mirrors of `crates/pyrpc-proto/src/raw.rs`
//! still have every field of the messages they mirror: a field added to
//! `proto/` but not to its mirror would be dropped silently by a raw decode.
//!
//! The mirrors are read as text: a `#[derive(.., Message)]` struct `Foo`
//! mirrors message `Foo`, and the `enum Kind` inside `mod foo` is the oneof of
//! message `Foo`. Their field numbers (`tag = "N"`) must be exactly the
//! message's field numbers in the compiled descriptor. A mirror whose protobuf
//! code is written by hand (no derive) says so with a `// prost-mirror` line
//! before its `#[derive(..)]`, and gives each field's number as a
//! `// tag = "N"` comment on its line.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use prost_types::FileDescriptorSet;

/// The mirrors file, relative to the workspace root.
pub(crate) const RAW_FILE: &str = "crates/pyrpc-proto/src/raw.rs";

/// Fails, naming the message and the missing or extra field numbers, when a
/// mirror in `raw_source` differs from its message in `fds`.
pub(crate) fn check(raw_source: &str, fds: &FileDescriptorSet) -> Result<()> {
    let mirrored = mirrored_tags(raw_source);
    if mirrored.is_empty() {
        bail!("{RAW_FILE}: found no mirrored messages (has the file's layout changed?)");
    }
    let mut problems = Vec::new();
    for (message, tags) in &mirrored {
        let Some(numbers) = message_numbers(fds, message) else {
            problems.push(format!("{message}: no such message in proto/"));
            continue;
        };
        let missing: Vec<_> = numbers.difference(tags).collect();
        let extra: Vec<_> = tags.difference(&numbers).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{message}: fields {missing:?} are not mirrored, mirrored tags {extra:?} are not in proto/"
            ));
        }
    }
    if !problems.is_empty() {
        bail!(
            "{RAW_FILE} no longer mirrors proto/pyrpc/v1/rpc.proto:\n  {}",
            problems.join("\n  ")
        );
    }
    println!(
        "codegen: {RAW_FILE} mirrors every field of {} messages",
        mirrored.len()
    );
    Ok(())
}

/// Message name -> the field numbers its mirror declares.
fn mirrored_tags(source: &str) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    // The message the lines being read belong to, if any.
    let mut current: Option<String> = None;
    let mut module: Option<String> = None;
    let mut derives_message = false;
    // A `// prost-mirror` line marks the next item as a mirror written by hand.
    let mut by_hand = false;
    for line in source.lines() {
        let line = line.trim();
        if line.starts_with("// prost-mirror") {
            by_hand = true;
        } else if line.starts_with("#[derive(") {
            derives_message = by_hand || line.contains("Message") || line.contains("Oneof");
            by_hand = false;
        } else if let Some(name) = word_after(line, "pub mod ") {
            module = Some(camel_case(name));
        } else if let Some(name) = word_after(line, "pub struct ") {
            current = derives_message.then(|| name.to_owned());
        } else if word_after(line, "pub enum ").is_some() {
            current = if derives_message {
                module.clone()
            } else {
                None
            };
        } else if line == "}" {
            current = None;
        } else if let (Some(message), Some(tag)) = (&current, tag_of(line)) {
            out.entry(message.clone()).or_default().insert(tag);
        }
    }
    out
}

/// The identifier after `prefix` at the start of `line`.
fn word_after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(prefix)?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|w| !w.is_empty())
}

/// `N` of a `#[prost(.., tag = "N")]` line (not a oneof's `tags = ".."`).
fn tag_of(line: &str) -> Option<i32> {
    let at = line.find("tag = \"")?;
    let rest = &line[at + "tag = \"".len()..];
    rest[..rest.find('"')?].parse().ok()
}

/// `client_frame` -> `ClientFrame`.
fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

/// The field numbers of top-level message `name` in `fds`.
fn message_numbers(fds: &FileDescriptorSet, name: &str) -> Option<BTreeSet<i32>> {
    fds.file
        .iter()
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == name)
        .map(|m| m.field.iter().map(|f| f.number()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIRROR: &str = r#"
/// Doc.
#[derive(Clone, PartialEq, Message)]
pub struct Call {
    #[prost(string, tag = "1")]
    pub method: String,
    #[prost(oneof = "call::Kind", tags = "2, 3")]
    pub kind: Option<call::Kind>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotAMessage {
    /// tag = "9" in a comment of a plain struct is not a field.
    pub x: u32,
}

pub mod call {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "2")]
        A(A),
        #[prost(bytes = "bytes", tag = "3")]
        B(Bytes),
    }
}
"#;

    #[test]
    fn reads_struct_fields_and_oneof_variants_as_one_message() {
        let tags = mirrored_tags(MIRROR);
        assert_eq!(tags.len(), 1, "{tags:?}");
        assert_eq!(tags["Call"], BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn a_mirror_written_by_hand_counts_its_tag_comments() {
        let source = r#"
// prost-mirror: by hand.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: u64, // tag = "1"
    pub value: Bytes, // tag = "2"
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plain {
    pub x: u32, // tag = "3"
}
"#;
        let tags = mirrored_tags(source);
        assert_eq!(tags.len(), 1, "{tags:?}");
        assert_eq!(tags["Item"], BTreeSet::from([1, 2]));
    }

    #[test]
    fn the_committed_mirrors_match_the_proto() -> Result<()> {
        let root = crate::util::project_root();
        let fds = protox::compile(["pyrpc/v1/rpc.proto"], [root.join("proto")])?;
        let source = std::fs::read_to_string(root.join(RAW_FILE))?;
        check(&source, &fds)?;
        // And a mirror missing a field is caught.
        let stale = source.replace("#[prost(uint32, tag = \"5\")]", "");
        let err = check(&stale, &fds).expect_err("a dropped field is noticed");
        assert!(err.to_string().contains("Call: fields [5]"), "{err}");
        // So is a variant missing from a oneof written by hand.
        let stale = source.replace("StreamEnd(wire::StreamEnd), // tag = \"8\"", "");
        let err = check(&stale, &fds).expect_err("a dropped variant is noticed");
        assert!(err.to_string().contains("Response: fields [8]"), "{err}");
        Ok(())
    }
}
