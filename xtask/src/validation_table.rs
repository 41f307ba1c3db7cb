//! Generates `tests/data/validation_table.json`: for every operation of the Kinesis service
//! model and every constraint on a member of its input (required, min/max length, min/max
//! value, pattern, enum; nested structures, list entries and map keys/values included), one
//! request body that breaks that constraint while every other member is valid, with the
//! `ValidationException` message AWS answers.
//!
//! The expected messages are computed here from the model and AWS's documented wording,
//! independently of the server's generated validator (`codegen::validate`), so the test
//! `tests/validation_table.rs` can catch a mistake in either. The wording, with sources
//! (`compat-tests/AWS_BEHAVIOUR.md` §2):
//! - `{n} validation error(s) detected: ` then the violations joined by `; `, no final period
//!   (kinesalite test/*.js, recorded against AWS).
//! - A violation: `Value {v} at '{path}' failed to satisfy constraint: {constraint}`; `{v}`
//!   is `null` for a missing member, else the value in single quotes (strings verbatim,
//!   integers in decimal, blobs as `java.nio.HeapByteBuffer[pos=0 lim=N cap=N]`, lists as
//!   `[a, b]`, maps as `{k=v}`, structures as Java's `Object.toString`,
//!   `com.amazonaws.kinesis.v20131202.<Shape>@<hash>`; the hash is not reproducible, the
//!   test masks it).
//! - Paths: member names with a lower-case first letter joined by `.`, list entries as
//!   `records.1.member.partitionKey` (1-based) (kinesalite test/putRecords.js).
//! - Constraints: `Member must not be null`, `Member must have length less than or equal
//!   to N` / `greater than or equal to N` (characters, bytes, entries), `Member must have
//!   value ...` for numbers, `Member must satisfy regular expression pattern: <model
//!   pattern as is>`, `Member must satisfy enum value set: [<values>]`.
//! - Entries of a list of scalars, and keys and values of a map, are reported once for the
//!   whole collection: `Member must satisfy constraint: [...]`, `Map keys must satisfy
//!   constraint: [...]`, `Map value must satisfy constraint: [...]`, listing the entry
//!   shape's constraints max, min (kinesalite test/addTagsToStream.js 'long tag key', 'long
//!   tag value': `[Member must have length less than or equal to 256, Member must have
//!   length greater than or equal to 0]`), then pattern, then enum (NOT PINNED for Kinesis;
//!   the order moto and localstack quote from other AWS services).
//!
//! When a value cannot break one constraint alone (an empty `StreamName` also fails its
//! pattern; 25 characters cannot match `StreamId`'s fixed-length pattern), the case lists
//! every violation and the test compares them as a set (AWS's order between violations is
//! not stable: kinesalite's current tests compare sets).
//!
//! Not generated: a list longer than [`MAX_GENERATED_ENTRIES`] (the model's 10000-entry
//! lists). AWS prints such a list whole in the message; the broker caps what it prints at
//! 1000 entries on purpose (`validate.rs`, `MAX_RENDERED_ENTRIES`), and the request would
//! be megabytes of JSON. Those constraints are listed in `skipped` in the file.
//!
//! Compact encodings, expanded by the test: in bodies, `{"$pad": [prefix, ch, len]}` is the
//! string `prefix` padded with `ch` to `len` characters, `{"$blob": n}` the base64 of `n`
//! zero bytes, `{"$repeat": [value, n]}` an array of `n` copies; in messages, a segment is
//! a string, a `$pad`, or `{"$join": [item, sep, n]}` (`n` copies of `item` joined by
//! `sep`).

use crate::codegen::model::{Model, Shape};
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;

/// The table, relative to the workspace root.
pub const TABLE_PATH: &str = "tests/data/validation_table.json";

/// Lists are generated up to this many entries (see the module doc).
const MAX_GENERATED_ENTRIES: i64 = 1000;

/// AWS's own order of enum values in `Member must satisfy enum value set: [...]`, where a
/// recording of AWS pins it; other enums are printed in the model's order (NOT PINNED).
const AWS_ENUM_ORDER: &[(&str, &[&str])] = &[(
    "ShardIteratorType",
    // kinesalite test/getShardIterator.js 'should return ValidationException for empty
    // StreamName' (recorded against AWS).
    &[
        "AFTER_SEQUENCE_NUMBER",
        "LATEST",
        "AT_TIMESTAMP",
        "AT_SEQUENCE_NUMBER",
        "TRIM_HORIZON",
    ],
)];

/// Hand-picked values for every string shape with a pattern: one that matches, one of a
/// valid length that does not, the character that pads the valid one to any length while
/// still matching (`None`: longer values fail the pattern too), and whether a value shorter
/// than `min` can still match.
struct PatternSpec {
    shape: &'static str,
    good: &'static str,
    bad: &'static str,
    pad: Option<char>,
    short_matches: bool,
}

const ARN_STREAM: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";

const PATTERNS: &[PatternSpec] = &[
    PatternSpec {
        shape: "StreamName",
        good: "s",
        bad: "s!",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "ChannelName",
        good: "c",
        bad: "c!",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "QueueName",
        good: "q",
        bad: "q!",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "ConsumerName",
        good: "c",
        bad: "c!",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "ShardId",
        good: "shardId-000000000000",
        bad: "shardId 0",
        pad: Some('0'),
        short_matches: false,
    },
    PatternSpec {
        shape: "StreamARN",
        good: ARN_STREAM,
        bad: "arn:aws:kinesis:us-east-1:000000000000:table/s",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "ResourceARN",
        good: ARN_STREAM,
        bad: "arn:aws:kinesis:us-east-1:000000000000:table/s",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "QueueARN",
        good: "arn:aws:kinesis:us-east-1:000000000000:queue/q",
        bad: ARN_STREAM,
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "ChannelARN",
        good: "arn:aws:kinesis:us-east-1:000000000000:channel/c",
        bad: ARN_STREAM,
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "ConsumerARN",
        good: "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1",
        bad: "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c",
        pad: Some('1'),
        short_matches: false,
    },
    PatternSpec {
        shape: "StreamId",
        good: "abcdefghij0123456789-abc",
        bad: "ABCDEFGHIJ0123456789-ABC",
        pad: None,
        short_matches: false,
    },
    PatternSpec {
        shape: "HashKey",
        good: "0",
        bad: "01",
        pad: Some('0'),
        short_matches: false,
    },
    PatternSpec {
        shape: "SequenceNumber",
        good: "0",
        bad: "abc",
        pad: Some('0'),
        short_matches: false,
    },
    PatternSpec {
        shape: "RoleARN",
        good: "arn:aws:iam::000000000000:role/r",
        bad: "arn:aws:iam::000000000000:user/r",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "BucketARN",
        good: "arn:aws:s3:::bkt",
        bad: "arn:aws:s3:::B",
        pad: None,
        short_matches: false,
    },
    PatternSpec {
        shape: "TableBucketARN",
        good: "arn:aws:s3tables:us-east-1:000000000000:bucket/bkt",
        bad: "arn:aws:s3tables:us-east-1:000000000000:bucket/B",
        pad: None,
        short_matches: false,
    },
    PatternSpec {
        shape: "GSRSchemaARN",
        good: "arn:aws:glue:us-east-1:000000000000:schema/r/s",
        bad: "arn:aws:glue:us-east-1:000000000000:schema/s",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "CloudWatchLogGroupName",
        good: "g",
        bad: "g!",
        pad: Some('a'),
        short_matches: false,
    },
    // `[^:*]*` matches the empty string: an empty name breaks only the minimum length.
    PatternSpec {
        shape: "CloudWatchLogStreamName",
        good: "s",
        bad: "s:",
        pad: Some('a'),
        short_matches: true,
    },
    PatternSpec {
        shape: "ExpectedBucketOwner",
        good: "000000000000",
        bad: "00000000000a",
        pad: None,
        short_matches: false,
    },
    PatternSpec {
        shape: "PartitionSourceName",
        good: "p",
        bad: "p!",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "S3ErrorOutputPrefix",
        good: "p",
        bad: "p#",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "S3OutputKeyTemplate",
        good: "k",
        bad: "k#",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "S3TablesNamespace",
        good: "n",
        bad: "N",
        pad: Some('a'),
        short_matches: false,
    },
    PatternSpec {
        shape: "S3TablesTableName",
        good: "t",
        bad: "T",
        pad: Some('a'),
        short_matches: false,
    },
];

/// A piece of an expected message.
#[derive(Clone)]
enum Seg {
    Text(String),
    Pad(String, char, i64),
    Join(String, String, i64),
}

impl Seg {
    fn json(&self) -> Value {
        match self {
            Seg::Text(s) => json!(s),
            Seg::Pad(p, c, n) => json!({"$pad": [p, c.to_string(), n]}),
            Seg::Join(item, sep, n) => json!({"$join": [item, sep, n]}),
        }
    }
}

fn text(s: impl Into<String>) -> Vec<Seg> {
    vec![Seg::Text(s.into())]
}

/// A value for a body, and how AWS prints it (`None`: printed as `null`).
#[derive(Clone)]
struct Val {
    body: Value,
    shown: Vec<Seg>,
}

/// One violation: the printed value (None = null), the path, the constraint text.
struct Violation {
    shown: Option<Vec<Seg>>,
    path: String,
    constraint: String,
}

impl Violation {
    fn segs(&self) -> Vec<Seg> {
        let mut out = text("Value ");
        match &self.shown {
            None => out.push(Seg::Text("null".into())),
            Some(v) => {
                out.push(Seg::Text("'".into()));
                out.extend(v.iter().cloned());
                out.push(Seg::Text("'".into()));
            }
        }
        out.push(Seg::Text(format!(
            " at '{}' failed to satisfy constraint: {}",
            self.path, self.constraint
        )));
        merge(out)
    }
}

/// Joins adjacent text segments.
fn merge(segs: Vec<Seg>) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::new();
    for s in segs {
        match (out.last_mut(), &s) {
            (Some(Seg::Text(a)), Seg::Text(b)) => a.push_str(b),
            _ => out.push(s),
        }
    }
    out
}

struct Gen<'m> {
    model: &'m Model,
    cases: Vec<Value>,
    skipped: Vec<String>,
    op: String,
}

fn lower_first(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn pattern_spec(shape: &str) -> &'static PatternSpec {
    PATTERNS
        .iter()
        .find(|p| p.shape == shape)
        .unwrap_or_else(|| panic!("string shape {shape} has a pattern but no entry in PATTERNS"))
}

fn enum_values(name: &str, shape: &Shape) -> Vec<String> {
    let model_values = shape.enum_values.clone().expect("enum");
    match AWS_ENUM_ORDER.iter().find(|(n, _)| *n == name) {
        Some((_, order)) => {
            let mut a: Vec<&str> = order.to_vec();
            let mut b: Vec<&str> = model_values.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            assert_eq!(
                a, b,
                "AWS_ENUM_ORDER of {name} is no permutation of the model's values"
            );
            order.iter().map(|s| s.to_string()).collect()
        }
        None => model_values,
    }
}

/// The constraints of a scalar shape as listed inside `[...]` for collection entries.
fn bracket_constraints(name: &str, shape: &Shape) -> String {
    let unit = if matches!(shape.ty.as_str(), "integer" | "long") {
        "value"
    } else {
        "length"
    };
    let mut out = Vec::new();
    if let Some(max) = shape.max {
        out.push(format!(
            "Member must have {unit} less than or equal to {max}"
        ));
    }
    if let Some(min) = shape.min {
        out.push(format!(
            "Member must have {unit} greater than or equal to {min}"
        ));
    }
    if let Some(p) = &shape.pattern {
        out.push(format!(
            "Member must satisfy regular expression pattern: {p}"
        ));
    }
    if shape.enum_values.is_some() {
        out.push(format!(
            "Member must satisfy enum value set: [{}]",
            enum_values(name, shape).join(", ")
        ));
    }
    out.join(", ")
}

fn has_constraints(shape: &Shape) -> bool {
    shape.min.is_some()
        || shape.max.is_some()
        || shape.pattern.is_some()
        || shape.enum_values.is_some()
}

/// A string of `len` characters built from a valid value and the shape's pad character.
fn padded(good: &str, pad: char, len: i64) -> Val {
    let good_len = good.chars().count() as i64;
    if len <= good_len {
        let s: String = good.chars().take(len as usize).collect();
        return Val {
            body: json!(s),
            shown: text(s),
        };
    }
    if len <= 300 {
        let s = format!(
            "{good}{}",
            pad.to_string().repeat((len - good_len) as usize)
        );
        return Val {
            body: json!(s),
            shown: text(s),
        };
    }
    Val {
        body: json!({"$pad": [good, pad.to_string(), len]}),
        shown: vec![Seg::Pad(good.to_string(), pad, len)],
    }
}

fn string_val(s: &str) -> Val {
    Val {
        body: json!(s),
        shown: text(s),
    }
}

impl<'m> Gen<'m> {
    fn shape(&self, name: &str) -> &'m Shape {
        self.model.shape(name)
    }

    /// A valid value of a shape: required members only, minimal collections.
    fn valid(&self, name: &str) -> Val {
        let s = self.shape(name);
        match s.ty.as_str() {
            "string" => {
                if let Some(values) = &s.enum_values {
                    return string_val(&values[0]);
                }
                if s.pattern.is_some() {
                    return string_val(pattern_spec(name).good);
                }
                let len = s.min.unwrap_or(1).max(1);
                string_val(&"x".repeat(len as usize))
            }
            "integer" | "long" => {
                let v = s.min.unwrap_or(1).max(s.min.unwrap_or(i64::MIN));
                let v = match s.max {
                    Some(max) if v > max => max,
                    _ => v,
                };
                Val {
                    body: json!(v),
                    shown: text(v.to_string()),
                }
            }
            "blob" => {
                let n = s.min.unwrap_or(0);
                self.blob(n)
            }
            "boolean" => Val {
                body: json!(true),
                shown: text("true"),
            },
            "timestamp" => Val {
                body: json!(1_764_028_800),
                shown: text("Tue Nov 25 00:00:00 UTC 2025"),
            },
            "list" => {
                let member = &s.member.as_ref().unwrap().shape;
                let n = s.min.unwrap_or(0).max(1);
                self.list_of(member, n)
            }
            "map" => {
                let k = self.valid(&s.key.as_ref().unwrap().shape);
                let v = self.valid(&s.value.as_ref().unwrap().shape);
                let key = k.body.as_str().expect("string map key").to_string();
                let mut m = serde_json::Map::new();
                m.insert(key.clone(), v.body.clone());
                let mut shown = text(format!("{{{key}="));
                shown.extend(v.shown);
                shown.push(Seg::Text("}".into()));
                Val {
                    body: Value::Object(m),
                    shown: merge(shown),
                }
            }
            "structure" => {
                let mut m = serde_json::Map::new();
                for r in &s.required {
                    let member = s.members.get(r).unwrap();
                    m.insert(r.clone(), self.valid(&member.shape).body);
                }
                Val {
                    body: Value::Object(m),
                    shown: text(struct_string(name)),
                }
            }
            other => panic!("{name}: unexpected type {other}"),
        }
    }

    fn blob(&self, n: i64) -> Val {
        let shown = text(format!("java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]"));
        if n <= 30 {
            let bytes = vec![0u8; n as usize];
            Val {
                body: json!(base64(&bytes)),
                shown,
            }
        } else {
            Val {
                body: json!({"$blob": n}),
                shown,
            }
        }
    }

    /// A list of `n` valid entries of `member`.
    fn list_of(&self, member: &str, n: i64) -> Val {
        let item = self.valid(member);
        let item_text = match item.shown.as_slice() {
            [Seg::Text(t)] => t.clone(),
            _ => panic!("list entries of {member} print as plain text"),
        };
        if n <= 20 {
            let body = Value::Array(vec![item.body.clone(); n as usize]);
            let shown = format!("[{}]", vec![item_text; n as usize].join(", "));
            Val {
                body,
                shown: text(shown),
            }
        } else {
            Val {
                body: json!({"$repeat": [item.body, n]}),
                shown: vec![
                    Seg::Text("[".into()),
                    Seg::Join(item_text, ", ".into(), n),
                    Seg::Text("]".into()),
                ],
            }
        }
    }

    /// Values of scalar shape `name` that break its constraints, each with the list of
    /// constraint texts it breaks.
    fn bad_scalars(&self, name: &str) -> Vec<(String, Val, Vec<String>)> {
        let s = self.shape(name);
        let mut out = Vec::new();
        let len_min = |m: i64| format!("Member must have length greater than or equal to {m}");
        let len_max = |m: i64| format!("Member must have length less than or equal to {m}");
        match s.ty.as_str() {
            "string" if s.enum_values.is_some() => {
                out.push((
                    "enum".into(),
                    string_val("NOT_A_VALUE"),
                    vec![format!(
                        "Member must satisfy enum value set: [{}]",
                        enum_values(name, s).join(", ")
                    )],
                ));
            }
            "string" => {
                let spec = s.pattern.as_ref().map(|_| pattern_spec(name));
                let pattern_text = s
                    .pattern
                    .as_ref()
                    .map(|p| format!("Member must satisfy regular expression pattern: {p}"));
                if let (Some(spec), Some(pt)) = (spec, &pattern_text) {
                    out.push(("pattern".into(), string_val(spec.bad), vec![pt.clone()]));
                }
                if let Some(min) = s.min.filter(|&m| m > 0) {
                    let good = spec.map(|p| p.good).unwrap_or("x");
                    let v = padded(good, spec.and_then(|p| p.pad).unwrap_or('x'), min - 1);
                    let mut broken = Vec::new();
                    if let (Some(spec), Some(pt)) = (spec, &pattern_text)
                        && !spec.short_matches
                    {
                        broken.push(pt.clone());
                    }
                    broken.push(len_min(min));
                    out.push((format!("min length {min}"), v, broken));
                }
                if let Some(max) = s.max {
                    let (good, pad) = match spec {
                        Some(p) => (p.good, p.pad.unwrap_or('a')),
                        None => ("x", 'x'),
                    };
                    let v = padded(good, pad, max + 1);
                    let mut broken = Vec::new();
                    if let (Some(spec), Some(pt)) = (spec, &pattern_text)
                        && spec.pad.is_none()
                    {
                        broken.push(pt.clone());
                    }
                    broken.push(len_max(max));
                    out.push((format!("max length {max}"), v, broken));
                }
            }
            "integer" | "long" => {
                if let Some(min) = s.min {
                    let v = min - 1;
                    out.push((
                        format!("min value {min}"),
                        Val {
                            body: json!(v),
                            shown: text(v.to_string()),
                        },
                        vec![format!(
                            "Member must have value greater than or equal to {min}"
                        )],
                    ));
                }
                if let Some(max) = s.max {
                    let v = max + 1;
                    out.push((
                        format!("max value {max}"),
                        Val {
                            body: json!(v),
                            shown: text(v.to_string()),
                        },
                        vec![format!(
                            "Member must have value less than or equal to {max}"
                        )],
                    ));
                }
            }
            "blob" => {
                if let Some(min) = s.min.filter(|&m| m > 0) {
                    out.push((
                        format!("min length {min}"),
                        self.blob(min - 1),
                        vec![len_min(min)],
                    ));
                }
                if let Some(max) = s.max {
                    out.push((
                        format!("max length {max}"),
                        self.blob(max + 1),
                        vec![len_max(max)],
                    ));
                }
            }
            "boolean" | "timestamp" => {}
            other => panic!("{name}: no scalar violations for type {other}"),
        }
        out
    }

    /// Emits the cases for every member of structure `name`, located at `prefix` (`""` at
    /// the root, else `"path."`); `wrap` turns a value of this structure into a whole body.
    fn structure(&mut self, name: &str, prefix: &str, wrap: &dyn Fn(Value) -> Value) {
        let s = self.shape(name);
        let base = match self.valid(name).body {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        for (member, mref) in s.members.iter() {
            let path = format!("{prefix}{}", lower_first(member));
            let with = |v: Option<Value>| {
                let mut m = base.clone();
                match v {
                    Some(v) => {
                        m.insert(member.to_string(), v);
                    }
                    None => {
                        m.remove(member);
                    }
                }
                wrap(Value::Object(m))
            };
            if s.required.iter().any(|r| r == member) {
                let body = with(None);
                self.push(
                    format!("{path}: required"),
                    body,
                    vec![Violation {
                        shown: None,
                        path: path.clone(),
                        constraint: "Member must not be null".into(),
                    }],
                );
            }
            let t = self.shape(&mref.shape);
            match t.ty.as_str() {
                "structure" => {
                    let inner_prefix = format!("{path}.");
                    let wrap2 = |v: Value| with(Some(v));
                    self.structure(&mref.shape, &inner_prefix, &wrap2);
                }
                "list" => self.list(&mref.shape, &path, &|v| with(Some(v))),
                "map" => self.map(&mref.shape, &path, &|v| with(Some(v))),
                _ => {
                    for (what, v, broken) in self.bad_scalars(&mref.shape) {
                        let body = with(Some(v.body.clone()));
                        let violations = broken
                            .into_iter()
                            .map(|c| Violation {
                                shown: Some(v.shown.clone()),
                                path: path.clone(),
                                constraint: c,
                            })
                            .collect();
                        self.push(format!("{path}: {what}"), body, violations);
                    }
                }
            }
        }
    }

    fn list(&mut self, name: &str, path: &str, wrap: &dyn Fn(Value) -> Value) {
        let s = self.shape(name);
        let member = s.member.as_ref().unwrap().shape.clone();
        if let Some(min) = s.min.filter(|&m| m > 0) {
            let v = self.list_of(&member, min - 1);
            self.push(
                format!("{path}: min length {min}"),
                wrap(v.body),
                vec![Violation {
                    shown: Some(v.shown),
                    path: path.to_string(),
                    constraint: format!("Member must have length greater than or equal to {min}"),
                }],
            );
        }
        if let Some(max) = s.max {
            if max + 1 > MAX_GENERATED_ENTRIES {
                self.skipped.push(format!(
                    "{} {path}: max length {max} (the broker prints at most 1000 entries; AWS prints all)",
                    self.op
                ));
            } else {
                let v = self.list_of(&member, max + 1);
                self.push(
                    format!("{path}: max length {max}"),
                    wrap(v.body),
                    vec![Violation {
                        shown: Some(v.shown),
                        path: path.to_string(),
                        constraint: format!("Member must have length less than or equal to {max}"),
                    }],
                );
            }
        }
        let m = self.shape(&member);
        match m.ty.as_str() {
            "structure" => {
                let prefix = format!("{path}.1.member.");
                let n = s.min.unwrap_or(0).max(1) as usize;
                let rest = self.valid(&member).body;
                let wrap2 = |v: Value| {
                    let mut items = vec![v];
                    items.extend(std::iter::repeat_n(rest.clone(), n - 1));
                    wrap(Value::Array(items))
                };
                self.structure(&member, &prefix, &wrap2);
            }
            "list" | "map" => panic!("{name}: nested collections are not expected in inputs"),
            _ if has_constraints(m) => {
                let constraint = format!(
                    "Member must satisfy constraint: [{}]",
                    bracket_constraints(&member, m)
                );
                for (what, v, _) in self.bad_scalars(&member) {
                    let shown = merge([text("["), v.shown.clone(), text("]")].concat());
                    self.push(
                        format!("{path}: entry {what}"),
                        wrap(Value::Array(vec![v.body])),
                        vec![Violation {
                            shown: Some(shown),
                            path: path.to_string(),
                            constraint: constraint.clone(),
                        }],
                    );
                }
            }
            _ => {}
        }
    }

    fn map(&mut self, name: &str, path: &str, wrap: &dyn Fn(Value) -> Value) {
        let s = self.shape(name);
        let kname = s.key.as_ref().unwrap().shape.clone();
        let vname = s.value.as_ref().unwrap().shape.clone();
        let value = self.valid(&vname);
        let value_text = match value.shown.as_slice() {
            [Seg::Text(t)] => t.clone(),
            _ => panic!("map values of {name} print as plain text"),
        };
        // `n` entries with distinct keys, printed in key order (NOT PINNED: AWS prints its
        // map's iteration order; kinesalite's tests accept any order).
        let entries = |n: i64| {
            let width = (n.max(1) as f64).log10().floor() as usize + 1;
            let mut m = serde_json::Map::new();
            let mut shown = Vec::new();
            for i in 0..n {
                let k = format!("k{i:0width$}");
                m.insert(k.clone(), value.body.clone());
                shown.push(format!("{k}={value_text}"));
            }
            (Value::Object(m), format!("{{{}}}", shown.join(", ")))
        };
        if let Some(min) = s.min.filter(|&m| m > 0) {
            let (body, shown) = entries(min - 1);
            self.push(
                format!("{path}: min length {min}"),
                wrap(body),
                vec![Violation {
                    shown: Some(text(shown)),
                    path: path.to_string(),
                    constraint: format!("Member must have length greater than or equal to {min}"),
                }],
            );
        }
        if let Some(max) = s.max {
            let (body, shown) = entries(max + 1);
            self.push(
                format!("{path}: max length {max}"),
                wrap(body),
                vec![Violation {
                    shown: Some(text(shown)),
                    path: path.to_string(),
                    constraint: format!("Member must have length less than or equal to {max}"),
                }],
            );
        }
        let kshape = self.shape(&kname);
        if has_constraints(kshape) {
            let constraint = format!(
                "Map keys must satisfy constraint: [{}]",
                bracket_constraints(&kname, kshape)
            );
            for (what, k, _) in self.bad_scalars(&kname) {
                let key = k.body.as_str().expect("plain string key").to_string();
                let mut m = serde_json::Map::new();
                m.insert(key.clone(), value.body.clone());
                self.push(
                    format!("{path}: key {what}"),
                    wrap(Value::Object(m)),
                    vec![Violation {
                        shown: Some(text(format!("{{{key}={value_text}}}"))),
                        path: path.to_string(),
                        constraint: constraint.clone(),
                    }],
                );
            }
        }
        let vshape = self.shape(&vname);
        if has_constraints(vshape) {
            let constraint = format!(
                "Map value must satisfy constraint: [{}]",
                bracket_constraints(&vname, vshape)
            );
            for (what, v, _) in self.bad_scalars(&vname) {
                let val = v.body.as_str().expect("plain string value").to_string();
                let mut m = serde_json::Map::new();
                m.insert("k".into(), json!(val));
                self.push(
                    format!("{path}: value {what}"),
                    wrap(Value::Object(m)),
                    vec![Violation {
                        shown: Some(text(format!("{{k={val}}}"))),
                        path: path.to_string(),
                        constraint: constraint.clone(),
                    }],
                );
            }
        }
    }

    fn push(&mut self, case: String, body: Value, violations: Vec<Violation>) {
        let v: Vec<Value> = violations
            .iter()
            .map(|v| Value::Array(v.segs().iter().map(Seg::json).collect()))
            .collect();
        self.cases.push(json!({
            "operation": self.op,
            "case": case,
            "body": body,
            "violations": v,
        }));
    }
}

fn struct_string(name: &str) -> String {
    format!("com.amazonaws.kinesis.v20131202.{name}@{{hash}}")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The table as committed: one case per line, so a model change shows as a readable diff.
pub fn render(model: &Model) -> String {
    let mut g = Gen {
        model,
        cases: Vec::new(),
        skipped: Vec::new(),
        op: String::new(),
    };
    for (name, op) in model.operations.iter() {
        g.op = name.to_string();
        let input = &op.input.as_ref().expect("input").shape;
        g.structure(input, "", &|v| v);
    }
    let mut s = String::from(
        "{\n\"generator\": \"xtask::validation_table (cargo run -p xtask -- codegen)\",\n\"skipped\": [\n",
    );
    let skipped: Vec<String> = g
        .skipped
        .iter()
        .map(|x| serde_json::to_string(x).unwrap())
        .collect();
    s.push_str(&skipped.join(",\n"));
    s.push_str("\n],\n\"cases\": [\n");
    let cases: Vec<String> = g
        .cases
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    s.push_str(&cases.join(",\n"));
    s.push_str("\n]\n}\n");
    s
}

/// Writes the table (or, with `check`, reports whether the committed one is current).
pub fn run(root: &Path, model_path: &Path, check: bool) -> ExitCode {
    let model = Model::load(model_path);
    let text = render(&model);
    let path = root.join(TABLE_PATH);
    let old = std::fs::read_to_string(&path).ok();
    if old.as_deref() == Some(text.as_str()) {
        if check {
            println!("{TABLE_PATH} is up to date");
        }
        return ExitCode::SUCCESS;
    }
    if check {
        eprintln!(
            "out of date: {} (run `cargo run -p xtask -- codegen`)",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create tests/data");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn lower_first_keeps_the_rest() {
        assert_eq!(lower_first("StreamARN"), "streamARN");
        assert_eq!(lower_first("MaxRecordSizeInKiB"), "maxRecordSizeInKiB");
    }
}
