//! Resource policies: the JSON documents PutResourcePolicy attaches to streams and
//! consumers, parsed into a typed model and evaluated like IAM evaluates a resource-based
//! policy for a cross-account request.
//!
//! Every access key is its account's root (identity policies are out of scope), so a
//! request is described by the caller's account, the action and the resource ARN. The
//! subset of the policy language is the one Kinesis resource policies use; anything else
//! is refused when the policy is attached, never silently ignored at evaluation:
//! - `Version` (`2012-10-17` or `2008-10-17`), `Id`, `Statement` (an object or an array);
//! - per statement: `Sid`, `Effect` (`Allow`/`Deny`), `Principal` (`"*"`, or `{"AWS": …}`
//!   with 12-digit account ids or IAM ARNs; `NotPrincipal` is refused), `Action` or
//!   `NotAction`, `Resource` or `NotResource` (wildcards `*` and `?`);
//! - `Condition` with the operators `StringEquals`, `StringNotEquals`, `StringLike`,
//!   `StringNotLike` on the keys `aws:PrincipalAccount` and `aws:PrincipalArn` (the only
//!   facts known about a caller here); other operators or keys are refused.

use serde_json::Value;

use crate::arn::is_account_id;

/// The largest policy document accepted, in bytes. AWS's limit for Kinesis resource
/// policies is NOT PINNED by any source found; 20 KiB is the limit IAM applies to other
/// resource-based policies (see compat-tests/AWS_BEHAVIOUR.md).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Statements kept from one document: far above what 20 KiB can hold, a bound for the fuzzer.
const MAX_STATEMENTS: usize = 1024;

/// Whether a statement grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the matched requests (unless a Deny also matches).
    Allow,
    /// Refuses the matched requests, whatever any Allow says.
    Deny,
}

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `"*"` or `{"AWS": "*"}`: anyone.
    Anyone,
    /// `{"AWS": [...]}`: account ids (normalised from `ACCOUNT` and
    /// `arn:PARTITION:iam::ACCOUNT:root`) and other IAM principal ARNs (roles, users), kept
    /// as written; a root key never matches those.
    Aws {
        /// Accounts granted as a whole.
        accounts: Vec<String>,
        /// Principal ARNs that are not an account root.
        arns: Vec<String>,
    },
}

/// A list of patterns that either selects (`Action`, `Resource`) or excludes (`NotAction`,
/// `NotResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    /// Matches what one of the patterns matches.
    Only(Vec<String>),
    /// Matches what none of the patterns matches.
    AllBut(Vec<String>),
}

/// A supported condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionOperator {
    /// Exact, case-sensitive equality with one of the values.
    StringEquals,
    /// Equal to none of the values.
    StringNotEquals,
    /// Matches one of the values as a wildcard pattern.
    StringLike,
    /// Matches none of the values as a wildcard pattern.
    StringNotLike,
}

/// A supported condition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKey {
    /// `aws:PrincipalAccount`: the caller's account id.
    PrincipalAccount,
    /// `aws:PrincipalArn`: the caller's ARN (`arn:aws:iam::ACCOUNT:root` here).
    PrincipalArn,
}

/// One `"Operator": {"key": values}` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// How the values are compared.
    pub operator: ConditionOperator,
    /// What is compared.
    pub key: ConditionKey,
    /// The values (a string or an array of strings in the document).
    pub values: Vec<String>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement id, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Who it applies to.
    pub principal: Principal,
    /// `kinesis:*`-style action patterns (compared case-insensitively, as IAM does).
    pub actions: Patterns,
    /// ARN patterns (compared case-sensitively).
    pub resources: Patterns,
    /// All must hold for the statement to apply.
    pub conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    /// `Version`, if given.
    pub version: Option<String>,
    /// `Id`, if given.
    pub id: Option<String>,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// Why a document is refused; the text is the end of the InvalidArgumentException message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

fn invalid(msg: impl Into<String>) -> PolicyError {
    PolicyError(msg.into())
}

/// The outcome of evaluating a request against a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matches and no Deny does.
    Allow,
    /// A Deny statement matches.
    ExplicitDeny,
    /// No statement matches.
    ImplicitDeny,
}

/// The facts of a request that a policy is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller's 12-digit account id.
    pub account: &'a str,
    /// The operation name (`GetRecords`); the IAM action is `kinesis:` + this.
    pub action: &'a str,
    /// The ARN of the resource acted on.
    pub resource: &'a str,
}

impl Request<'_> {
    /// The caller's ARN: every key is its account's root.
    pub fn principal_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account)
    }
}

impl PolicyDocument {
    /// Parses `text`; the document must be a JSON object in the subset described above.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(invalid(format!(
                "Policy size {} bytes exceeds the limit of {MAX_POLICY_BYTES} bytes.",
                text.len()
            )));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("The policy is not valid JSON: {e}.")))?;
        let Value::Object(top) = value else {
            return Err(invalid("The policy must be a JSON object."));
        };
        let mut version = None;
        let mut id = None;
        let mut statements = None;
        for (key, value) in &top {
            match key.as_str() {
                "Version" => {
                    let v = string(value, "Version")?;
                    if v != "2012-10-17" && v != "2008-10-17" {
                        return Err(invalid(format!("Unsupported Version {v}: use 2012-10-17.")));
                    }
                    version = Some(v);
                }
                "Id" => id = Some(string(value, "Id")?),
                "Statement" => statements = Some(parse_statements(value)?),
                other => return Err(invalid(format!("Unknown policy element {other}."))),
            }
        }
        let statements = statements.ok_or_else(|| invalid("Missing required field Statement."))?;
        Ok(Self {
            version,
            id,
            statements,
        })
    }

    /// Checks that every `Resource` of the document can name `arn`, the resource the policy
    /// is attached to: a policy cannot grant access to anything else.
    pub fn check_attached_to(&self, arn: &str) -> Result<(), PolicyError> {
        for statement in &self.statements {
            if let Patterns::Only(patterns) = &statement.resources
                && let Some(other) = patterns.iter().find(|p| !wildcard_match(p, arn, false))
            {
                return Err(invalid(format!(
                    "Policy has invalid resource {other}: the policy is attached to {arn}."
                )));
            }
        }
        Ok(())
    }

    /// IAM's evaluation for a resource-based policy: an explicit Deny wins, else an Allow
    /// that matches grants, else the request is denied.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            if statement.applies_to(request) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

impl Statement {
    fn applies_to(&self, request: &Request<'_>) -> bool {
        let action = format!("kinesis:{}", request.action);
        self.principal.matches(request)
            && self.actions.matches(&action, true)
            && self.resources.matches(request.resource, false)
            && self.conditions.iter().all(|c| c.holds(request))
    }
}

impl Principal {
    fn matches(&self, request: &Request<'_>) -> bool {
        match self {
            Principal::Anyone => true,
            Principal::Aws { accounts, .. } => accounts.iter().any(|a| a == request.account),
        }
    }
}

impl Patterns {
    fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            Patterns::Only(p) => p.iter().any(|p| wildcard_match(p, value, ignore_case)),
            Patterns::AllBut(p) => !p.iter().any(|p| wildcard_match(p, value, ignore_case)),
        }
    }
}

impl Condition {
    fn holds(&self, request: &Request<'_>) -> bool {
        let actual = match self.key {
            ConditionKey::PrincipalAccount => request.account.to_string(),
            ConditionKey::PrincipalArn => request.principal_arn(),
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        match self.operator {
            ConditionOperator::StringEquals => any(&|v| v == actual),
            ConditionOperator::StringNotEquals => !any(&|v| v == actual),
            ConditionOperator::StringLike => any(&|v| wildcard_match(v, &actual, false)),
            ConditionOperator::StringNotLike => !any(&|v| wildcard_match(v, &actual, false)),
        }
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` exactly one. Iterative with
/// backtracking to the last `*`, so its time is bounded by pattern × value.
pub fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let same = |a: char, b: char| {
        if ignore_case {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], v[vi]))) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn string(value: &Value, field: &str) -> Result<String, PolicyError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("{field} must be a string.")))
}

/// A string or a non-empty array of strings.
fn strings(value: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|i| string(i, field)).collect()
        }
        _ => Err(invalid(format!(
            "{field} must be a string or a non-empty array of strings."
        ))),
    }
}

fn parse_statements(value: &Value) -> Result<Vec<Statement>, PolicyError> {
    let items: Vec<&Value> = match value {
        Value::Object(_) => vec![value],
        // An empty list is a policy that grants nothing, which AWS's examples never show
        // refused.
        Value::Array(items) => items.iter().collect(),
        _ => {
            return Err(invalid(
                "Statement must be an object or an array of objects.",
            ));
        }
    };
    if items.len() > MAX_STATEMENTS {
        return Err(invalid(format!(
            "A policy can have at most {MAX_STATEMENTS} statements."
        )));
    }
    items.into_iter().map(parse_statement).collect()
}

fn parse_statement(value: &Value) -> Result<Statement, PolicyError> {
    let Value::Object(fields) = value else {
        return Err(invalid("Each Statement must be a JSON object."));
    };
    let mut sid = None;
    let mut effect = None;
    let mut principal = None;
    let mut actions = None;
    let mut resources = None;
    let mut conditions = Vec::new();
    for (key, value) in fields {
        match key.as_str() {
            "Sid" => sid = Some(string(value, "Sid")?),
            "Effect" => {
                effect = Some(match string(value, "Effect")?.as_str() {
                    "Allow" => Effect::Allow,
                    "Deny" => Effect::Deny,
                    other => {
                        return Err(invalid(format!(
                            "Invalid Effect {other}: use Allow or Deny."
                        )));
                    }
                })
            }
            "Principal" => principal = Some(parse_principal(value)?),
            "NotPrincipal" => {
                return Err(invalid(
                    "NotPrincipal is not supported in resource policies by kinesis-broker.",
                ));
            }
            "Action" | "NotAction" => {
                if actions.is_some() {
                    return Err(invalid(
                        "A statement has either Action or NotAction, not both.",
                    ));
                }
                let list = strings(value, key)?;
                for action in &list {
                    check_action(action)?;
                }
                actions = Some(if key == "Action" {
                    Patterns::Only(list)
                } else {
                    Patterns::AllBut(list)
                });
            }
            "Resource" | "NotResource" => {
                if resources.is_some() {
                    return Err(invalid(
                        "A statement has either Resource or NotResource, not both.",
                    ));
                }
                let list = strings(value, key)?;
                for resource in &list {
                    check_resource(resource)?;
                }
                resources = Some(if key == "Resource" {
                    Patterns::Only(list)
                } else {
                    Patterns::AllBut(list)
                });
            }
            "Condition" => conditions = parse_conditions(value)?,
            other => return Err(invalid(format!("Unknown statement element {other}."))),
        }
    }
    Ok(Statement {
        sid,
        effect: effect.ok_or_else(|| invalid("Missing required field Effect."))?,
        principal: principal.ok_or_else(|| invalid("Missing required field Principal."))?,
        actions: actions.ok_or_else(|| invalid("Missing required field Action."))?,
        resources: resources.ok_or_else(|| invalid("Missing required field Resource."))?,
        conditions,
    })
}

fn parse_principal(value: &Value) -> Result<Principal, PolicyError> {
    let aws = match value {
        Value::String(s) if s == "*" => return Ok(Principal::Anyone),
        Value::Object(fields) => {
            if let Some(other) = fields.keys().find(|k| k.as_str() != "AWS") {
                return Err(invalid(format!(
                    "Unsupported principal type {other}: only AWS principals are supported."
                )));
            }
            fields
                .get("AWS")
                .ok_or_else(|| invalid("Principal must name AWS principals."))?
        }
        _ => return Err(invalid("Principal must be \"*\" or {\"AWS\": ...}.")),
    };
    let list = strings(aws, "Principal")?;
    if list.iter().any(|p| p == "*") {
        return Ok(Principal::Anyone);
    }
    let mut accounts = Vec::new();
    let mut arns = Vec::new();
    for p in list {
        if is_account_id(&p) {
            accounts.push(p);
        } else if let Some((account, resource)) = iam_arn(&p) {
            if resource == "root" {
                accounts.push(account.to_string());
            } else {
                arns.push(p);
            }
        } else {
            return Err(invalid(format!("Invalid principal {p}.")));
        }
    }
    Ok(Principal::Aws { accounts, arns })
}

/// `arn:PARTITION:iam::ACCOUNT:RESOURCE` → (ACCOUNT, RESOURCE).
fn iam_arn(s: &str) -> Option<(&str, &str)> {
    let arn = crate::arn::Arn::parse(s)?;
    (arn.in_aws_partition()
        && (arn.service == "iam" || arn.service == "sts")
        && arn.region.is_empty()
        && is_account_id(arn.account)
        && !arn.resource.is_empty())
    .then_some((arn.account, arn.resource))
}

fn check_action(action: &str) -> Result<(), PolicyError> {
    if action == "*" {
        return Ok(());
    }
    match action.split_once(':') {
        Some((service, name))
            if service.eq_ignore_ascii_case("kinesis")
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?') =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "Invalid action {action}: a Kinesis resource policy names kinesis: actions."
        ))),
    }
}

fn check_resource(resource: &str) -> Result<(), PolicyError> {
    if resource == "*" || resource.starts_with("arn:") {
        Ok(())
    } else {
        Err(invalid(format!("Invalid resource {resource}.")))
    }
}

fn parse_conditions(value: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = value else {
        return Err(invalid("Condition must be a JSON object."));
    };
    let mut out = Vec::new();
    for (operator, tests) in operators {
        let operator = match operator.as_str() {
            "StringEquals" => ConditionOperator::StringEquals,
            "StringNotEquals" => ConditionOperator::StringNotEquals,
            "StringLike" => ConditionOperator::StringLike,
            "StringNotLike" => ConditionOperator::StringNotLike,
            other => {
                return Err(invalid(format!(
                    "Unsupported condition operator {other}: kinesis-broker supports StringEquals, StringNotEquals, StringLike and StringNotLike."
                )));
            }
        };
        let Value::Object(tests) = tests else {
            return Err(invalid("Each condition operator takes a JSON object."));
        };
        for (key, values) in tests {
            let key = if key.eq_ignore_ascii_case("aws:PrincipalAccount") {
                ConditionKey::PrincipalAccount
            } else if key.eq_ignore_ascii_case("aws:PrincipalArn") {
                ConditionKey::PrincipalArn
            } else {
                return Err(invalid(format!(
                    "Unsupported condition key {key}: kinesis-broker supports aws:PrincipalAccount and aws:PrincipalArn."
                )));
            };
            out.push(Condition {
                operator,
                key,
                values: strings(values, "Condition value")?,
            });
        }
    }
    Ok(out)
}

/// A long-lived reader's right to a resource of another account (an event-source mapping
/// polling a stream, a SubscribeToShard session), re-checked on every poll as Lambda's
/// poller and Kinesis re-check each call. The decision is cached with the policy text it
/// was made on, so a poll costs one comparison with the resource's current text and the
/// document is parsed again only after the owner changed (or removed) it.
#[derive(Debug, Clone)]
pub struct StandingAccess {
    account: String,
    resource: String,
    actions: &'static [&'static str],
    /// The text the cached decision was made on (`None` inside: no policy attached).
    decided_on: Option<Option<String>>,
    allowed: bool,
}

impl StandingAccess {
    /// `account` reading `resource` (of another account) with every one of `actions`.
    pub fn new(account: &str, resource: &str, actions: &'static [&'static str]) -> Self {
        Self {
            account: account.to_string(),
            resource: resource.to_string(),
            actions,
            decided_on: None,
            allowed: false,
        }
    }

    /// Whether `policy` (the resource's current document, if any) still allows every
    /// action. A document that no longer parses allows nothing (it was checked when
    /// attached, so that means a newer version of the rules refuses it).
    pub fn allowed(&mut self, policy: Option<&str>) -> bool {
        if self.decided_on.as_ref().map(Option::as_deref) == Some(policy) {
            return self.allowed;
        }
        let document = policy.and_then(|text| PolicyDocument::parse(text).ok());
        self.allowed = document.is_some_and(|doc| {
            self.actions.iter().all(|action| {
                doc.evaluate(&Request {
                    account: &self.account,
                    action,
                    resource: &self.resource,
                }) == Decision::Allow
            })
        });
        self.decided_on = Some(policy.map(str::to_string));
        self.allowed
    }
}

#[cfg(test)]
mod tests;
