//! Stage 2: the model lowered to Rust types.

use super::model::{Model, Shape};
use super::patches;
use super::util::{doc_summary, lower_first, snake, upper_camel};
use std::collections::{BTreeSet, VecDeque};

/// The Rust type of a member.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    String,
    /// A generated enum, named as its shape.
    Enum(String),
    I32,
    I64,
    Bool,
    Blob,
    Timestamp,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// A generated struct, named as its shape.
    Struct(String),
}

impl Ty {
    pub fn rust(&self) -> String {
        match self {
            Ty::String => "String".into(),
            Ty::Enum(n) | Ty::Struct(n) => n.clone(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::Bool => "bool".into(),
            Ty::Blob => "Blob".into(),
            Ty::Timestamp => "Timestamp".into(),
            Ty::List(t) => format!("Vec<{}>", t.rust()),
            Ty::Map(k, v) => format!("BTreeMap<{}, {}>", k.rust(), v.rust()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reachable from an operation input: every member optional, validated.
    Input,
    /// Reachable from outputs only: required members are plain values.
    Output,
}

#[derive(Debug)]
pub struct Field {
    /// The member name in the model and on the wire (`StreamARN`).
    pub name: String,
    /// The Rust field name (`stream_arn`).
    pub rust: String,
    /// The member's shape.
    pub shape: String,
    pub ty: Ty,
    pub required: bool,
    pub doc: Option<String>,
}

impl Field {
    /// The path segment AWS prints in validation messages (`streamARN`).
    pub fn path(&self) -> String {
        lower_first(&self.name)
    }
}

#[derive(Debug)]
pub struct Struct {
    pub name: String,
    pub kind: Kind,
    pub doc: Option<String>,
    pub fields: Vec<Field>,
    /// Set for [`patches::PLACEHOLDER_STRUCTS`].
    pub placeholder: Option<Placeholder>,
}

/// A structure whose event-stream member is a hand-written type.
#[derive(Debug)]
pub struct Placeholder {
    /// Why the model's member is replaced.
    pub doc: String,
    /// The Rust type the struct holds instead.
    pub ty: String,
}

#[derive(Debug)]
pub struct Enum {
    pub name: String,
    pub doc: Option<String>,
    /// `(variant, value)` in model order.
    pub values: Vec<(String, String)>,
    /// The values in the order AWS prints them.
    pub aws_order: Vec<String>,
}

#[derive(Debug)]
pub struct Op {
    pub name: String,
    pub method: String,
    pub input: String,
    pub output: Option<String>,
    pub doc: Option<String>,
    /// `Some(reason)` for [`patches::NOT_DISPATCHED`].
    pub not_dispatched: Option<String>,
}

#[derive(Debug)]
pub struct ErrorDef {
    pub code: String,
    pub status: u16,
    pub doc: String,
}

pub struct Ir<'a> {
    pub model: &'a Model,
    pub structs: Vec<Struct>,
    pub enums: Vec<Enum>,
    pub ops: Vec<Op>,
    pub errors: Vec<ErrorDef>,
}

impl<'a> Ir<'a> {
    pub fn build(model: &'a Model) -> Ir<'a> {
        let inputs: Vec<String> = model
            .operations
            .iter()
            .map(|(_, op)| op.input.as_ref().expect("checked").shape.clone())
            .collect();
        let mut outputs: Vec<String> = model
            .operations
            .iter()
            .filter_map(|(_, op)| op.output.as_ref().map(|o| o.shape.clone()))
            .collect();
        for extra in patches::EXTRA_OUTPUT_STRUCTS {
            assert!(
                model.shape(extra).event,
                "EXTRA_OUTPUT_STRUCTS: {extra} is no longer an event shape"
            );
            outputs.push(extra.to_string());
        }

        let in_set = reachable(model, &inputs);
        let out_set = reachable(model, &outputs);

        let mut structs = Vec::new();
        let mut enums = Vec::new();
        for (name, shape) in model.shapes.iter() {
            let in_input = in_set.contains(name);
            if !in_input && !out_set.contains(name) {
                continue;
            }
            match shape.ty.as_str() {
                "structure" => {
                    assert!(
                        !shape.exception && !shape.eventstream,
                        "{name} reached as a structure"
                    );
                    let kind = if in_input { Kind::Input } else { Kind::Output };
                    structs.push(lower_struct(model, name, shape, kind));
                }
                "string" if shape.enum_values.is_some() => enums.push(lower_enum(name, shape)),
                _ => {}
            }
        }
        for p in patches::ENUM_ORDER {
            assert!(
                enums.iter().any(|e| e.name == p.shape),
                "patch for unknown enum {}",
                p.shape
            );
        }
        for (p, _, _) in patches::PLACEHOLDER_STRUCTS {
            assert!(
                structs.iter().any(|s| s.name == *p),
                "placeholder patch for unknown struct {p}"
            );
        }
        for (p, member, _) in patches::OPTIONAL_OUTPUT_MEMBERS {
            assert!(
                structs
                    .iter()
                    .any(|s| s.name == *p && s.fields.iter().any(|f| f.name == *member)),
                "optional-member patch for unknown member {p}.{member}"
            );
        }
        let mut names = BTreeSet::new();
        for n in structs
            .iter()
            .map(|s| &s.name)
            .chain(enums.iter().map(|e| &e.name))
        {
            assert!(names.insert(n.clone()), "duplicate type {n}");
            assert!(
                !matches!(n.as_str(), "Blob" | "Timestamp" | "BTreeMap" | "Validate"),
                "type {n} clashes"
            );
        }

        let ops = model
            .operations
            .iter()
            .map(|(name, op)| {
                let not_dispatched = patches::NOT_DISPATCHED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, r)| r.to_string());
                Op {
                    name: name.to_string(),
                    method: snake(name),
                    input: op.input.as_ref().expect("checked").shape.clone(),
                    output: op.output.as_ref().map(|o| o.shape.clone()),
                    doc: doc_summary(op.documentation.as_deref()),
                    not_dispatched,
                }
            })
            .collect::<Vec<_>>();
        assert_eq!(
            ops.len(),
            57,
            "the model has {} operations, expected 57",
            ops.len()
        );
        for (n, _) in patches::NOT_DISPATCHED {
            assert!(
                ops.iter().any(|o| o.name == *n),
                "NOT_DISPATCHED names unknown operation {n}"
            );
        }

        let mut errors: Vec<ErrorDef> = model
            .shapes
            .iter()
            .filter(|(_, s)| s.exception)
            .map(|(name, s)| {
                // The model carries no HTTP status. AWS answers client errors with 400 and
                // faults (`"fault": true`, only InternalFailureException) with 500;
                // kinesalite's helpers assert 400 for every client error type it returns.
                let status = if s.fault { 500 } else { 400 };
                let doc =
                    doc_summary(s.documentation.as_deref()).unwrap_or_else(|| format!("`{name}`."));
                ErrorDef {
                    code: name.to_string(),
                    status,
                    doc,
                }
            })
            .collect();
        for (code, status, source) in patches::EXTRA_ERROR_CODES {
            assert!(
                !errors.iter().any(|e| e.code == *code),
                "extra error code {code} is in the model now: drop it from EXTRA_ERROR_CODES"
            );
            errors.push(ErrorDef {
                code: code.to_string(),
                status: *status,
                doc: format!("Not in the model: {source}."),
            });
        }

        Ir {
            model,
            structs,
            enums,
            ops,
            errors,
        }
    }

    pub fn find_struct(&self, name: &str) -> &Struct {
        self.structs
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no struct {name}"))
    }

    pub fn find_enum(&self, name: &str) -> &Enum {
        self.enums
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no enum {name}"))
    }
}

/// Every shape reachable from `roots`, not descending into event-stream unions.
fn reachable(model: &Model, roots: &[String]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = roots.iter().cloned().collect();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let shape = model.shape(&name);
        if patches::PLACEHOLDER_STRUCTS
            .iter()
            .any(|(s, _, _)| *s == name)
        {
            continue;
        }
        assert!(
            !shape.eventstream,
            "event stream {name} reached outside a placeholder"
        );
        for (_, m) in shape.members.iter() {
            queue.push_back(m.shape.clone());
        }
        for r in [&shape.member, &shape.key, &shape.value]
            .into_iter()
            .flatten()
        {
            queue.push_back(r.shape.clone());
        }
    }
    seen
}

pub fn ty_of(model: &Model, shape_name: &str) -> Ty {
    let shape = model.shape(shape_name);
    match shape.ty.as_str() {
        "string" if shape.enum_values.is_some() => Ty::Enum(shape_name.to_string()),
        "string" => Ty::String,
        "integer" => Ty::I32,
        "long" => Ty::I64,
        "boolean" => Ty::Bool,
        "blob" => Ty::Blob,
        "timestamp" => Ty::Timestamp,
        "list" => Ty::List(Box::new(ty_of(
            model,
            &shape.member.as_ref().expect("checked").shape,
        ))),
        "map" => Ty::Map(
            Box::new(ty_of(model, &shape.key.as_ref().expect("checked").shape)),
            Box::new(ty_of(model, &shape.value.as_ref().expect("checked").shape)),
        ),
        "structure" => Ty::Struct(shape_name.to_string()),
        other => panic!("unsupported type {other}"),
    }
}

fn lower_struct(model: &Model, name: &str, shape: &Shape, kind: Kind) -> Struct {
    let placeholder = patches::PLACEHOLDER_STRUCTS
        .iter()
        .find(|(s, _, _)| *s == name);
    let mut fields = Vec::new();
    if let Some((_, member, _)) = placeholder {
        assert!(
            shape.members.0.len() == 1 && shape.members.get(member).is_some(),
            "placeholder {name}: the model's members changed"
        );
    } else {
        for (m, member) in shape.members.iter() {
            let rust = snake(m);
            assert!(
                !fields.iter().any(|f: &Field| f.rust == rust),
                "{name}: two members map to {rust}"
            );
            fields.push(Field {
                name: m.to_string(),
                rust,
                shape: member.shape.clone(),
                ty: ty_of(model, &member.shape),
                required: shape.required.iter().any(|r| r == m)
                    && !patches::OPTIONAL_OUTPUT_MEMBERS
                        .iter()
                        .any(|(s, f, _)| *s == name && *f == m),
                doc: doc_summary(member.documentation.as_deref()),
            });
        }
    }
    Struct {
        name: name.to_string(),
        kind,
        doc: doc_summary(shape.documentation.as_deref()),
        fields,
        placeholder: placeholder.map(|(_, m, ty)| Placeholder {
            doc: format!("member `{m}` (the event stream) is produced by hand-written code"),
            ty: ty.to_string(),
        }),
    }
}

fn lower_enum(name: &str, shape: &Shape) -> Enum {
    let values: Vec<String> = shape.enum_values.clone().expect("enum");
    let mut pairs: Vec<(String, String)> = Vec::new();
    for v in &values {
        let variant = upper_camel(v);
        assert_ne!(variant, "Unknown", "{name}: a value named Unknown");
        assert!(
            !pairs.iter().any(|(x, _)| *x == variant),
            "{name}: two values map to {variant}"
        );
        pairs.push((variant, v.clone()));
    }
    let aws_order = match patches::ENUM_ORDER.iter().find(|p| p.shape == name) {
        Some(p) => {
            let mut a: Vec<&str> = p.aws_order.to_vec();
            let mut b: Vec<&str> = values.iter().map(String::as_str).collect();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(
                a, b,
                "ENUM_ORDER patch for {name} no longer matches the model's values"
            );
            p.aws_order.iter().map(|s| s.to_string()).collect()
        }
        None => values.clone(),
    };
    Enum {
        name: name.to_string(),
        doc: doc_summary(shape.documentation.as_deref()),
        values: pairs,
        aws_order,
    }
}
