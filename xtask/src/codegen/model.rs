//! Stage 1: the botocore service model, parsed into typed structs.
//!
//! Only the keys the generator uses are declared; serde ignores the others
//! (`contextParam`, `staticContextParams`, `readonly`, `auth`, ...). Maps keep the model's
//! order (members are validated in model order), hence [`Ordered`].

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::fmt;

/// A JSON object kept in document order.
#[derive(Debug)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<V> Ordered<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<V>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    assert!(
                        !out.iter().any(|(key, _): &(String, V)| *key == k),
                        "duplicate key {k} in the model"
                    );
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
pub struct Model {
    pub metadata: Metadata,
    pub operations: Ordered<Operation>,
    pub shapes: Ordered<Shape>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub api_version: String,
    pub protocol: String,
    pub json_version: String,
    pub target_prefix: String,
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub name: String,
    pub http: Http,
    pub input: Option<ShapeRef>,
    pub output: Option<ShapeRef>,
    #[serde(default)]
    pub errors: Vec<ShapeRef>,
    pub documentation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    pub method: String,
    pub request_uri: String,
}

#[derive(Debug, Deserialize)]
pub struct ShapeRef {
    pub shape: String,
}

#[derive(Debug, Deserialize)]
pub struct Member {
    pub shape: String,
    pub documentation: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Shape {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub members: Ordered<Member>,
    #[serde(default)]
    pub required: Vec<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub pattern: Option<String>,
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    #[serde(default)]
    pub exception: bool,
    #[serde(default)]
    pub fault: bool,
    #[serde(default)]
    pub eventstream: bool,
    #[serde(default)]
    pub event: bool,
    pub member: Option<ShapeRef>,
    pub key: Option<ShapeRef>,
    pub value: Option<ShapeRef>,
    pub documentation: Option<String>,
}

impl Model {
    pub fn load(path: &std::path::Path) -> Model {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read the model {}: {e}", path.display()));
        let model: Model = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("cannot parse the model {}: {e}", path.display()));
        model.check();
        model
    }

    pub fn shape(&self, name: &str) -> &Shape {
        self.shapes
            .get(name)
            .unwrap_or_else(|| panic!("shape {name} is not in the model"))
    }

    /// The assumptions the generator makes, asserted up front.
    fn check(&self) {
        assert_eq!(self.metadata.protocol, "json");
        assert_eq!(self.metadata.json_version, "1.1");
        assert_eq!(self.metadata.api_version, "2013-12-02");
        assert_eq!(self.metadata.target_prefix, "Kinesis_20131202");
        for (name, op) in self.operations.iter() {
            assert_eq!(name, op.name, "operation key and name differ");
            assert_eq!(
                (op.http.method.as_str(), op.http.request_uri.as_str()),
                ("POST", "/")
            );
            let input = op
                .input
                .as_ref()
                .unwrap_or_else(|| panic!("{name} has no input"));
            assert_eq!(
                input.shape,
                format!("{name}Input"),
                "input of {name} is not named after it"
            );
            if let Some(output) = &op.output {
                // Two operations share `EnhancedMonitoringOutput`; every other output is
                // `<Op>Output`.
                assert!(
                    output.shape == format!("{name}Output")
                        || output.shape == "EnhancedMonitoringOutput",
                    "unexpected output shape {} of {name}",
                    output.shape
                );
            }
            for e in &op.errors {
                assert!(
                    self.shape(&e.shape).exception,
                    "{} listed as error is no exception",
                    e.shape
                );
            }
        }
        for (name, s) in self.shapes.iter() {
            match s.ty.as_str() {
                "structure" => {
                    for r in &s.required {
                        assert!(
                            s.members.get(r).is_some(),
                            "{name}: required {r} is no member"
                        );
                    }
                    for (_, m) in s.members.iter() {
                        self.shape(&m.shape);
                    }
                    assert!(s.min.is_none() && s.max.is_none() && s.pattern.is_none());
                }
                "string" => {
                    if s.enum_values.is_some() {
                        assert!(
                            s.min.is_none() && s.max.is_none() && s.pattern.is_none(),
                            "{name}: enum with more constraints"
                        );
                    }
                }
                "list" => {
                    self.shape(&s.member.as_ref().expect("list without member").shape);
                    assert!(s.pattern.is_none() && s.enum_values.is_none());
                }
                "map" => {
                    let k = self.shape(&s.key.as_ref().expect("map without key").shape);
                    assert_eq!(k.ty, "string", "{name}: non-string map key");
                    self.shape(&s.value.as_ref().expect("map without value").shape);
                }
                "integer" | "long" | "blob" => {
                    assert!(s.pattern.is_none() && s.enum_values.is_none())
                }
                "boolean" | "timestamp" => {
                    assert!(
                        s.min.is_none()
                            && s.max.is_none()
                            && s.pattern.is_none()
                            && s.enum_values.is_none()
                    )
                }
                other => panic!("{name}: unsupported shape type {other}"),
            }
            if s.ty != "structure" {
                assert!(
                    s.members.0.is_empty() && s.required.is_empty(),
                    "{name}: members on a {}",
                    s.ty
                );
            }
            if let (Some(min), Some(max)) = (s.min, s.max) {
                assert!(min <= max, "{name}: min > max");
            }
        }
    }
}
