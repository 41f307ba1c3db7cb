//! Emits `src/api/generated/types.rs`: the structures and string enums.

use super::ir::{Enum, Ir, Kind, Struct, Ty};
use super::util::{doc_lines, header, lit};
use std::fmt::Write;

pub fn codegen(ir: &Ir) -> String {
    let mut s = header("xtask::codegen::types::codegen");
    s.push_str(
        "//! Every structure reachable from an operation's input or output, and every string enum.\n\
         //!\n\
         //! Structures reachable from an input (even when also used in an output) have every\n\
         //! member optional: a missing required member is reported by [`Validate`](super::Validate)\n\
         //! in AWS's words, not by the decoder. Structures reachable only from outputs have their\n\
         //! required members as plain values. Unknown JSON members are ignored and `null` reads as\n\
         //! absent, as AWS does. String enums keep unknown values in `Unknown` so validation can\n\
         //! reject them with AWS's message.\n\n",
    );
    let all_tys: Vec<&Ty> = ir
        .structs
        .iter()
        .flat_map(|st| st.fields.iter().map(|f| &f.ty))
        .collect();
    let uses = |pred: &dyn Fn(&Ty) -> bool| all_tys.iter().any(|t| contains(t, pred));
    let mut api = Vec::new();
    if uses(&|t| *t == Ty::Blob) {
        api.push("Blob");
    }
    if uses(&|t| *t == Ty::Timestamp) {
        api.push("Timestamp");
    }
    if !api.is_empty() {
        writeln!(s, "use crate::api::{{{}}};", api.join(", ")).unwrap();
    }
    s.push_str("use serde::{Deserialize, Deserializer, Serialize, Serializer};\n");
    if uses(&|t| matches!(t, Ty::Map(..))) {
        s.push_str("use std::collections::BTreeMap;\n");
    }
    s.push_str("use std::fmt;\n\n");
    s.push_str(
        r#"/// Reads a string enum without allocating for known values.
struct EnumVisitor<T>(std::marker::PhantomData<T>);

impl<T: for<'a> From<&'a str>> serde::de::Visitor<'_> for EnumVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from(v))
    }
}

/// Structures reachable from an input read only from a map. serde's derived structures
/// also take a sequence (members by position); AWS refuses a list where a structure belongs
/// ("Start of list found where not expected"), so each input structure derives its reader
/// under `#[serde(remote = "Self")]` and its `Deserialize` goes through this visitor,
/// which accepts a map and nothing else.
trait FromMap: Sized {
    fn from_map<'de, A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

struct MapOnly<T>(&'static str, std::marker::PhantomData<T>);

impl<'de, T: FromMap> serde::de::Visitor<'de> for MapOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

"#,
    );
    let input_int = |t: Ty| {
        ir.structs
            .iter()
            .any(|st| st.kind == Kind::Input && st.fields.iter().any(|f| f.ty == t))
    };
    let (i32s, i64s) = (input_int(Ty::I32), input_int(Ty::I64));
    if i32s || i64s {
        s.push_str(LENIENT_INT);
    }
    if i32s {
        s.push_str(LENIENT_I32);
    }
    if i64s {
        s.push_str(LENIENT_I64);
    }
    for st in &ir.structs {
        emit_struct(&mut s, st);
    }
    for e in &ir.enums {
        emit_enum(&mut s, e);
    }
    s
}

fn contains(t: &Ty, pred: &dyn Fn(&Ty) -> bool) -> bool {
    pred(t)
        || match t {
            Ty::List(i) => contains(i, pred),
            Ty::Map(k, v) => contains(k, pred) || contains(v, pred),
            _ => false,
        }
}

fn emit_struct(s: &mut String, st: &Struct) {
    s.push_str(&doc_lines(st.doc.as_deref(), ""));
    if let Some(p) = &st.placeholder {
        if st.doc.is_some() {
            s.push_str("///\n");
        }
        writeln!(s, "/// Placeholder: {}.", p.doc).unwrap();
        s.push_str("#[derive(Debug)]\n");
        writeln!(s, "pub struct {} {{", st.name).unwrap();
        writeln!(s, "    /// The events, in order.").unwrap();
        writeln!(s, "    pub event_stream: {},", p.ty).unwrap();
        s.push_str("}\n\n");
        return;
    }
    match st.kind {
        Kind::Input => {
            if st.doc.is_some() || st.placeholder.is_some() {
                s.push_str("///\n");
            }
            s.push_str("/// Reachable from an operation input: every member is optional here and checked by `Validate`.\n");
            s.push_str("#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]\n");
            s.push_str("#[serde(remote = \"Self\")]\n");
        }
        Kind::Output => s.push_str("#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\n"),
    }
    writeln!(s, "pub struct {} {{", st.name).unwrap();
    for f in &st.fields {
        s.push_str(&doc_lines(f.doc.as_deref(), "    "));
        let optional = st.kind == Kind::Input || !f.required;
        let reader = match (st.kind, &f.ty) {
            (Kind::Input, Ty::I32) => ", deserialize_with = \"lenient_i32\"",
            (Kind::Input, Ty::I64) => ", deserialize_with = \"lenient_i64\"",
            _ => "",
        };
        if optional {
            writeln!(
                s,
                "    #[serde(rename = {}, default, skip_serializing_if = \"Option::is_none\"{reader})]",
                lit(&f.name)
            )
            .unwrap();
            writeln!(s, "    pub {}: Option<{}>,", f.rust, f.ty.rust()).unwrap();
        } else {
            writeln!(s, "    #[serde(rename = {})]", lit(&f.name)).unwrap();
            writeln!(s, "    pub {}: {},", f.rust, f.ty.rust()).unwrap();
        }
    }
    s.push_str("}\n\n");
    if st.kind == Kind::Input {
        let n = &st.name;
        writeln!(
            s,
            "impl FromMap for {n} {{\n    fn from_map<'de, A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {{\n        {n}::deserialize(serde::de::value::MapAccessDeserializer::new(map))\n    }}\n}}\n\n\
             impl<'de> Deserialize<'de> for {n} {{\n    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {{\n        deserializer.deserialize_map(MapOnly::<{n}>(\"struct {n}\", std::marker::PhantomData))\n    }}\n}}\n\n\
             impl Serialize for {n} {{\n    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{\n        {n}::serialize(self, serializer)\n    }}\n}}\n"
        )
        .unwrap();
    }
}

fn emit_enum(s: &mut String, e: &Enum) {
    let n = &e.name;
    s.push_str(&doc_lines(e.doc.as_deref(), ""));
    if e.doc.is_some() {
        s.push_str("///\n");
    }
    writeln!(
        s,
        "/// Values: {}. Anything else is kept in `Unknown` and rejected by validation.",
        e.values
            .iter()
            .map(|(_, v)| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    s.push_str("#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]\n");
    writeln!(s, "pub enum {n} {{").unwrap();
    for (variant, value) in &e.values {
        writeln!(s, "    /// `{value}`").unwrap();
        writeln!(s, "    {variant},").unwrap();
    }
    s.push_str(
        "    /// A value outside the model's set, kept verbatim.\n    Unknown(String),\n}\n\n",
    );

    writeln!(s, "impl {n} {{").unwrap();
    writeln!(s, "    /// The known values, in model order.").unwrap();
    writeln!(
        s,
        "    pub const VALUES: &'static [&'static str] = &[{}];",
        e.values
            .iter()
            .map(|(_, v)| lit(v))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    s.push_str(
        "\n    /// The wire value.\n    pub fn as_str(&self) -> &str {\n        match self {\n",
    );
    for (variant, value) in &e.values {
        writeln!(s, "            Self::{variant} => {},", lit(value)).unwrap();
    }
    s.push_str("            Self::Unknown(s) => s,\n        }\n    }\n\n");
    s.push_str("    /// False for `Unknown`.\n    pub fn is_known(&self) -> bool {\n        !matches!(self, Self::Unknown(_))\n    }\n}\n\n");

    writeln!(
        s,
        "impl From<&str> for {n} {{\n    fn from(s: &str) -> Self {{\n        match s {{"
    )
    .unwrap();
    for (variant, value) in &e.values {
        writeln!(s, "            {} => Self::{variant},", lit(value)).unwrap();
    }
    s.push_str("            other => Self::Unknown(other.to_owned()),\n        }\n    }\n}\n\n");
    writeln!(
        s,
        "impl From<String> for {n} {{\n    fn from(s: String) -> Self {{\n        match Self::from(s.as_str()) {{\n            Self::Unknown(_) => Self::Unknown(s),\n            known => known,\n        }}\n    }}\n}}\n"
    )
    .unwrap();
    writeln!(
        s,
        "impl fmt::Display for {n} {{\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{\n        f.write_str(self.as_str())\n    }}\n}}\n"
    )
    .unwrap();
    writeln!(
        s,
        "impl Serialize for {n} {{\n    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{\n        serializer.serialize_str(self.as_str())\n    }}\n}}\n"
    )
    .unwrap();
    writeln!(
        s,
        "impl<'de> Deserialize<'de> for {n} {{\n    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {{\n        deserializer.deserialize_str(EnumVisitor(std::marker::PhantomData))\n    }}\n}}\n"
    )
    .unwrap();
}

/// How input integers are read: as AWS (Coral) reads them, any JSON number is accepted, a
/// fraction is dropped (kinesalite validations/index.js `checkType`: `Math.floor` for
/// Integer/Long; AWS's own errors name `TruncatingBigNumber`) and a value out of range is
/// accepted rather than refused (kinesalite test/createStream.js 'long StreamName': AWS
/// reports only the name for `ShardCount: 100000000000`). Out-of-range values saturate (AWS
/// probably wraps them like Java's `intValue()`; saturating keeps them out of range for the
/// operation's own checks). Non-numbers are still decoding errors.
const LENIENT_INT: &str = r#"/// An integer read as AWS reads it: any number, floored, saturated.
struct LenientInt(i64);

impl<'de> Deserialize<'de> for LenientInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = LenientInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LenientInt, E> {
                Ok(LenientInt(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LenientInt, E> {
                Ok(LenientInt(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LenientInt, E> {
                if v.is_nan() {
                    return Err(E::custom("NaN is not a number"));
                }
                // `as` saturates at the bounds.
                Ok(LenientInt(v.floor() as i64))
            }
        }
        deserializer.deserialize_any(V)
    }
}

"#;

const LENIENT_I32: &str = r#"/// Reads an optional `integer` member: any number, floored (as AWS reads it), saturated to
/// `i32`; `null` is absent.
fn lenient_i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
    Ok(Option::<LenientInt>::deserialize(deserializer)?
        .map(|n| i32::try_from(n.0).unwrap_or(if n.0 < 0 { i32::MIN } else { i32::MAX })))
}

"#;

const LENIENT_I64: &str = r#"/// Reads an optional `long` member: any number, floored (as AWS reads it), saturated to
/// `i64`; `null` is absent.
fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<LenientInt>::deserialize(deserializer)?.map(|n| n.0))
}

"#;
