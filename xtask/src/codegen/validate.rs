//! Emits `src/api/generated/validate.rs`: the constraint checks of every input structure,
//! reported in AWS's (Coral's) words.
//!
//! The rules and where each was found (kinesalite reproduces AWS's responses and its tests,
//! run against AWS with `REMOTE=1`, pin them):
//! - Message: `Value {v} at '{path}' failed to satisfy constraint: {constraint}`, with
//!   `{v}` = `null` for a missing value, else the value in single quotes; several joined by
//!   `"; "` after `"{n} validation error(s) detected: "` (kinesalite validations/index.js
//!   `validate` and `checkValidations`; test/putRecords.js, test/createStream.js).
//! - Every violation is listed, several per member too (an empty stream name gives both the
//!   pattern and the min-length violation: kinesalite test/putRecords.js 'empty StreamName');
//!   at most 10 are reported and the count says 10 (kinesalite validations/index.js
//!   `errors.length >= 10`; test/putRecords.js 'too many records': 501 bad records → "10
//!   validation errors detected").
//! - Order: members in model order; within a member: not-null, pattern, min length, max
//!   length (kinesalite validations/*.js key order); for numbers min then max; a list's own
//!   length before its members. AWS's order between members is not stable (kinesalite's
//!   current tests match the messages as a set, test/helpers.js `assertValidation`).
//! - Paths: lowerCamel member names joined by `.`; list members as
//!   `records.1.member.partitionKey`, 1-based (validations/index.js `checkNonRequired`;
//!   test/putRecords.js; an AWS response quoted in the wild: `at 'records.1.member.data'`).
//! - Values: strings verbatim; numbers in decimal (`Value '0' at 'shardCount'`); blobs as
//!   `java.nio.HeapByteBuffer[pos=0 lim=N cap=N]`; lists as `[a, b]`; maps as `{k=v, k2=v2}`
//!   (validations/index.js `valueStr`); structures in a list as Java's `toString`,
//!   `com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310` (test/putRecords.js;
//!   the hash cannot be reproduced, kinesalite prints a constant and so do we).
//! - Constraints: `Member must not be null`, `Member must satisfy regular expression pattern:
//!   {model pattern}`, `Member must have length greater than or equal to {min}` / `less than
//!   or equal to {max}` (characters of strings, bytes of blobs, entries of lists and maps),
//!   `Member must have value greater than or equal to {min}` / `less than or equal to {max}`,
//!   `Member must satisfy enum value set: [{values}]` (validations/index.js `validateFns`).
//! - Members of a list of scalars and the keys/values of a map are not reported one by one:
//!   one violation on the collection, listing all the element shape's constraints:
//!   `Member must satisfy constraint: [Member must have length less than or equal to 128,
//!   Member must have length greater than or equal to 1]`, `Map keys must satisfy
//!   constraint: [...]`, `Map value must satisfy constraint: [...]` (validations/index.js
//!   `childLengths`, `childKeyLengths`, `childValueLengths`; test/addTagsToStream.js 'long
//!   tag key', 'long tag value'); inside the brackets max, min, pattern, enum (AWS responses
//!   for other Coral services quoted in moto/localstack: `[Member must have length less than
//!   or equal to 1024, Member must have length greater than or equal to 1, Member must
//!   satisfy regular expression pattern: [0-9]+]`).
//! - Patterns must match the whole value (`RegExp('^' + pattern + '$')` in kinesalite).

use super::ir::{Ir, Kind, Struct, Ty};
use super::model::Shape;
use super::util::{header, lit, snake};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Emission state: the pattern statics and element predicates already written.
struct Gen<'a, 'm> {
    ir: &'a Ir<'m>,
    /// shape → static name
    patterns: BTreeMap<String, String>,
    /// shape → (predicate fn name, bracketed constraints)
    predicates: BTreeMap<String, (String, String)>,
    /// Names of the [`HELPERS`] the predicates call.
    helpers: std::collections::BTreeSet<&'static str>,
    items: String,
}

pub fn codegen(ir: &Ir) -> String {
    let mut g = Gen {
        ir,
        patterns: BTreeMap::new(),
        predicates: BTreeMap::new(),
        helpers: Default::default(),
        items: String::new(),
    };
    let mut impls = String::new();
    for st in ir.structs.iter().filter(|s| s.kind == Kind::Input) {
        impls.push_str(&g.struct_impl(st));
    }
    let mut enum_consts = String::new();
    for e in &ir.enums {
        writeln!(
            enum_consts,
            "impl Render for {} {{\n    fn render(&self, out: &mut String) {{\n        out.push_str(self.as_str());\n    }}\n}}\n",
            e.name
        )
        .unwrap();
    }

    let mut s = header("xtask::codegen::validate::codegen");
    s.push_str(RUNTIME);
    s.push_str(
        "\n// Patterns of the model, each compiled once, matched against the whole value.\n\n",
    );
    for (shape, name) in &g.patterns {
        let pattern = g.ir.model.shape(shape).pattern.as_ref().expect("pattern");
        let chars = match char_class(pattern) {
            Some((allowed, non_empty)) => {
                format!("Some(Repeated {{ allowed: |c| {allowed}, non_empty: {non_empty} }})")
            }
            None => "None".into(),
        };
        writeln!(
            s,
            "static {name}: Pattern = Pattern {{\n    regex: LazyLock::new(|| Regex::new({}).expect(\"model pattern compiles (tested)\")),\n    repeated: {chars},\n}};",
            lit(&format!("^(?:{pattern})$"))
        )
        .unwrap();
    }
    s.push_str("\n/// Every pattern, for the tests that compile them all and compare each [`Repeated`]\n/// matcher with its regex.\n#[cfg(test)]\npub(crate) static ALL_PATTERNS: &[&Pattern] = &[");
    for name in g.patterns.values() {
        write!(s, "&{name}, ").unwrap();
    }
    s.push_str("];\n\n");
    for (name, code) in HELPERS {
        if g.helpers.contains(name) {
            s.push_str(code);
            s.push('\n');
        }
    }
    s.push_str(&g.items);
    s.push_str(&enum_consts);
    s.push_str(&impls);
    s
}

/// A model pattern that is one character class repeated (`[a-zA-Z0-9_.-]+`, `[^:*]*`, also
/// between `^` and `$`), as a Rust `matches!` over `c` and whether it needs one character:
/// such a pattern is checked by a scan of the value's characters instead of the regex, which
/// on a name of 20,000 characters took most of a request's validation. `None` for anything
/// else, and for any class syntax not read here (Perl classes like `\d`, nested classes,
/// non-ASCII): those keep the regex. The generated tests compare each scan with its regex.
pub(crate) fn char_class(pattern: &str) -> Option<(String, bool)> {
    let p = pattern.strip_prefix('^').unwrap_or(pattern);
    let p = match p.strip_suffix('$') {
        Some(rest) if !rest.ends_with('\\') => rest,
        _ => p,
    };
    let (body, non_empty) = if let Some(b) = p.strip_suffix("]+") {
        (b, true)
    } else {
        (p.strip_suffix("]*")?, false)
    };
    let body = body.strip_prefix('[')?;
    let (body, negated) = match body.strip_prefix('^') {
        Some(b) => (b, true),
        None => (body, false),
    };
    // The class's characters, each with whether it was escaped (an escaped `-` is no range).
    let mut tokens = Vec::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '\\' => match chars.next()? {
                e if e.is_ascii_punctuation() => (e, true),
                _ => return None,
            },
            '[' | ']' | '&' | '~' => return None,
            c if c.is_ascii() && !c.is_ascii_control() => (c, false),
            _ => return None,
        });
    }
    let mut alternatives = Vec::new();
    let mut i = 0;
    loop {
        match tokens[i..] {
            [(from, false), ('-', false), (to, false), ..] => {
                if !(from.is_ascii_alphanumeric() && to.is_ascii_alphanumeric() && from <= to) {
                    return None;
                }
                alternatives.push(format!("{from:?}..={to:?}"));
                i += 3;
            }
            // A plain dash is literal only first or last.
            [('-', false), ..] if i != 0 && i + 1 != tokens.len() => return None,
            [(c, _), ..] => {
                alternatives.push(format!("{c:?}"));
                i += 1;
            }
            [] => break,
        }
    }
    if alternatives.is_empty() {
        return None;
    }
    let set = format!("matches!(c, {})", alternatives.join(" | "));
    Some((if negated { format!("!{set}") } else { set }, non_empty))
}

fn constraints(shape: &Shape, ir: &Ir, shape_name: &str) -> Vec<String> {
    // max, min, pattern, enum: the order AWS prints them inside "[...]".
    let mut out = Vec::new();
    let unit = match shape.ty.as_str() {
        "integer" | "long" => "value",
        _ => "length",
    };
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
        out.push(enum_constraint(ir, shape_name));
    }
    out
}

fn enum_constraint(ir: &Ir, shape_name: &str) -> String {
    format!(
        "Member must satisfy enum value set: [{}]",
        ir.find_enum(shape_name).aws_order.join(", ")
    )
}

impl Gen<'_, '_> {
    fn pattern_static(&mut self, shape: &str) -> String {
        let name = format!(
            "RE_{}",
            snake(shape).trim_start_matches("r#").to_uppercase()
        );
        self.patterns
            .entry(shape.to_string())
            .or_insert(name)
            .clone()
    }

    /// Whether a value of `shape` has anything to check.
    fn has_checks(&self, shape_name: &str) -> bool {
        let shape = self.ir.model.shape(shape_name);
        match shape.ty.as_str() {
            "string" => {
                shape.min.is_some()
                    || shape.max.is_some()
                    || shape.pattern.is_some()
                    || shape.enum_values.is_some()
            }
            "integer" | "long" | "blob" => shape.min.is_some() || shape.max.is_some(),
            "boolean" | "timestamp" => false,
            "list" => {
                shape.min.is_some()
                    || shape.max.is_some()
                    || self.has_checks(&shape.member.as_ref().expect("list").shape)
            }
            "map" => {
                shape.min.is_some()
                    || shape.max.is_some()
                    || self.has_checks(&shape.key.as_ref().expect("map").shape)
                    || self.has_checks(&shape.value.as_ref().expect("map").shape)
            }
            "structure" => {
                let st = self.ir.find_struct(shape_name);
                st.fields
                    .iter()
                    .any(|f| f.required || self.has_checks(&f.shape))
            }
            other => panic!("unexpected type {other}"),
        }
    }

    fn struct_impl(&mut self, st: &Struct) -> String {
        let mut body = String::new();
        for f in &st.fields {
            let checks = self.has_checks(&f.shape);
            if !f.required && !checks {
                continue;
            }
            let seg = lit(&f.path());
            if f.required && checks {
                writeln!(body, "match &self.{} {{", f.rust).unwrap();
                writeln!(body, "    None => v.null(&Path::Member(path, {seg})),").unwrap();
                writeln!(
                    body,
                    "    Some(x) => {{\n        let p = Path::Member(path, {seg});"
                )
                .unwrap();
                body.push_str(&self.value_checks(&f.shape, &f.ty, "x", "p"));
                body.push_str("    }\n}\n");
            } else if f.required {
                writeln!(
                    body,
                    "if self.{}.is_none() {{\n    v.null(&Path::Member(path, {seg}));\n}}",
                    f.rust
                )
                .unwrap();
            } else {
                writeln!(
                    body,
                    "if let Some(x) = &self.{} {{\n    let p = Path::Member(path, {seg});",
                    f.rust
                )
                .unwrap();
                body.push_str(&self.value_checks(&f.shape, &f.ty, "x", "p"));
                body.push_str("}\n");
            }
        }
        let (path, v) = if body.is_empty() {
            ("_path", "_v")
        } else {
            ("path", "v")
        };
        let mut s = String::new();
        writeln!(
            s,
            "impl Check for {} {{\n    fn check(&self, {path}: &Path<'_>, {v}: &mut Violations) {{\n{body}    }}\n}}\n",
            st.name
        )
        .unwrap();
        writeln!(
            s,
            "impl Validate for {} {{\n    fn validate(&self) -> Result<(), ApiError> {{\n        let mut v = Violations::default();\n        self.check(&Path::Root, &mut v);\n        v.finish()\n    }}\n}}\n",
            st.name
        )
        .unwrap();
        s.push_str(&format!(
            "impl Render for {} {{\n    fn render(&self, out: &mut String) {{\n        out.push_str(\"com.amazonaws.kinesis.v20131202.{}@c965e310\");\n    }}\n}}\n\n",
            st.name, st.name
        ));
        s
    }

    /// Checks of the value `x: &T` (T the Rust type of `shape_name`) at path variable `p`.
    fn value_checks(&mut self, shape_name: &str, ty: &Ty, x: &str, p: &str) -> String {
        let shape = self.ir.model.shape(shape_name);
        let opt = |o: Option<i64>| match o {
            Some(n) => format!("Some({n})"),
            None => "None".to_string(),
        };
        let mut s = String::new();
        match (shape.ty.as_str(), ty) {
            ("string", Ty::Enum(_)) => {
                writeln!(
                    s,
                    "if !{x}.is_known() {{\n    v.push(Some(render({x})), &{p}, {});\n}}",
                    lit(&enum_constraint(self.ir, shape_name))
                )
                .unwrap();
            }
            ("string", Ty::String) => {
                let pattern = match &shape.pattern {
                    Some(pat) => {
                        format!("Some((&{}, {}))", self.pattern_static(shape_name), lit(pat))
                    }
                    None => "None".into(),
                };
                writeln!(
                    s,
                    "check_str(v, &{p}, {x}, {pattern}, {}, {});",
                    opt(shape.min),
                    opt(shape.max)
                )
                .unwrap();
            }
            ("integer" | "long", Ty::I32 | Ty::I64) => {
                writeln!(
                    s,
                    "check_num(v, &{p}, i64::from(*{x}), {}, {});",
                    opt(shape.min),
                    opt(shape.max)
                )
                .unwrap();
            }
            ("blob", Ty::Blob) => {
                writeln!(
                    s,
                    "check_len(v, &{p}, {x}, {x}.len(), {}, {});",
                    opt(shape.min),
                    opt(shape.max)
                )
                .unwrap();
            }
            ("structure", Ty::Struct(_)) => {
                if self.has_checks(shape_name) {
                    writeln!(s, "{x}.check(&{p}, v);").unwrap();
                }
            }
            ("list", Ty::List(inner)) => {
                if shape.min.is_some() || shape.max.is_some() {
                    writeln!(
                        s,
                        "check_len(v, &{p}, {x}, {x}.len(), {}, {});",
                        opt(shape.min),
                        opt(shape.max)
                    )
                    .unwrap();
                }
                let member = &shape.member.as_ref().expect("list").shape;
                if self.has_checks(member) {
                    match &**inner {
                        Ty::Struct(_) => {
                            writeln!(
                                s,
                                "for (i, m) in {x}.iter().enumerate() {{\n    if v.full() {{\n        break;\n    }}\n    m.check(&Path::Index(&{p}, i), v);\n}}"
                            )
                            .unwrap();
                        }
                        Ty::List(_) | Ty::Map(..) => {
                            panic!("{shape_name}: nested collections in an input are not supported")
                        }
                        _ => {
                            let (pred, msg) = self.predicate(member, inner);
                            writeln!(
                                s,
                                "if !{x}.iter().all({pred}) {{\n    v.push(Some(render({x})), &{p}, {});\n}}",
                                lit(&format!("Member must satisfy constraint: [{msg}]"))
                            )
                            .unwrap();
                        }
                    }
                }
            }
            ("map", Ty::Map(kt, vt)) => {
                if shape.min.is_some() || shape.max.is_some() {
                    writeln!(
                        s,
                        "check_len(v, &{p}, {x}, {x}.len(), {}, {});",
                        opt(shape.min),
                        opt(shape.max)
                    )
                    .unwrap();
                }
                let key = &shape.key.as_ref().expect("map").shape;
                let value = &shape.value.as_ref().expect("map").shape;
                if self.has_checks(key) {
                    let (pred, msg) = self.predicate(key, kt);
                    writeln!(
                        s,
                        "if !{x}.keys().all({pred}) {{\n    v.push(Some(render({x})), &{p}, {});\n}}",
                        lit(&format!("Map keys must satisfy constraint: [{msg}]"))
                    )
                    .unwrap();
                }
                if self.has_checks(value) {
                    assert!(
                        !matches!(**vt, Ty::Struct(_) | Ty::List(_) | Ty::Map(..)),
                        "{shape_name}: map of collections"
                    );
                    let (pred, msg) = self.predicate(value, vt);
                    writeln!(
                        s,
                        "if !{x}.values().all({pred}) {{\n    v.push(Some(render({x})), &{p}, {});\n}}",
                        lit(&format!("Map value must satisfy constraint: [{msg}]"))
                    )
                    .unwrap();
                }
            }
            (t, ty) => panic!("{shape_name}: type {t} lowered to {ty:?}"),
        }
        s
    }

    /// A `fn(&T) -> bool` telling whether a scalar element satisfies its shape, and the
    /// bracketed list of that shape's constraints.
    fn predicate(&mut self, shape_name: &str, ty: &Ty) -> (String, String) {
        if let Some(p) = self.predicates.get(shape_name) {
            return p.clone();
        }
        let shape = self.ir.model.shape(shape_name);
        let name = format!("{}_ok", snake(shape_name).trim_start_matches("r#"));
        let msg = constraints(shape, self.ir, shape_name).join(", ");
        let opt = |o: Option<i64>| match o {
            Some(n) => format!("Some({n})"),
            None => "None".to_string(),
        };
        let body = match ty {
            Ty::Enum(_) => "x.is_known()".to_string(),
            Ty::String => {
                self.helpers.extend(["str_ok", "len_ok"]);
                let pattern = match &shape.pattern {
                    Some(_) => format!("Some(&{})", self.pattern_static(shape_name)),
                    None => "None".into(),
                };
                format!(
                    "str_ok(x, {pattern}, {}, {})",
                    opt(shape.min),
                    opt(shape.max)
                )
            }
            Ty::I32 | Ty::I64 => {
                self.helpers.insert("num_ok");
                format!(
                    "num_ok(i64::from(*x), {}, {})",
                    opt(shape.min),
                    opt(shape.max)
                )
            }
            Ty::Blob => {
                self.helpers.insert("len_ok");
                format!("len_ok(x.len(), {}, {})", opt(shape.min), opt(shape.max))
            }
            other => panic!("{shape_name}: no element predicate for {other:?}"),
        };
        writeln!(
            self.items,
            "/// Whether a `{shape_name}` element satisfies its shape.\nfn {name}(x: &{}) -> bool {{\n    {body}\n}}\n",
            if *ty == Ty::String { "str".to_string() } else { ty.rust() }
        )
        .unwrap();
        // `&String` elements reach a `&str` predicate through a closure (deref coercion).
        let call = if *ty == Ty::String {
            format!("|x| {name}(x)")
        } else {
            name
        };
        self.predicates
            .insert(shape_name.to_string(), (call.clone(), msg.clone()));
        (call, msg)
    }
}

/// The hand-written part of the generated file: paths, the violation collector, the checks.
/// Element predicates' helpers, emitted only when used: (name, code).
const HELPERS: &[(&str, &str)] = &[
    (
        "len_ok",
        "fn len_ok(len: usize, min: Option<i64>, max: Option<i64>) -> bool {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
}
",
    ),
    (
        "num_ok",
        "fn num_ok(n: i64, min: Option<i64>, max: Option<i64>) -> bool {
    min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
}
",
    ),
    (
        "str_ok",
        "/// Length first: it is cheaper than the pattern, and either failing fails the element.
fn str_ok(s: &str, pattern: Option<&Pattern>, min: Option<i64>, max: Option<i64>) -> bool {
    len_ok(str_len(s), min, max) && pattern.is_none_or(|p| p.is_match(s))
}
",
    ),
];

const RUNTIME: &str = r#"//! Input validation: the model's constraints, reported as AWS reports them.
//!
//! AWS (Coral) wording, as reproduced and pinned by kinesalite's tests against AWS (see
//! `xtask/src/codegen/validate.rs` for the source of each rule):
//! `1 validation error detected: Value 'x!' at 'streamName' failed to satisfy constraint:
//! Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+`; every violation is
//! listed (at most 10), joined by `"; "`. Semantic checks (stream exists, partition key
//! required under `USER_PARTITION_KEY`, retention range, ...) belong to the operations.

use super::errors::ErrorCode;
use super::types::*;
use crate::api::{ApiError, Blob};
use regex_lite::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// AWS reports at most this many violations per request.
const MAX_VIOLATIONS: usize = 10;

/// Checks an input against the model's constraints.
pub trait Validate {
    /// `Ok` when every constraint holds; else AWS's `ValidationException` listing the
    /// violations.
    fn validate(&self) -> Result<(), ApiError>;
}

/// Where a value sits in the request, rendered only when a violation is reported (no
/// allocation on the happy path).
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    /// `parent.member` (the member's lowerCamel name).
    Member(&'a Path<'a>, &'static str),
    /// `parent.{index + 1}.member`.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Member(parent, name) => {
                parent.render(out);
                if !matches!(parent, Path::Root) {
                    out.push('.');
                }
                out.push_str(name);
            }
            Path::Index(parent, i) => {
                parent.render(out);
                out.push('.');
                out.push_str(&(i + 1).to_string());
                out.push_str(".member");
            }
        }
    }
}

/// The violations found so far.
#[derive(Default)]
pub(crate) struct Violations {
    count: usize,
    message: String,
}

impl Violations {
    /// True once nothing more will be reported.
    pub(crate) fn full(&self) -> bool {
        self.count >= MAX_VIOLATIONS
    }

    /// Records `Value {value} at '{path}' failed to satisfy constraint: {constraint}`;
    /// `None` renders as `null`, a value in single quotes.
    pub(crate) fn push(&mut self, value: Option<String>, path: &Path<'_>, constraint: &str) {
        if self.full() {
            return;
        }
        if self.count > 0 {
            self.message.push_str("; ");
        }
        self.message.push_str("Value ");
        match value {
            None => self.message.push_str("null"),
            Some(v) => {
                self.message.push('\'');
                self.message.push_str(&v);
                self.message.push('\'');
            }
        }
        self.message.push_str(" at '");
        path.render(&mut self.message);
        self.message.push_str("' failed to satisfy constraint: ");
        self.message.push_str(constraint);
        self.count += 1;
    }

    /// A required member is missing.
    pub(crate) fn null(&mut self, path: &Path<'_>) {
        self.push(None, path, "Member must not be null");
    }

    /// `Ok`, or the `ValidationException`.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.count {
            0 => Ok(()),
            1 => Err(ApiError::new(
                ErrorCode::ValidationException,
                format!("1 validation error detected: {}", self.message),
            )),
            n => Err(ApiError::new(
                ErrorCode::ValidationException,
                format!("{n} validation errors detected: {}", self.message),
            )),
        }
    }
}

/// Checks a structure's members, appending to `v`.
pub(crate) trait Check {
    fn check(&self, path: &Path<'_>, v: &mut Violations);
}

/// A value as AWS prints it in a validation message (Java's `toString`).
pub(crate) trait Render {
    fn render(&self, out: &mut String);
}

fn render<T: Render + ?Sized>(value: &T) -> String {
    let mut out = String::new();
    value.render(&mut out);
    out
}

impl Render for str {
    fn render(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Render for String {
    fn render(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Render for i32 {
    fn render(&self, out: &mut String) {
        out.push_str(&self.to_string());
    }
}

impl Render for i64 {
    fn render(&self, out: &mut String) {
        out.push_str(&self.to_string());
    }
}

impl Render for Blob {
    fn render(&self, out: &mut String) {
        let n = self.len();
        out.push_str(&format!("java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]"));
    }
}

/// Collections longer than this are rendered up to it, then `, ...`. AWS prints them
/// whole; the cap (well above every list maximum of the model, 500 records) keeps a
/// request of a million tiny entries from producing a message many times its size.
const MAX_RENDERED_ENTRIES: usize = 1000;

impl<T: Render> Render for Vec<T> {
    fn render(&self, out: &mut String) {
        out.push('[');
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if i == MAX_RENDERED_ENTRIES {
                out.push_str("...");
                break;
            }
            item.render(out);
        }
        out.push(']');
    }
}

impl<K: Render, V: Render> Render for BTreeMap<K, V> {
    fn render(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if i == MAX_RENDERED_ENTRIES {
                out.push_str("...");
                break;
            }
            k.render(out);
            out.push('=');
            v.render(out);
        }
        out.push('}');
    }
}

/// A model pattern, matched against the whole value: its regex, compiled on first use, and
/// for a pattern that is one character class repeated, the same test as a plain scan of the
/// value's characters (the regex engine took most of a request's validation on a name of
/// 20,000 characters; the generated tests compare the two answers).
pub(crate) struct Pattern {
    pub(crate) regex: LazyLock<Regex>,
    pub(crate) repeated: Option<Repeated>,
}

/// `[class]+` (`non_empty`) or `[class]*`: every character in `allowed`.
#[derive(Clone, Copy)]
pub(crate) struct Repeated {
    pub(crate) allowed: fn(char) -> bool,
    pub(crate) non_empty: bool,
}

impl Pattern {
    pub(crate) fn is_match(&self, s: &str) -> bool {
        match self.repeated {
            Some(r) => !(r.non_empty && s.is_empty()) && s.chars().all(r.allowed),
            None => self.regex.is_match(s),
        }
    }
}

/// Length of a string for `min`/`max`: in Unicode code points, as the Smithy spec defines
/// the `length` constraint for strings (smithy.io, constraint traits, `length`). Whether
/// AWS's Java service counts UTF-16 units instead (a difference for characters outside the
/// Basic Multilingual Plane only) is not pinned by any peer's test.
fn str_len(s: &str) -> usize {
    s.chars().count()
}

/// Pattern, then min length, then max length: each violation reported.
fn check_str(
    v: &mut Violations,
    path: &Path<'_>,
    s: &str,
    pattern: Option<(&Pattern, &str)>,
    min: Option<i64>,
    max: Option<i64>,
) {
    if let Some((p, text)) = pattern
        && !p.is_match(s)
    {
        v.push(Some(s.to_owned()), path, &format!("Member must satisfy regular expression pattern: {text}"));
    }
    check_len(v, path, s, str_len(s), min, max);
}

/// Min then max length of a string (characters), blob (bytes), list or map (entries).
fn check_len<T: Render + ?Sized>(
    v: &mut Violations,
    path: &Path<'_>,
    value: &T,
    len: usize,
    min: Option<i64>,
    max: Option<i64>,
) {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    if let Some(m) = min.filter(|&m| n < m) {
        v.push(Some(render(value)), path, &format!("Member must have length greater than or equal to {m}"));
    }
    if let Some(m) = max.filter(|&m| n > m) {
        v.push(Some(render(value)), path, &format!("Member must have length less than or equal to {m}"));
    }
}

/// Min then max value of a number.
fn check_num(v: &mut Violations, path: &Path<'_>, n: i64, min: Option<i64>, max: Option<i64>) {
    if let Some(m) = min.filter(|&m| n < m) {
        v.push(Some(n.to_string()), path, &format!("Member must have value greater than or equal to {m}"));
    }
    if let Some(m) = max.filter(|&m| n > m) {
        v.push(Some(n.to_string()), path, &format!("Member must have value less than or equal to {m}"));
    }
}
"#;

#[cfg(test)]
mod char_class_tests {
    use super::char_class;

    #[test]
    fn one_repeated_class_becomes_a_scan() {
        assert_eq!(
            char_class("[a-zA-Z0-9_.-]+"),
            Some((
                "matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-')".into(),
                true
            ))
        );
        assert_eq!(
            char_class("[^:*]*"),
            Some(("!matches!(c, ':' | '*')".into(), false))
        );
        assert_eq!(
            char_class("^[a-z0-9]+$"),
            Some(("matches!(c, 'a'..='z' | '0'..='9')".into(), true))
        );
        assert_eq!(
            char_class("[\\.\\-_/#A-Za-z0-9]+"),
            Some((
                "matches!(c, '.' | '-' | '_' | '/' | '#' | 'A'..='Z' | 'a'..='z' | '0'..='9')"
                    .into(),
                true
            ))
        );
    }

    #[test]
    fn anything_else_keeps_the_regex() {
        for pattern in [
            "\\d{12}",
            "[a-z0-9]{20}-[a-z0-9]{3}",
            "^(0|([1-9]\\d{0,38}))$",
            "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
            "[\\d]+",
            "[a-z]+x",
            "[a-z]",
            "[a-z-_]+",
            "[[:alpha:]]+",
            "[é]+",
            "[a-z]+\\$",
        ] {
            assert_eq!(char_class(pattern), None, "{pattern}");
        }
    }
}
