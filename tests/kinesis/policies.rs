//! Accounts and resource policies (issue 20): two accounts, chosen by their 12-digit access
//! keys, are isolated unless a stream's or consumer's resource policy grants the other one
//! an action; an explicit Deny wins; bad policies are refused and change nothing.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::ShardIteratorType;

use crate::common::*;

const OWNER: &str = "111111111111";
const READER: &str = "222222222222";

fn arn(account: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{account}:stream/{name}")
}

fn denied(action: &str, resource: &str, why: &str) -> String {
    format!(
        "User: arn:aws:iam::{READER}:root is not authorized to perform: kinesis:{action} on resource: {resource} {why}"
    )
}

fn no_policy_allows(action: &str, resource: &str) -> String {
    denied(
        action,
        resource,
        &format!("because no resource-based policy allows the kinesis:{action} action"),
    )
}

async fn two_accounts() -> (Client, Client, Handle, tempfile::TempDir) {
    let (_default, server, dir) = start_server().await;
    let owner = client_with(server.local_addr(), OWNER, REGION);
    let reader = client_with(server.local_addr(), READER, REGION);
    (owner, reader, server, dir)
}

async fn put_policy(owner: &Client, resource: &str, statements: &str) {
    owner
        .put_resource_policy()
        .resource_arn(resource)
        .policy(format!(
            r#"{{"Version":"2012-10-17","Statement":{statements}}}"#
        ))
        .send()
        .await
        .expect("PutResourcePolicy");
}

async fn first_shard_iterator(client: &Client, stream_arn: &str) -> String {
    client
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator()
        .expect("iterator")
        .to_string()
}

#[tokio::test]
async fn accounts_are_isolated_by_default() {
    let (owner, reader, server, _dir) = two_accounts().await;
    create_stream(&owner, "private", 1).await;
    let private = arn(OWNER, "private");

    // By name, the other account's stream does not exist in the caller's account.
    let by_name = reader
        .describe_stream_summary()
        .stream_name("private")
        .send()
        .await;
    assert_error(
        by_name,
        "ResourceNotFoundException",
        &format!("Stream private under account {READER} not found."),
    );
    let listed = reader.list_streams().send().await.unwrap();
    assert!(listed.stream_names().is_empty(), "{listed:?}");

    // By ARN, with no policy: AWS's AccessDeniedException for each action.
    assert_error(
        reader
            .describe_stream_summary()
            .stream_arn(&private)
            .send()
            .await,
        "AccessDeniedException",
        &no_policy_allows("DescribeStreamSummary", &private),
    );
    assert_error(
        reader
            .get_shard_iterator()
            .stream_arn(&private)
            .shard_id(shard_id(0))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await,
        "AccessDeniedException",
        &no_policy_allows("GetShardIterator", &private),
    );
    assert_error(
        reader
            .put_record()
            .stream_arn(&private)
            .partition_key("k")
            .data(blob("x"))
            .send()
            .await,
        "AccessDeniedException",
        &no_policy_allows("PutRecord", &private),
    );
    assert_error(
        reader.delete_stream().stream_arn(&private).send().await,
        "AccessDeniedException",
        &no_policy_allows("DeleteStream", &private),
    );
    // A stream of another account that does not exist reads the same: nothing leaks.
    let ghost = arn(OWNER, "ghost");
    assert_error(
        reader
            .describe_stream_summary()
            .stream_arn(&ghost)
            .send()
            .await,
        "AccessDeniedException",
        &no_policy_allows("DescribeStreamSummary", &ghost),
    );
    // An iterator issued to the owner does not let the other account read either.
    let iterator = first_shard_iterator(&owner, &private).await;
    assert_error(
        reader.get_records().shard_iterator(iterator).send().await,
        "AccessDeniedException",
        &no_policy_allows("GetRecords", &private),
    );
    // The owner is unaffected; the stream is still there.
    owner
        .describe_stream_summary()
        .stream_arn(&private)
        .send()
        .await
        .expect("owner reads its own stream");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_policy_grants_reads_to_the_other_account() {
    let (owner, reader, server, _dir) = two_accounts().await;
    create_stream(&owner, "shared", 1).await;
    let shared = arn(OWNER, "shared");
    owner
        .put_record()
        .stream_name("shared")
        .partition_key("k")
        .data(blob("hello"))
        .send()
        .await
        .unwrap();
    put_policy(
        &owner,
        &shared,
        &format!(
            r#"[{{"Sid":"read","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{READER}:root"}},
                "Action":["kinesis:GetRecords","kinesis:GetShardIterator","kinesis:DescribeStreamSummary"],
                "Resource":"{shared}"}}]"#
        ),
    )
    .await;

    let summary = reader
        .describe_stream_summary()
        .stream_arn(&shared)
        .send()
        .await
        .expect("granted DescribeStreamSummary");
    assert_eq!(
        summary.stream_description_summary().unwrap().stream_arn(),
        shared
    );
    let iterator = first_shard_iterator(&reader, &shared).await;
    let records = reader
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .expect("granted GetRecords");
    let got: Vec<&[u8]> = records.records().iter().map(data).collect();
    assert_eq!(got, vec![b"hello".as_slice()]);

    // Only the granted actions: writing is still refused, and so are other accounts.
    assert_error(
        reader
            .put_record()
            .stream_arn(&shared)
            .partition_key("k")
            .data(blob("x"))
            .send()
            .await,
        "AccessDeniedException",
        &no_policy_allows("PutRecord", &shared),
    );
    let stranger = client_with(server.local_addr(), "333333333333", REGION);
    let refused = stranger
        .describe_stream_summary()
        .stream_arn(&shared)
        .send()
        .await;
    assert_eq!(code_of(&refused), "AccessDeniedException");
    // Actions AWS never shares across accounts stay refused whatever the policy says.
    put_policy(
        &owner,
        &shared,
        &format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{shared}"}}"#
        ),
    )
    .await;
    assert_error(
        reader
            .add_tags_to_stream()
            .stream_arn(&shared)
            .tags("a", "b")
            .send()
            .await,
        "AccessDeniedException",
        &no_policy_allows("AddTagsToStream", &shared),
    );
    // Deleting the policy takes the access away again.
    owner
        .delete_resource_policy()
        .resource_arn(&shared)
        .send()
        .await
        .unwrap();
    let after = reader
        .describe_stream_summary()
        .stream_arn(&shared)
        .send()
        .await;
    assert_eq!(code_of(&after), "AccessDeniedException");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_explicit_deny_overrides_an_allow() {
    let (owner, reader, server, _dir) = two_accounts().await;
    create_stream(&owner, "guarded", 1).await;
    let guarded = arn(OWNER, "guarded");
    put_policy(
        &owner,
        &guarded,
        &format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":"{READER}"}},"Action":"kinesis:*","Resource":"{guarded}"}},
                {{"Effect":"Deny","Principal":"*","Action":"kinesis:Get*","Resource":"{guarded}"}}]"#
        ),
    )
    .await;
    reader
        .describe_stream_summary()
        .stream_arn(&guarded)
        .send()
        .await
        .expect("allowed and not denied");
    assert_error(
        reader
            .get_shard_iterator()
            .stream_arn(&guarded)
            .shard_id(shard_id(0))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await,
        "AccessDeniedException",
        &denied(
            "GetShardIterator",
            &guarded,
            "with an explicit deny in a resource-based policy",
        ),
    );
    // The owner's own requests are not subject to its resource policy.
    first_shard_iterator(&owner, &guarded).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn consumers_have_their_own_policies() {
    let (owner, reader, server, _dir) = two_accounts().await;
    create_stream(&owner, "fan", 1).await;
    let fan = arn(OWNER, "fan");
    let consumer = owner
        .register_stream_consumer()
        .stream_arn(&fan)
        .consumer_name("app")
        .send()
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_string();
    // A stream policy granting everything gives nothing on the consumer.
    put_policy(
        &owner,
        &fan,
        &format!(r#"{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{fan}"}}"#),
    )
    .await;
    assert_error(
        reader
            .describe_stream_consumer()
            .consumer_arn(&consumer)
            .send()
            .await,
        "AccessDeniedException",
        &no_policy_allows("DescribeStreamConsumer", &consumer),
    );
    put_policy(
        &owner,
        &consumer,
        &format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{READER}"}},"Action":"kinesis:DescribeStreamConsumer","Resource":"{consumer}"}}"#
        ),
    )
    .await;
    let got = owner
        .get_resource_policy()
        .resource_arn(&consumer)
        .send()
        .await
        .unwrap();
    assert!(got.policy().contains("DescribeStreamConsumer"));
    let described = reader
        .describe_stream_consumer()
        .consumer_arn(&consumer)
        .send()
        .await
        .expect("granted on the consumer");
    assert_eq!(
        described.consumer_description().unwrap().consumer_name(),
        "app"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_policies_are_refused_and_change_nothing() {
    let (owner, reader, server, _dir) = two_accounts().await;
    create_stream(&owner, "strict", 1).await;
    create_stream(&owner, "elsewhere", 1).await;
    let strict = arn(OWNER, "strict");
    let good = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"{READER}"}},"Action":"kinesis:DescribeStreamSummary","Resource":"{strict}"}}}}"#
    );
    owner
        .put_resource_policy()
        .resource_arn(&strict)
        .policy(&good)
        .send()
        .await
        .unwrap();
    let bad = [
        ("not json".to_string(), "not valid JSON"),
        (
            format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{}"}}}}"#,
                arn(OWNER, "elsewhere")
            ),
            "invalid resource",
        ),
        (
            format!(
                r#"{{"Statement":{{"Effect":"Allow","NotPrincipal":{{"AWS":"{READER}"}},"Action":"kinesis:*","Resource":"{strict}"}}}}"#
            ),
            "NotPrincipal",
        ),
        (
            format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{strict}","Condition":{{"IpAddress":{{"aws:SourceIp":"127.0.0.1/32"}}}}}}}}"#
            ),
            "Unsupported condition operator IpAddress",
        ),
        (
            format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"{strict}","Sid":"{}"}}}}"#,
                "x".repeat(21 * 1024)
            ),
            "exceeds the limit",
        ),
    ];
    for (policy, expected) in bad {
        let result = owner
            .put_resource_policy()
            .resource_arn(&strict)
            .policy(policy)
            .send()
            .await;
        let err = result.expect_err("a bad policy is refused");
        let message = err.message().unwrap_or_default().to_string();
        assert_eq!(err.code(), Some("InvalidArgumentException"), "{message}");
        assert!(
            message.starts_with("Invalid resource policy document: ") && message.contains(expected),
            "{message} lacks {expected}"
        );
    }
    let kept = owner
        .get_resource_policy()
        .resource_arn(&strict)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.policy(), good, "a refused policy changes nothing");
    reader
        .describe_stream_summary()
        .stream_arn(&strict)
        .send()
        .await
        .expect("the kept policy still applies");
    // Another account cannot manage the policy, even with the policy allowing kinesis:*.
    assert_eq!(
        code_of(
            &reader
                .put_resource_policy()
                .resource_arn(&strict)
                .policy(&good)
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_mapping_reads_another_account_only_through_its_policy() {
    use crate::esm::{free_port, http};
    use kinesis_broker::config::FunctionSpec;
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.functions = vec![FunctionSpec::runtime("fn", free_port())];
    })
    .await;
    let addr = server.local_addr();
    let owner = client_with(addr, OWNER, REGION);
    create_stream(&owner, "events", 1).await;
    let events = arn(OWNER, "events");
    // The mapping API calls of crate::esm::http sign with a non-numeric key: account
    // 000000000000, not the stream's owner.
    let body =
        json!({"FunctionName": "fn", "EventSourceArn": events, "StartingPosition": "TRIM_HORIZON"});
    let refused = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(&body),
    )
    .await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.header("x-amzn-errortype").as_deref(),
        Some("InvalidParameterValueException")
    );
    assert_eq!(
        refused.body["message"],
        format!(
            "Cannot access stream {events}. Please ensure the role can perform the GetRecords, GetShardIterator, DescribeStream, ListShards, and ListStreams Actions on your stream in IAM."
        )
    );
    put_policy(
        &owner,
        &events,
        &format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"000000000000"}},
                "Action":["kinesis:DescribeStream","kinesis:ListShards","kinesis:GetShardIterator","kinesis:GetRecords"],
                "Resource":"{events}"}}"#
        ),
    )
    .await;
    let created = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(&body),
    )
    .await;
    assert_eq!(created.status, 202, "{:?}", created.body);
    assert_eq!(created.body["EventSourceArn"], events);
    server.shutdown().await.unwrap();
}

/// The reads Lambda's poller makes, granted to the mapping API's account (the requests of
/// crate::esm::http sign with a non-numeric key: account 000000000000).
fn poller_policy(stream_arn: &str, actions: &str) -> String {
    format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"000000000000"}},"Action":{actions},"Resource":"{stream_arn}"}}"#
    )
}

const POLLER_ACTIONS: &str = r#"["kinesis:DescribeStream","kinesis:ListShards","kinesis:GetShardIterator","kinesis:GetRecords"]"#;

async fn mapping_result(addr: std::net::SocketAddr, uuid: &str) -> serde_json::Value {
    let got = crate::esm::http(
        addr,
        "GET",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    got.body
}

/// Waits (bounded) until the mapping's LastProcessingResult is `expected`; checks it stays
/// Enabled meanwhile.
async fn wait_for_result(addr: std::net::SocketAddr, uuid: &str, expected: &str) {
    let deadline = tokio::time::Instant::now() + crate::esm::WAIT;
    loop {
        let mapping = mapping_result(addr, uuid).await;
        assert_eq!(mapping["State"], "Enabled", "{mapping}");
        if mapping["LastProcessingResult"] == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {expected:?}; mapping {mapping}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn wait_delivered(seen: &crate::esm::Seen, expected: &[&str]) {
    let deadline = tokio::time::Instant::now() + crate::esm::WAIT;
    loop {
        let got = crate::esm::delivered(&seen.lock().unwrap());
        if got == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; delivered {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn put_one(client: &Client, stream_arn: &str, data: &str) {
    client
        .put_record()
        .stream_arn(stream_arn)
        .partition_key("k")
        .data(blob(data))
        .send()
        .await
        .expect("PutRecord");
}

#[tokio::test]
async fn a_running_mapping_stops_reading_when_the_owner_withdraws_its_policy_and_resumes_when_it_returns()
 {
    use crate::esm::{fake_runtime, free_port, http};
    use kinesis_broker::config::FunctionSpec;
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let server = start_server_in(dir.path(), |c| {
        c.functions = vec![FunctionSpec::runtime("fn", runtime)];
        c.event_source_mapping_delay = std::time::Duration::ZERO;
    })
    .await;
    let addr = server.local_addr();
    let owner = client_with(addr, OWNER, REGION);
    create_stream(&owner, "events", 1).await;
    let events = arn(OWNER, "events");
    let statement = poller_policy(&events, POLLER_ACTIONS);
    put_policy(&owner, &events, &statement).await;
    let (seen, function) = fake_runtime(runtime, |_, _| true);
    let created = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(&json!({"FunctionName": "fn", "EventSourceArn": events, "StartingPosition": "TRIM_HORIZON"})),
    )
    .await;
    assert_eq!(created.status, 202, "{:?}", created.body);
    let uuid = created.body["UUID"].as_str().unwrap().to_string();
    put_one(&owner, &events, "granted").await;
    wait_delivered(&seen, &["granted"]).await;
    wait_for_result(addr, &uuid, "OK").await;

    // Withdrawn: the mapping reports it and gets nothing more, though it stays Enabled.
    owner
        .delete_resource_policy()
        .resource_arn(&events)
        .send()
        .await
        .expect("DeleteResourcePolicy");
    let problem = format!(
        "PROBLEM: Cannot access stream {events}. Please ensure the role can perform the GetRecords, GetShardIterator, DescribeStream, ListShards, and ListStreams Actions on your stream in IAM."
    );
    wait_for_result(addr, &uuid, &problem).await;
    put_one(&owner, &events, "withheld").await;
    // Longer than two of the poller's once-a-second re-checks.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        crate::esm::delivered(&seen.lock().unwrap()),
        ["granted"],
        "nothing is read while the policy is gone"
    );
    assert_eq!(
        mapping_result(addr, &uuid).await["LastProcessingResult"],
        problem
    );

    // Restored: delivery resumes where it stopped, nothing lost.
    put_policy(&owner, &events, &statement).await;
    wait_delivered(&seen, &["granted", "withheld"]).await;
    wait_for_result(addr, &uuid, "OK").await;

    // Narrowed to GetRecords alone: the poller also needs GetShardIterator and the rest.
    put_policy(
        &owner,
        &events,
        &poller_policy(&events, r#""kinesis:GetRecords""#),
    )
    .await;
    wait_for_result(addr, &uuid, &problem).await;
    put_one(&owner, &events, "narrowed").await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        crate::esm::delivered(&seen.lock().unwrap()),
        ["granted", "withheld"]
    );
    function.abort();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_subscription_of_another_account_ends_when_the_consumer_policy_is_withdrawn() {
    use aws_sdk_kinesis::types::{StartingPosition, SubscribeToShardEventStream};
    let (owner, reader, server, _dir) = two_accounts().await;
    create_stream(&owner, "fan", 1).await;
    let fan = arn(OWNER, "fan");
    let consumer = owner
        .register_stream_consumer()
        .stream_arn(&fan)
        .consumer_name("shared")
        .send()
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while owner
        .describe_stream_consumer()
        .consumer_arn(&consumer)
        .send()
        .await
        .expect("DescribeStreamConsumer")
        .consumer_description()
        .unwrap()
        .consumer_status()
        != &aws_sdk_kinesis::types::ConsumerStatus::Active
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumer never ACTIVE"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    put_policy(
        &owner,
        &consumer,
        &format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{READER}"}},"Action":"kinesis:SubscribeToShard","Resource":"{consumer}"}}"#
        ),
    )
    .await;
    let subscribe = || async {
        reader
            .subscribe_to_shard()
            .consumer_arn(&consumer)
            .shard_id(shard_id(0))
            .starting_position(
                StartingPosition::builder()
                    .r#type(ShardIteratorType::TrimHorizon)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
    };
    let mut events = subscribe().await.expect("granted").event_stream;
    put_one(&owner, &fan, "granted").await;
    // Every data event until the end of the stream (None), bounded.
    let mut next_data = async || -> Option<Vec<String>> {
        loop {
            let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.recv())
                .await
                .expect("an event or the end within 30 s (heartbeats every 5 s)")
                .expect("no exception event");
            match event {
                None => return None,
                Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) => {
                    let data: Vec<String> = e
                        .records()
                        .iter()
                        .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned())
                        .collect();
                    if !data.is_empty() {
                        return Some(data);
                    }
                }
                Some(other) => panic!("unexpected event {other:?}"),
            }
        }
    };
    assert_eq!(next_data().await, Some(vec!["granted".to_string()]));
    owner
        .delete_resource_policy()
        .resource_arn(&consumer)
        .send()
        .await
        .expect("DeleteResourcePolicy");
    put_one(&owner, &fan, "withheld").await;
    assert_eq!(
        next_data().await,
        None,
        "the session ends without delivering what was written after the withdrawal"
    );
    let again = subscribe().await;
    assert_error(
        again,
        "AccessDeniedException",
        &no_policy_allows("SubscribeToShard", &consumer),
    );
    server.shutdown().await.unwrap();
}

/// A Kinesis JSON call signed (by shape only, as `--auth open` checks) with `account`'s key;
/// the SDK has no queue operations. Returns the status and the JSON body.
async fn call_as(
    addr: std::net::SocketAddr,
    account: &str,
    operation: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{operation}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261125T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={account}/20261125/{REGION}/kinesis/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.read_to_end(&mut raw).await.unwrap();
    })
    .await
    .expect("an answer within 30 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, mut payload) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        while let Some((size, rest)) = payload.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.push_str(&rest[..size]);
            payload = &rest[size + 2..];
        }
    } else {
        body = payload.to_string();
    }
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_queue_is_shared_with_another_account_only_through_its_policy() {
    use serde_json::json;
    let (owner, _reader, server, _dir) = two_accounts().await;
    let addr = server.local_addr();
    create_on_demand(&owner, "od").await;
    let od = arn(OWNER, "od");
    let (status, created) = call_as(
        addr,
        OWNER,
        "CreateQueue",
        json!({"QueueName": "work", "StreamConfigurationList": [{"StreamARN": od, "StartingPosition": {"Type": "TRIM_HORIZON"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let queue = created["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap()
        .to_string();
    // The queue becomes ACTIVE after the creation delay.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, d) = call_as(addr, OWNER, "DescribeQueue", json!({"QueueARN": queue})).await;
        if d["QueueDescription"]["QueueStatus"] == "ACTIVE" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never ACTIVE: {d}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    put_one(&owner, &od, "job").await;
    let receive = json!({"QueueARN": queue, "WaitTimeSeconds": 1});

    // No policy: the other account is refused, like on a stream.
    let (status, refused) = call_as(addr, READER, "ReceiveQueueRecords", receive.clone()).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["message"],
        no_policy_allows("ReceiveQueueRecords", &queue)
    );
    // An unknown queue of another account is refused the same way (nothing leaks).
    let unknown = queue.replace(":queue/", ":queue/missing");
    let (_, refused) = call_as(
        addr,
        READER,
        "ReceiveQueueRecords",
        json!({"QueueARN": unknown}),
    )
    .await;
    assert_eq!(
        refused["message"],
        no_policy_allows("ReceiveQueueRecords", &unknown)
    );

    // PutResourcePolicy takes a queue ARN (the model's third pattern) and keeps it.
    put_policy(
        &owner,
        &queue,
        &format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{READER}"}},"Action":["kinesis:ReceiveQueueRecords","kinesis:AcknowledgeQueueRecords"],"Resource":"{queue}"}}"#
        ),
    )
    .await;
    let got = owner
        .get_resource_policy()
        .resource_arn(&queue)
        .send()
        .await
        .expect("GetResourcePolicy on a queue");
    assert!(
        got.policy().contains("ReceiveQueueRecords"),
        "{}",
        got.policy()
    );
    let (status, received) = call_as(addr, READER, "ReceiveQueueRecords", receive.clone()).await;
    assert_eq!(status, 200, "{received}");
    let records = received["QueueRecords"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{received}");
    let (status, acked) = call_as(
        addr,
        READER,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": queue, "Entries": [{"ReceiptHandle": records[0]["ReceiptHandle"]}]}),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    // Granted reads do not extend to managing the queue.
    let (status, refused) = call_as(addr, READER, "DeleteQueue", json!({"QueueARN": queue})).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["message"], no_policy_allows("DeleteQueue", &queue));

    // Withdrawn: refused again.
    owner
        .delete_resource_policy()
        .resource_arn(&queue)
        .send()
        .await
        .expect("DeleteResourcePolicy on a queue");
    let (status, refused) = call_as(addr, READER, "ReceiveQueueRecords", receive).await;
    assert_eq!(status, 400, "{refused}");
    server.shutdown().await.unwrap();
}
