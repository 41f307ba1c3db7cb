use super::*;

const STREAM: &str = "arn:aws:kinesis:us-east-1:111111111111:stream/orders";
const OTHER: &str = "222222222222";

fn req<'a>(account: &'a str, action: &'a str, resource: &'a str) -> Request<'a> {
    Request {
        account,
        action,
        resource,
    }
}

fn allow(principal: &str, actions: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{principal},"Action":{actions},"Resource":"{STREAM}"}}}}"#
    )
}

#[test]
fn allow_grants_the_named_account_and_action_only() {
    let doc = PolicyDocument::parse(&allow(
        r#"{"AWS":"222222222222"}"#,
        r#""kinesis:GetRecords""#,
    ))
    .unwrap();
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::Allow
    );
    assert_eq!(
        doc.evaluate(&req(OTHER, "PutRecord", STREAM)),
        Decision::ImplicitDeny
    );
    assert_eq!(
        doc.evaluate(&req("333333333333", "GetRecords", STREAM)),
        Decision::ImplicitDeny
    );
    let other_stream = "arn:aws:kinesis:us-east-1:111111111111:stream/other";
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", other_stream)),
        Decision::ImplicitDeny
    );
}

#[test]
fn principal_forms() {
    for principal in [
        r#"{"AWS":"222222222222"}"#,
        r#"{"AWS":"arn:aws:iam::222222222222:root"}"#,
        r#"{"AWS":["333333333333","arn:aws:iam::222222222222:root"]}"#,
        r#""*""#,
        r#"{"AWS":"*"}"#,
    ] {
        let doc = PolicyDocument::parse(&allow(principal, r#""kinesis:GetRecords""#)).unwrap();
        assert_eq!(
            doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
            Decision::Allow,
            "{principal}"
        );
    }
    // A role of the account is not the account's root: a root key does not match it.
    let doc = PolicyDocument::parse(&allow(
        r#"{"AWS":"arn:aws:iam::222222222222:role/reader"}"#,
        r#""kinesis:GetRecords""#,
    ))
    .unwrap();
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::ImplicitDeny
    );
}

#[test]
fn action_wildcards_are_case_insensitive() {
    for actions in [
        r#""kinesis:*""#,
        r#""kinesis:Get*""#,
        r#""Kinesis:getrecords""#,
        r#"["kinesis:PutRecord","kinesis:GetRec?rds"]"#,
        r#""*""#,
    ] {
        let doc = PolicyDocument::parse(&allow(r#"{"AWS":"222222222222"}"#, actions)).unwrap();
        assert_eq!(
            doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
            Decision::Allow,
            "{actions}"
        );
    }
    let doc =
        PolicyDocument::parse(&allow(r#"{"AWS":"222222222222"}"#, r#""kinesis:Put*""#)).unwrap();
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::ImplicitDeny
    );
}

#[test]
fn deny_wins_over_allow_in_any_order() {
    let text = format!(
        r#"{{"Statement":[
            {{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{STREAM}"}},
            {{"Sid":"no-reads","Effect":"Deny","Principal":{{"AWS":"222222222222"}},"Action":"kinesis:GetRecords","Resource":"{STREAM}"}}
        ]}}"#
    );
    let doc = PolicyDocument::parse(&text).unwrap();
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::ExplicitDeny
    );
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetShardIterator", STREAM)),
        Decision::Allow
    );
    let mut reversed = doc.clone();
    reversed.statements.reverse();
    assert_eq!(
        reversed.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::ExplicitDeny
    );
}

#[test]
fn not_action_and_not_resource_exclude() {
    let text = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","NotAction":"kinesis:Put*","NotResource":"{STREAM}/consumer/*"}}}}"#
    );
    let doc = PolicyDocument::parse(&text).unwrap();
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::Allow
    );
    assert_eq!(
        doc.evaluate(&req(OTHER, "PutRecords", STREAM)),
        Decision::ImplicitDeny
    );
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", &format!("{STREAM}/consumer/c:1"))),
        Decision::ImplicitDeny
    );
}

#[test]
fn conditions_on_the_principal_account() {
    let text = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{STREAM}",
            "Condition":{{"StringEquals":{{"aws:PrincipalAccount":["222222222222"]}}}}}}}}"#
    );
    let doc = PolicyDocument::parse(&text).unwrap();
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::Allow
    );
    assert_eq!(
        doc.evaluate(&req("333333333333", "GetRecords", STREAM)),
        Decision::ImplicitDeny
    );
    let like = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{STREAM}",
            "Condition":{{"StringLike":{{"aws:PrincipalArn":"arn:aws:iam::2222*:root"}}}}}}}}"#
    );
    let doc = PolicyDocument::parse(&like).unwrap();
    assert_eq!(
        doc.evaluate(&req(OTHER, "GetRecords", STREAM)),
        Decision::Allow
    );
}

#[test]
fn refused_documents() {
    let cases = [
        ("", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ("{}", "Missing required field Statement"),
        (r#"{"Statement":7}"#, "an array of objects"),
        (r#"{"Version":"2020-01-01"}"#, "Unsupported Version"),
        (
            r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"kinesis:*","Resource":"*"}}"#,
            "Invalid Effect",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","NotPrincipal":"*","Action":"kinesis:*","Resource":"*"}}"#,
            "NotPrincipal",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}}"#,
            "Invalid action",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"kinesis:*","Resource":"*"}}"#,
            "Unsupported principal type",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"12345"},"Action":"kinesis:*","Resource":"*"}}"#,
            "Invalid principal",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}"#,
            "Unsupported condition operator IpAddress",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}}}}"#,
            "Unsupported condition key",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kinesis:*"}}"#,
            "Missing required field Resource",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"*","Bogus":1}}"#,
            "Unknown statement element Bogus",
        ),
    ];
    for (text, expected) in cases {
        let err = PolicyDocument::parse(text).unwrap_err();
        assert!(err.0.contains(expected), "{text}: {err}");
    }
    let huge = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"*","Sid":"{}"}}}}"#,
        "x".repeat(MAX_POLICY_BYTES)
    );
    assert!(
        PolicyDocument::parse(&huge)
            .unwrap_err()
            .0
            .contains("exceeds the limit")
    );
}

#[test]
fn resources_must_name_the_attached_resource() {
    let doc = PolicyDocument::parse(&allow(r#""*""#, r#""kinesis:*""#)).unwrap();
    doc.check_attached_to(STREAM).unwrap();
    let err = doc
        .check_attached_to("arn:aws:kinesis:us-east-1:111111111111:stream/other")
        .unwrap_err();
    assert!(err.0.contains("invalid resource"), "{err}");
    let wildcard = PolicyDocument::parse(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"arn:aws:kinesis:*:111111111111:stream/*"}}"#,
    )
    .unwrap();
    wildcard.check_attached_to(STREAM).unwrap();
}

#[test]
fn wildcard_matching() {
    assert!(wildcard_match("*", "", false));
    assert!(wildcard_match("a*c", "abbbc", false));
    assert!(wildcard_match("a?c", "abc", false));
    assert!(!wildcard_match("a?c", "ac", false));
    assert!(wildcard_match("*b*b*", "abab", false));
    assert!(!wildcard_match("ABC", "abc", false));
    assert!(wildcard_match("ABC", "abc", true));
    assert!(!wildcard_match("a*", "b", false));
    // Pathological patterns stay fast (pattern × value steps, no exponential backtracking).
    let value = "a".repeat(5000);
    let pattern = format!("{}b", "*a".repeat(200));
    assert!(!wildcard_match(&pattern, &value, false));
}

/// Bounded fuzz of the parser and evaluator: mutated valid documents and random JSON-ish
/// bytes must never panic, and whatever parses must evaluate.
#[test]
fn fuzz_policy_parser() {
    let seeds = [
        allow(
            r#"{"AWS":["222222222222","arn:aws:iam::333333333333:root"]}"#,
            r#"["kinesis:Get*","kinesis:DescribeStreamSummary"]"#,
        ),
        format!(
            r#"{{"Version":"2012-10-17","Id":"x","Statement":[{{"Sid":"a","Effect":"Deny","Principal":"*","NotAction":"kinesis:Put*","Resource":"{STREAM}","Condition":{{"StringNotLike":{{"aws:PrincipalArn":["arn:*"]}}}}}}]}}"#
        ),
    ];
    const ALPHABET: &[u8] = br#"{}[]":,*?\ab012AWSkinesis:ActionResourceEffectAllowDeny"#;
    let mut run = crate::fuzzing::Run::new("policy_document", 20_000, 0x0090_11c7);
    for i in 0..run.iterations() {
        let rng = &mut run.rng;
        let mut bytes = seeds[rng.below(seeds.len())].clone().into_bytes();
        for _ in 0..=rng.below(8) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                2 if at < bytes.len() => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
                _ => {
                    let end = (at + rng.below(32)).min(bytes.len());
                    let chunk = bytes[at..end].to_vec();
                    let to = rng.below(bytes.len() + 1);
                    bytes.splice(to..to, chunk);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        run.input(
            i,
            || crate::fuzzing::show(&bytes),
            || {
                if let Ok(doc) = PolicyDocument::parse(&text) {
                    let _ = doc.check_attached_to(STREAM);
                    let _ = doc.evaluate(&req(OTHER, "GetRecords", STREAM));
                }
            },
        );
    }
    run.finish();
}

#[test]
fn standing_access_follows_the_current_policy_and_needs_every_action() {
    const READS: &[&str] = &["GetShardIterator", "GetRecords"];
    let mut access = StandingAccess::new(OTHER, STREAM, READS);
    let both = allow(
        r#"{"AWS":"222222222222"}"#,
        r#"["kinesis:GetShardIterator","kinesis:GetRecords"]"#,
    );
    let one = allow(r#"{"AWS":"222222222222"}"#, r#""kinesis:GetRecords""#);
    assert!(!access.allowed(None), "no policy: same-account only");
    assert!(access.allowed(Some(&both)));
    assert!(access.allowed(Some(&both)), "the cached decision");
    assert!(!access.allowed(Some(&one)), "narrowed: one action missing");
    assert!(access.allowed(Some(&both)), "restored");
    assert!(!access.allowed(None), "deleted");
    assert!(!access.allowed(Some("not json")));
}
