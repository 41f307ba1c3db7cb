//! A mapping's `FilterCriteria`: Lambda's event filtering, which uses EventBridge's pattern
//! syntax. A record that matches none of the filters is never delivered, and the checkpoint
//! moves past it as if it had been ("Properly filtering Kinesis and DynamoDB messages" in the
//! Lambda developer guide).
//!
//! What a pattern is matched against, for a Kinesis record:
//!
//! | pattern key | value |
//! |---|---|
//! | `data` | the record's data parsed as JSON; a record whose data is not JSON never matches a filter that names `data` |
//! | `partitionKey`, `sequenceNumber`, `approximateArrivalTimestamp`, `kinesisSchemaVersion` | the `kinesis` member's fields, as in the Lambda guide's examples |
//! | `kinesis`, `eventSource`, `eventID`, `eventName`, `awsRegion`, … | the event record as delivered (so `{"kinesis": {"partitionKey": [...]}}` works too) |
//!
//! Operators (EventBridge's): exact strings, numbers (compared as text, as Lambda documents:
//! `300` is not `300.0`), booleans and `null`; `""` (empty); `prefix` and `suffix` (each also
//! `{"equals-ignore-case": …}`); `equals-ignore-case`; `anything-but` (a value, a list, or a
//! `prefix`/`suffix`/`equals-ignore-case`); `numeric` (one or two comparisons); `exists`;
//! `wildcard`; `$or`. Several values in one list are ORed; several keys are ANDed; up to five
//! filters are ORed. Anything else is refused at create/update with Lambda's text
//! "Invalid filter pattern definition." (a pattern the matcher could never satisfy would
//! silently discard every record).

use serde_json::{Map, Number, Value, json};

/// Filters per mapping: Lambda's default quota.
pub const MAX_FILTERS: usize = 5;
/// Lambda's model: a Pattern is at most 4,096 characters.
pub const MAX_PATTERN_CHARS: usize = 4096;

const INVALID: &str = "Invalid filter pattern definition.";

/// A mapping's parsed filters; no filters means every record is delivered.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    patterns: Vec<Pattern>,
}

/// A JSON object of the pattern: every field must match, and one `$or` branch when present.
#[derive(Debug, Clone)]
struct Pattern {
    fields: Vec<(String, Field)>,
    any_of: Vec<Vec<Pattern>>,
}

#[derive(Debug, Clone)]
enum Field {
    Nested(Pattern),
    Matchers(Vec<Matcher>),
}

#[derive(Debug, Clone)]
enum Matcher {
    /// A string, a number (as text), a boolean or null.
    Exact(Value),
    Prefix {
        text: String,
        ignore_case: bool,
    },
    Suffix {
        text: String,
        ignore_case: bool,
    },
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    AnythingButIgnoreCase(Vec<String>),
    Numeric(Vec<(Comparison, f64)>),
    Exists(bool),
    Wildcard(String),
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

type Invalid = String;

fn invalid() -> Invalid {
    INVALID.to_string()
}

impl Filters {
    /// Parses a request's `FilterCriteria` (`{"Filters": [{"Pattern": "…"}]}`). `null`, `{}`
    /// and an empty `Filters` list mean no filtering (how an update removes the filters).
    pub fn parse(criteria: &Value) -> Result<Filters, Invalid> {
        let filters = match criteria {
            Value::Null => return Ok(Filters::default()),
            Value::Object(o) => match o.get("Filters") {
                None | Some(Value::Null) => return Ok(Filters::default()),
                Some(Value::Array(list)) => list,
                Some(_) => return Err("FilterCriteria.Filters must be a list.".into()),
            },
            _ => return Err("FilterCriteria must be an object.".into()),
        };
        if filters.len() > MAX_FILTERS {
            return Err(format!(
                "1 validation error detected: Value at 'filterCriteria.filters' failed to satisfy constraint: Member must have length less than or equal to {MAX_FILTERS}"
            ));
        }
        let mut patterns = Vec::with_capacity(filters.len());
        for filter in filters {
            let text = match filter.get("Pattern") {
                Some(Value::String(s)) => s,
                None | Some(Value::Null) => return Err(invalid()),
                Some(_) => return Err("FilterCriteria.Filters[].Pattern must be a string.".into()),
            };
            if text.chars().count() > MAX_PATTERN_CHARS {
                return Err(format!(
                    "1 validation error detected: Value at 'filterCriteria.filters.member.pattern' failed to satisfy constraint: Member must have length less than or equal to {MAX_PATTERN_CHARS}"
                ));
            }
            let value: Value = serde_json::from_str(text).map_err(|_| invalid())?;
            let Value::Object(object) = value else {
                return Err(invalid());
            };
            patterns.push(Pattern::parse(&object)?);
        }
        Ok(Filters { patterns })
    }

    /// The criteria as stored and shown (`{"Filters": [{"Pattern": …}]}`), from what the
    /// request said; `None` when there are none.
    pub fn normalized(criteria: &Value) -> Option<Value> {
        let list = criteria.get("Filters")?.as_array()?;
        if list.is_empty() {
            return None;
        }
        let filters: Vec<Value> = list
            .iter()
            .map(|f| json!({"Pattern": f.get("Pattern").cloned().unwrap_or(Value::Null)}))
            .collect();
        Some(json!({ "Filters": filters }))
    }

    /// Filters that match no record.
    pub fn nothing() -> Filters {
        Filters {
            patterns: vec![Pattern {
                fields: Vec::new(),
                any_of: vec![Vec::new()],
            }],
        }
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the record is delivered: `record` is its event record as delivered
    /// (`{"kinesis": {…}, "eventSource": …}`), `data` its raw data.
    pub fn matches(&self, record: &Value, data: &[u8]) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let parsed = std::cell::OnceCell::new();
        let root = Root {
            record,
            data: &|| {
                parsed
                    .get_or_init(|| serde_json::from_slice::<Value>(data).ok())
                    .as_ref()
            },
        };
        self.patterns.iter().any(|p| p.matches_root(&root))
    }
}

/// The object a pattern's top level is matched against (see the module's table); the data is
/// parsed at most once, and only when a pattern names it.
struct Root<'a> {
    record: &'a Value,
    data: &'a dyn Fn() -> Option<&'a Value>,
}

impl Root<'_> {
    fn get(&self, key: &str) -> Lookup<'_> {
        if key == "data" {
            return match (self.data)() {
                Some(v) => Lookup::Found(v),
                None => Lookup::Unmatchable,
            };
        }
        if let Some(v) = self.record.get(key) {
            return Lookup::Found(v);
        }
        match self.record.get("kinesis").and_then(|k| k.get(key)) {
            Some(v) => Lookup::Found(v),
            None => Lookup::Missing,
        }
    }
}

enum Lookup<'a> {
    Found(&'a Value),
    Missing,
    /// The record's data is not JSON: a filter on `data` cannot match it.
    Unmatchable,
}

impl Pattern {
    fn parse(object: &Map<String, Value>) -> Result<Pattern, Invalid> {
        if object.is_empty() {
            return Err(invalid());
        }
        let mut fields = Vec::new();
        let mut any_of = Vec::new();
        for (key, value) in object {
            if key == "$or" {
                let Value::Array(branches) = value else {
                    return Err(invalid());
                };
                if branches.len() < 2 {
                    return Err(invalid());
                }
                let mut parsed = Vec::with_capacity(branches.len());
                for branch in branches {
                    let Value::Object(o) = branch else {
                        return Err(invalid());
                    };
                    parsed.push(Pattern::parse(o)?);
                }
                any_of.push(parsed);
                continue;
            }
            let field = match value {
                Value::Object(o) => Field::Nested(Pattern::parse(o)?),
                Value::Array(list) if !list.is_empty() => Field::Matchers(
                    list.iter()
                        .map(Matcher::parse)
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => return Err(invalid()),
            };
            fields.push((key.clone(), field));
        }
        Ok(Pattern { fields, any_of })
    }

    fn matches_root(&self, root: &Root<'_>) -> bool {
        self.fields.iter().all(|(key, field)| match root.get(key) {
            Lookup::Found(v) => field.matches(Some(v)),
            Lookup::Missing => field.matches(None),
            Lookup::Unmatchable => false,
        }) && self
            .any_of
            .iter()
            .all(|branches| branches.iter().any(|b| b.matches_root(root)))
    }

    fn matches_object(&self, object: Option<&Map<String, Value>>) -> bool {
        self.fields
            .iter()
            .all(|(key, field)| field.matches(object.and_then(|o| o.get(key))))
            && self
                .any_of
                .iter()
                .all(|branches| branches.iter().any(|b| b.matches_object(object)))
    }
}

impl Field {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Field::Nested(pattern) => match value {
                // EventBridge matches a pattern against an array by its elements.
                Some(Value::Array(items)) => items.iter().any(|i| {
                    i.as_object()
                        .is_some_and(|o| pattern.matches_object(Some(o)))
                }),
                Some(Value::Object(o)) => pattern.matches_object(Some(o)),
                Some(_) => false,
                None => pattern.matches_object(None),
            },
            Field::Matchers(matchers) => match value {
                None => matchers.iter().any(|m| matches!(m, Matcher::Exists(false))),
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|item| matchers.iter().any(|m| m.matches_leaf(item))),
                Some(v) => matchers.iter().any(|m| m.matches_leaf(v)),
            },
        }
    }
}

fn string_of(value: &Value) -> Result<String, Invalid> {
    value.as_str().map(str::to_string).ok_or_else(invalid)
}

/// `"text"` or `{"equals-ignore-case": "text"}` (how `prefix` and `suffix` take their value).
fn text_maybe_ignoring_case(value: &Value) -> Result<(String, bool), Invalid> {
    match value {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Object(o) if o.len() == 1 => match o.get("equals-ignore-case") {
            Some(Value::String(s)) => Ok((s.clone(), true)),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

impl Matcher {
    fn parse(item: &Value) -> Result<Matcher, Invalid> {
        let object = match item {
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => {
                return Ok(Matcher::Exact(item.clone()));
            }
            Value::Array(_) => return Err(invalid()),
            Value::Object(o) => o,
        };
        if object.len() != 1 {
            return Err(invalid());
        }
        let Some((operator, operand)) = object.iter().next() else {
            return Err(invalid());
        };
        match operator.as_str() {
            "prefix" => {
                let (text, ignore_case) = text_maybe_ignoring_case(operand)?;
                Ok(Matcher::Prefix { text, ignore_case })
            }
            "suffix" => {
                let (text, ignore_case) = text_maybe_ignoring_case(operand)?;
                Ok(Matcher::Suffix { text, ignore_case })
            }
            "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(string_of(operand)?)),
            "exists" => match operand {
                Value::Bool(b) => Ok(Matcher::Exists(*b)),
                _ => Err(invalid()),
            },
            "wildcard" => Ok(Matcher::Wildcard(string_of(operand)?)),
            "numeric" => Self::parse_numeric(operand),
            "anything-but" => Self::parse_anything_but(operand),
            _ => Err(invalid()),
        }
    }

    fn parse_numeric(operand: &Value) -> Result<Matcher, Invalid> {
        let Value::Array(parts) = operand else {
            return Err(invalid());
        };
        if parts.is_empty() || parts.len() % 2 != 0 || parts.len() > 4 {
            return Err(invalid());
        }
        let mut comparisons = Vec::new();
        for pair in parts.chunks(2) {
            let comparison = match pair[0].as_str() {
                Some("=") => Comparison::Eq,
                Some("<") => Comparison::Lt,
                Some("<=") => Comparison::Le,
                Some(">") => Comparison::Gt,
                Some(">=") => Comparison::Ge,
                _ => return Err(invalid()),
            };
            let n = pair[1].as_f64().filter(|n| n.is_finite());
            comparisons.push((comparison, n.ok_or_else(invalid)?));
        }
        // A range is a lower bound then an upper bound; "=" stands alone.
        if let [(lower, _), (upper, _)] = comparisons[..] {
            let lower_ok = matches!(lower, Comparison::Gt | Comparison::Ge);
            let upper_ok = matches!(upper, Comparison::Lt | Comparison::Le);
            if !lower_ok || !upper_ok {
                return Err(invalid());
            }
        }
        Ok(Matcher::Numeric(comparisons))
    }

    fn parse_anything_but(operand: &Value) -> Result<Matcher, Invalid> {
        let leaf = |v: &Value| matches!(v, Value::String(_) | Value::Number(_));
        match operand {
            v if leaf(v) => Ok(Matcher::AnythingBut(vec![v.clone()])),
            Value::Array(list) if !list.is_empty() && list.iter().all(leaf) => {
                Ok(Matcher::AnythingBut(list.clone()))
            }
            Value::Object(o) if o.len() == 1 => match o.iter().next() {
                Some((k, Value::String(s))) if k == "prefix" => {
                    Ok(Matcher::AnythingButPrefix(s.clone()))
                }
                Some((k, Value::String(s))) if k == "suffix" => {
                    Ok(Matcher::AnythingButSuffix(s.clone()))
                }
                Some((k, v)) if k == "equals-ignore-case" => {
                    let list = match v {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(l) if !l.is_empty() => {
                            l.iter().map(string_of).collect::<Result<Vec<_>, _>>()?
                        }
                        _ => return Err(invalid()),
                    };
                    Ok(Matcher::AnythingButIgnoreCase(list))
                }
                _ => Err(invalid()),
            },
            _ => Err(invalid()),
        }
    }

    /// Whether a present value that is not an array matches.
    fn matches_leaf(&self, value: &Value) -> bool {
        let text = value.as_str();
        match self {
            Matcher::Exact(expected) => exact(expected, value),
            Matcher::Prefix {
                text: p,
                ignore_case,
            } => text.is_some_and(|t| {
                if *ignore_case {
                    t.to_lowercase().starts_with(&p.to_lowercase())
                } else {
                    t.starts_with(p.as_str())
                }
            }),
            Matcher::Suffix {
                text: s,
                ignore_case,
            } => text.is_some_and(|t| {
                if *ignore_case {
                    t.to_lowercase().ends_with(&s.to_lowercase())
                } else {
                    t.ends_with(s.as_str())
                }
            }),
            Matcher::EqualsIgnoreCase(e) => {
                text.is_some_and(|t| t.to_lowercase() == e.to_lowercase())
            }
            Matcher::AnythingBut(excluded) => {
                !value.is_object() && !excluded.iter().any(|e| exact(e, value))
            }
            Matcher::AnythingButPrefix(p) => text.is_some_and(|t| !t.starts_with(p.as_str())),
            Matcher::AnythingButSuffix(s) => text.is_some_and(|t| !t.ends_with(s.as_str())),
            Matcher::AnythingButIgnoreCase(excluded) => text.is_some_and(|t| {
                let t = t.to_lowercase();
                !excluded.iter().any(|e| e.to_lowercase() == t)
            }),
            Matcher::Numeric(comparisons) => value.as_f64().is_some_and(|n| {
                comparisons.iter().all(|&(c, bound)| match c {
                    Comparison::Eq => n == bound,
                    Comparison::Lt => n < bound,
                    Comparison::Le => n <= bound,
                    Comparison::Gt => n > bound,
                    Comparison::Ge => n >= bound,
                })
            }),
            // EventBridge's `exists` matches leaves only.
            Matcher::Exists(expected) => *expected && !value.is_object(),
            Matcher::Wildcard(pattern) => text.is_some_and(|t| wildcard(pattern, t)),
        }
    }
}

/// Equality as Lambda documents it: strings character by character, numbers by their text.
fn exact(expected: &Value, value: &Value) -> bool {
    match (expected, value) {
        (Value::Number(a), Value::Number(b)) => number_text(a) == number_text(b),
        (a, b) => a == b,
    }
}

fn number_text(n: &Number) -> String {
    n.to_string()
}

/// `*` matches any run of characters (EventBridge's `wildcard`; `\*` is a literal star).
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'*') => {
                chars.next();
                if let Some(p) = parts.last_mut() {
                    p.push('*')
                }
            }
            '*' => parts.push(String::new()),
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c)
                }
            }
        }
    }
    let (first, rest) = parts.split_first().expect("parts starts non-empty");
    let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria(patterns: &[Value]) -> Value {
        let filters: Vec<Value> = patterns
            .iter()
            .map(|p| json!({"Pattern": p.to_string()}))
            .collect();
        json!({ "Filters": filters })
    }

    fn filters(patterns: &[Value]) -> Filters {
        Filters::parse(&criteria(patterns)).expect("valid pattern")
    }

    fn record(partition_key: &str) -> Value {
        json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": partition_key,
                "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                "data": "ignored: the raw data is passed separately",
                "approximateArrivalTimestamp": 1545084650.987
            },
            "eventSource": "aws:kinesis",
            "eventName": "aws:kinesis:record",
            "awsRegion": "us-east-1",
        })
    }

    fn hit(f: &Filters, data: Value) -> bool {
        f.matches(&record("pk-1"), data.to_string().as_bytes())
    }

    #[test]
    fn equals_and_or_within_a_list() {
        let f = filters(&[json!({"data": {"order": {"type": ["buy", "hold"]}}})]);
        assert!(hit(&f, json!({"order": {"type": "buy"}})));
        assert!(hit(&f, json!({"order": {"type": "hold"}})));
        assert!(!hit(&f, json!({"order": {"type": "sell"}})));
        assert!(!hit(&f, json!({"order": {}})));
        assert!(!hit(&f, json!({"other": 1})));
    }

    #[test]
    fn keys_are_anded_and_filters_ored() {
        let f = filters(&[
            json!({"data": {"city": ["Seattle"], "state": ["WA"]}}),
            json!({"data": {"city": ["Boston"]}}),
        ]);
        assert!(hit(&f, json!({"city": "Seattle", "state": "WA"})));
        assert!(!hit(&f, json!({"city": "Seattle", "state": "OR"})));
        assert!(hit(&f, json!({"city": "Boston", "state": "MA"})));
    }

    #[test]
    fn numbers_compare_by_text_and_numeric_ranges() {
        let f = filters(&[json!({"data": {"price": [100]}})]);
        assert!(hit(&f, json!({"price": 100})));
        assert!(!hit(&f, json!({"price": 100.5})));
        assert!(!hit(&f, json!({"price": "100"})));
        let f = filters(&[json!({"data": {"t": [{"numeric": [">", 50, "<=", 60]}]}})]);
        assert!(hit(&f, json!({"t": 55})));
        assert!(hit(&f, json!({"t": 60})));
        assert!(!hit(&f, json!({"t": 50})));
        assert!(!hit(&f, json!({"t": "55"})));
        let f = filters(&[json!({"data": {"t": [{"numeric": ["=", 3]}]}})]);
        assert!(hit(&f, json!({"t": 3.0})));
    }

    #[test]
    fn prefix_suffix_ignore_case_wildcard() {
        let f = filters(&[json!({"data": {"region": [{"prefix": "us-"}]}})]);
        assert!(hit(&f, json!({"region": "us-east-1"})));
        assert!(!hit(&f, json!({"region": "eu-west-1"})));
        let f = filters(&[json!({"data": {"file": [{"suffix": {"equals-ignore-case": ".PNG"}}]}})]);
        assert!(hit(&f, json!({"file": "a.png"})));
        let f = filters(&[json!({"data": {"s": [{"equals-ignore-case": "Alice"}]}})]);
        assert!(hit(&f, json!({"s": "aLiCe"})));
        let f = filters(&[json!({"data": {"p": [{"wildcard": "dir/*/file*.txt"}]}})]);
        assert!(hit(&f, json!({"p": "dir/a/b/file1.txt"})));
        assert!(!hit(&f, json!({"p": "dir/file1.txt"})));
    }

    #[test]
    fn anything_but_exists_null_empty() {
        let f = filters(&[json!({"data": {"w": [{"anything-but": ["rain", "snow"]}]}})]);
        assert!(hit(&f, json!({"w": "sun"})));
        assert!(!hit(&f, json!({"w": "rain"})));
        assert!(!hit(&f, json!({})), "anything-but needs the field");
        let f = filters(&[json!({"data": {"w": [{"anything-but": {"prefix": "ra"}}]}})]);
        assert!(hit(&f, json!({"w": "sun"})));
        assert!(!hit(&f, json!({"w": "rain"})));
        let f = filters(&[json!({"data": {"n": [{"exists": true}]}})]);
        assert!(hit(&f, json!({"n": 0})));
        assert!(!hit(&f, json!({"m": 0})));
        assert!(
            !hit(&f, json!({"n": {"deeper": 1}})),
            "exists matches leaves"
        );
        let f = filters(&[json!({"data": {"n": [{"exists": false}]}})]);
        assert!(hit(&f, json!({"m": 0})));
        assert!(!hit(&f, json!({"n": 0})));
        let f = filters(&[json!({"data": {"u": [null]}})]);
        assert!(hit(&f, json!({"u": null})));
        assert!(!hit(&f, json!({})));
        let f = filters(&[json!({"data": {"u": [""]}})]);
        assert!(hit(&f, json!({"u": ""})));
        assert!(!hit(&f, json!({"u": "x"})));
    }

    #[test]
    fn arrays_in_the_event_match_by_element() {
        let f = filters(&[json!({"data": {"tags": ["red"]}})]);
        assert!(hit(&f, json!({"tags": ["blue", "red"]})));
        assert!(!hit(&f, json!({"tags": ["blue"]})));
        let f = filters(&[json!({"data": {"items": {"sku": ["a"]}}})]);
        assert!(hit(&f, json!({"items": [{"sku": "b"}, {"sku": "a"}]})));
    }

    #[test]
    fn or_operator() {
        let f = filters(&[json!({"data": {"$or": [{"a": [1]}, {"b": [2]}]}})]);
        assert!(hit(&f, json!({"a": 1})));
        assert!(hit(&f, json!({"b": 2})));
        assert!(!hit(&f, json!({"a": 2, "b": 1})));
    }

    #[test]
    fn metadata_fields_and_non_json_data() {
        let f = filters(&[json!({"partitionKey": ["pk-1"]})]);
        assert!(
            f.matches(&record("pk-1"), b"not json"),
            "metadata-only filters ignore data"
        );
        assert!(!f.matches(&record("pk-2"), b"{}"));
        let f = filters(&[json!({"kinesis": {"partitionKey": [{"prefix": "pk-"}]}})]);
        assert!(f.matches(&record("pk-9"), b""));
        let f = filters(&[json!({"partitionKey": ["pk-1"], "data": {"a": [1]}})]);
        assert!(f.matches(&record("pk-1"), br#"{"a":1}"#));
        assert!(
            !f.matches(&record("pk-1"), b"not json"),
            "a data filter drops non-JSON data"
        );
        let f = filters(&[
            json!({"data": {"a": [1]}}),
            json!({"eventName": ["aws:kinesis:record"]}),
        ]);
        assert!(
            f.matches(&record("pk-1"), b"not json"),
            "another filter may still match"
        );
    }

    #[test]
    fn no_filters_deliver_everything() {
        for c in [Value::Null, json!({}), json!({"Filters": []})] {
            let f = Filters::parse(&c).unwrap();
            assert!(f.is_empty());
            assert!(f.matches(&record("x"), b"anything"));
            assert!(Filters::normalized(&c).is_none());
        }
    }

    #[test]
    fn invalid_patterns_are_refused() {
        let bad = [
            "not json",
            "[1, 2]",
            "{}",
            r#"{"data": {}}"#,
            r#"{"a": []}"#,
            r#"{"a": "x"}"#,
            r#"{"a": 1}"#,
            r#"{"a": [[1]]}"#,
            r#"{"a": [{"unknown": 1}]}"#,
            r#"{"a": [{"prefix": 1}]}"#,
            r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#,
            r#"{"a": [{"numeric": [">"]}]}"#,
            r#"{"a": [{"numeric": ["~", 1]}]}"#,
            r#"{"a": [{"numeric": ["<", 1, ">", 0]}]}"#,
            r#"{"a": [{"numeric": [">", "1"]}]}"#,
            r#"{"a": [{"exists": "yes"}]}"#,
            r#"{"a": [{"anything-but": []}]}"#,
            r#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#,
            r#"{"$or": [{"a": [1]}]}"#,
            r#"{"$or": {"a": [1]}}"#,
        ];
        for pattern in bad {
            let c = json!({"Filters": [{"Pattern": pattern}]});
            assert_eq!(
                Filters::parse(&c).unwrap_err(),
                INVALID,
                "pattern {pattern} should be refused"
            );
        }
        let too_many: Vec<Value> = (0..6).map(|i| json!({"a": [i]})).collect();
        assert!(Filters::parse(&criteria(&too_many)).is_err());
        let long = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(MAX_PATTERN_CHARS));
        assert!(Filters::parse(&json!({"Filters": [{"Pattern": long}]})).is_err());
        assert!(Filters::parse(&json!({"Filters": [{}]})).is_err());
        assert!(Filters::parse(&json!("x")).is_err());
    }

    #[test]
    fn normalized_keeps_the_patterns_text() {
        let c = criteria(&[json!({"data": {"a": [1]}})]);
        assert_eq!(Filters::normalized(&c), Some(c.clone()));
    }

    #[test]
    fn wildcard_edges() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*", "a"));
        assert!(wildcard("*a", "ba"));
        assert!(!wildcard("*ab*ab", "ab"));
        assert!(wildcard(r"a\*b", "a*b"));
        assert!(!wildcard(r"a\*b", "axb"));
        assert!(wildcard("abc", "abc"));
        assert!(!wildcard("abc", "abcd"));
    }
}
