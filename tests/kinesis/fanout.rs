//! SubscribeToShard through the unmodified Rust SDK (its event-stream receiver over
//! HTTP/1.1), and the failure modes of a subscription: takeovers, lifetime, resharding,
//! deregistration, deletion, clients that vanish.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError as StreamError;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Bound on events read while waiting for something (a heartbeat comes every 5 s at most).
const MAX_EVENTS: usize = 200;

async fn register(client: &Client, stream: &str, name: &str) -> String {
    let out = client
        .register_stream_consumer()
        .stream_arn(stream_arn(stream))
        .consumer_name(name)
        .send()
        .await
        .expect("register consumer");
    let arn = out.consumer().unwrap().consumer_arn().to_string();
    for _ in 0..MAX_POLLS {
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&arn)
            .send()
            .await
            .expect("describe consumer");
        if d.consumer_description().unwrap().consumer_status() == &ConsumerStatus::Active {
            return arn;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("consumer {name} never became ACTIVE");
}

fn position(kind: ShardIteratorType, seq: Option<&str>) -> StartingPosition {
    let mut b = StartingPosition::builder().r#type(kind);
    if let Some(s) = seq {
        b = b.sequence_number(s);
    }
    b.build().unwrap()
}

type Receiver = aws_sdk_kinesis::primitives::event_stream::EventReceiver<
    SubscribeToShardEventStream,
    aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError,
>;

async fn subscribe(
    client: &Client,
    consumer: &str,
    shard: &str,
    from: StartingPosition,
) -> Receiver {
    client
        .subscribe_to_shard()
        .consumer_arn(consumer)
        .shard_id(shard)
        .starting_position(from)
        .send()
        .await
        .expect("subscribe")
        .event_stream
}

/// The next `SubscribeToShardEvent`, `Ok(None)` at the end of the stream, `Err(code)` for an
/// exception event.
async fn next_event(rx: &mut Receiver) -> Result<Option<SubscribeToShardEvent>, String> {
    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        Err(_) => panic!("no event within 30 s (heartbeats come every 5 s)"),
        Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)))) => Ok(Some(e)),
        Ok(Ok(Some(other))) => panic!("unexpected event {other:?}"),
        Ok(Ok(None)) => Ok(None),
        // The SDK types exception events but leaves their metadata's code empty.
        Ok(Err(e)) => Err(match e.as_service_error() {
            Some(StreamError::ResourceInUseException(_)) => "ResourceInUseException".into(),
            Some(StreamError::ResourceNotFoundException(_)) => "ResourceNotFoundException".into(),
            Some(StreamError::InternalFailureException(_)) => "InternalFailureException".into(),
            _ => format!("{e:?}"),
        }),
    }
}

/// Reads events until `n` records arrived; returns them with the last continuation number.
async fn records(rx: &mut Receiver, n: usize) -> (Vec<(String, Vec<u8>)>, String) {
    let mut got = Vec::new();
    let mut continuation = String::new();
    for _ in 0..MAX_EVENTS {
        if got.len() >= n {
            break;
        }
        let e = next_event(rx).await.expect("event").expect("stream open");
        for r in e.records() {
            got.push((r.sequence_number().to_string(), r.data().as_ref().to_vec()));
        }
        continuation = e.continuation_sequence_number().to_string();
    }
    assert_eq!(got.len(), n, "records delivered");
    (got, continuation)
}

async fn put(client: &Client, stream: &str, data: &str) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("pk")
        .data(blob(data.as_bytes()))
        .send()
        .await
        .expect("put")
        .sequence_number()
        .to_string()
}

#[tokio::test]
async fn records_before_and_after_subscribing_arrive_in_order() {
    let (client, _server, _dir) = start_server().await;
    create_stream(&client, "fan", 1).await;
    let consumer = register(&client, "fan", "c1").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push((
            put(&client, "fan", &format!("before-{i}")).await,
            format!("before-{i}"),
        ));
    }
    let mut rx = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::TrimHorizon, None),
    )
    .await;
    for i in 0..5 {
        sent.push((
            put(&client, "fan", &format!("after-{i}")).await,
            format!("after-{i}"),
        ));
    }
    let (got, continuation) = records(&mut rx, 10).await;
    let got: Vec<(String, String)> = got
        .into_iter()
        .map(|(s, d)| (s, String::from_utf8(d).unwrap()))
        .collect();
    assert_eq!(got, sent);
    assert_eq!(
        continuation, sent[9].0,
        "continuation is the last record's sequence number"
    );

    // Resuming after the continuation number gives what came next, nothing twice.
    drop(rx);
    let later = put(&client, "fan", "later").await;
    let other = register(&client, "fan", "c2").await;
    let summary = client
        .describe_stream_summary()
        .stream_name("fan")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .consumer_count(),
        Some(2)
    );
    let mut rx = subscribe(
        &client,
        &other,
        &shard_id(0),
        position(ShardIteratorType::AfterSequenceNumber, Some(&continuation)),
    )
    .await;
    let (got, _) = records(&mut rx, 1).await;
    assert_eq!(got[0].0, later);
}

#[tokio::test]
async fn after_the_starting_sequence_number_is_the_first_record() {
    let (client, _server, _dir) = start_server().await;
    create_stream(&client, "start", 1).await;
    let consumer = register(&client, "start", "c").await;
    let first = put(&client, "start", "first").await;
    let shards = list_all_shards(&client, "start").await;
    let starting = shards[0]
        .sequence_number_range()
        .unwrap()
        .starting_sequence_number();
    let mut rx = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::AfterSequenceNumber, Some(starting)),
    )
    .await;
    let (got, _) = records(&mut rx, 1).await;
    assert_eq!(got[0].0, first);
}

#[tokio::test]
async fn a_second_subscription_within_five_seconds_is_refused_later_it_takes_over() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "dup", 1).await;
    let consumer = register(&client, "dup", "c").await;
    let mut first = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    // The first event comes at once.
    assert!(next_event(&mut first).await.unwrap().is_some());
    let refused = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id(shard_id(0))
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await;
    let err = refused.expect_err("second subscription within 5 s");
    assert_eq!(err.code(), Some("ResourceInUseException"), "{err:?}");
    assert_eq!(
        err.message(),
        Some(
            "Another active subscription exists for this consumer: 000000000000:dup:shardId-000000000000:c"
        )
    );
    server.broker().clock().advance_ms(5_001).unwrap();
    let mut second = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    assert!(next_event(&mut second).await.unwrap().is_some());
    // The older subscription ends with the error, as an exception event.
    let mut ended = None;
    for _ in 0..MAX_EVENTS {
        match next_event(&mut first).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the replaced subscription ended without an error"),
            Err(code) => {
                ended = Some(code);
                break;
            }
        }
    }
    assert_eq!(ended.as_deref(), Some("ResourceInUseException"));
    // The new one still receives records.
    let seq = put(&client, "dup", "x").await;
    let (got, _) = records(&mut second, 1).await;
    assert_eq!(got[0].0, seq);
}

#[tokio::test]
async fn a_closed_shard_ends_with_its_children_and_no_continuation() {
    let (client, _server, _dir) = start_server().await;
    create_stream(&client, "split", 1).await;
    let consumer = register(&client, "split", "c").await;
    let mut rx = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::TrimHorizon, None),
    )
    .await;
    let before = put(&client, "split", "before").await;
    let (got, _) = records(&mut rx, 1).await;
    assert_eq!(got[0].0, before);
    client
        .split_shard()
        .stream_name("split")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..MAX_EVENTS {
        let e = next_event(&mut rx)
            .await
            .expect("no error")
            .expect("an end event first");
        if !e.child_shards().is_empty() {
            last = Some(e);
            break;
        }
    }
    let last = last.expect("an event with child shards");
    // Absent on the wire; the Rust SDK fills a missing required member with "".
    assert_eq!(last.continuation_sequence_number(), "");
    let mut children: Vec<&str> = last.child_shards().iter().map(|c| c.shard_id()).collect();
    children.sort();
    assert_eq!(children, vec![shard_id(1), shard_id(2)]);
    for c in last.child_shards() {
        assert_eq!(c.parent_shards(), &[shard_id(0)]);
    }
    assert!(
        matches!(next_event(&mut rx).await, Ok(None)),
        "the stream ends after it"
    );
}

#[tokio::test]
async fn a_subscription_ends_cleanly_after_its_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.subscription_lifetime = Duration::from_millis(300);
    })
    .await;
    let client = client_for(server.local_addr());
    create_stream(&client, "life", 1).await;
    let consumer = register(&client, "life", "c").await;
    let mut rx = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    let mut ended = false;
    for _ in 0..MAX_EVENTS {
        match next_event(&mut rx).await {
            Ok(Some(_)) => continue,
            Ok(None) => {
                ended = true;
                break;
            }
            Err(code) => panic!("ended with {code}"),
        }
    }
    assert!(ended);
    // A new subscription right after is allowed: the window never outlasts the lifetime.
    let mut again = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    assert!(next_event(&mut again).await.unwrap().is_some());
}

#[tokio::test]
async fn deregistering_the_consumer_or_deleting_the_stream_ends_subscriptions_with_errors() {
    let (client, _server, _dir) = start_server().await;
    create_stream(&client, "gone", 2).await;
    let a = register(&client, "gone", "a").await;
    let b = register(&client, "gone", "b").await;
    let mut rx_a = subscribe(
        &client,
        &a,
        &shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    let mut rx_b = subscribe(
        &client,
        &b,
        &shard_id(1),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    assert!(next_event(&mut rx_a).await.unwrap().is_some());
    assert!(next_event(&mut rx_b).await.unwrap().is_some());
    client
        .deregister_stream_consumer()
        .consumer_arn(&a)
        .send()
        .await
        .unwrap();
    let code = loop {
        match next_event(&mut rx_a).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("ended without an error"),
            Err(code) => break code,
        }
    };
    assert_eq!(code, "ResourceNotFoundException");
    // The other consumer's subscription is untouched.
    let seq = client
        .put_record()
        .stream_name("gone")
        .partition_key("k")
        .explicit_hash_key(((1u128 << 127) + 5).to_string())
        .data(blob(&b"still-here"[..]))
        .send()
        .await
        .unwrap();
    assert_eq!(seq.shard_id(), shard_id(1));
    let (got, _) = records(&mut rx_b, 1).await;
    assert_eq!(got[0].0, seq.sequence_number());
    client
        .delete_stream()
        .stream_name("gone")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
    let code = loop {
        match next_event(&mut rx_b).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("ended without an error"),
            Err(code) => break code,
        }
    };
    assert_eq!(code, "ResourceNotFoundException");
}

#[tokio::test]
async fn bad_subscriptions_get_aws_errors_and_change_nothing() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "bad", 2).await;
    create_stream(&client, "other", 1).await;
    let consumer = register(&client, "bad", "c").await;
    let seq_in_1 = client
        .put_record()
        .stream_name("bad")
        .partition_key("k")
        .explicit_hash_key(((1u128 << 127) + 5).to_string())
        .data(blob(&b"x"[..]))
        .send()
        .await
        .unwrap();
    assert_eq!(seq_in_1.shard_id(), shard_id(1));
    let unknown = format!("{}/consumer/nobody:1700000000", stream_arn("bad"));
    let attempt = |arn: String, shard: String, from: StartingPosition| {
        let client = client.clone();
        async move {
            client
                .subscribe_to_shard()
                .consumer_arn(arn)
                .shard_id(shard)
                .starting_position(from)
                .send()
                .await
        }
    };
    let r = attempt(
        unknown,
        shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    assert_eq!(r.unwrap_err().code(), Some("ResourceNotFoundException"));
    let r = attempt(
        consumer.clone(),
        shard_id(7),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    assert_eq!(
        e.message(),
        Some("Shard shardId-000000000007 in stream bad under account 000000000000 does not exist")
    );
    let r = attempt(
        consumer.clone(),
        shard_id(0),
        position(
            ShardIteratorType::AtSequenceNumber,
            Some(seq_in_1.sequence_number()),
        ),
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.code(), Some("InvalidArgumentException"));
    assert_eq!(
        e.message(),
        Some(
            "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used in a call to a shard with shardId-000000000000"
        )
    );
    let r = attempt(
        consumer.clone(),
        shard_id(0),
        position(ShardIteratorType::AfterSequenceNumber, None),
    )
    .await;
    assert_eq!(r.unwrap_err().code(), Some("InvalidArgumentException"));
    let r = attempt(
        consumer.clone(),
        shard_id(0),
        position(ShardIteratorType::Latest, Some("1")),
    )
    .await;
    assert_eq!(r.unwrap_err().code(), Some("InvalidArgumentException"));
    // None of these took the consumer's slot: a real subscription starts at once.
    assert_eq!(server.broker().fanout().live_subscriptions(), 0);
    let mut rx = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    assert!(next_event(&mut rx).await.unwrap().is_some());
}

/// Opens a subscription over a raw HTTP/1.1 connection and returns the socket once the
/// answer's headers and first bytes arrived.
async fn raw_subscription(
    addr: std::net::SocketAddr,
    consumer: &str,
    shard: &str,
) -> tokio::net::TcpStream {
    let body = format!(
        r#"{{"ConsumerARN":"{consumer}","ShardId":"{shard}","StartingPosition":{{"Type":"LATEST"}}}}"#
    );
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.SubscribeToShard\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\n\
         X-Amz-Date: 20260101T000000Z\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
        .await
        .expect("answer")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    socket
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn clients_that_vanish_leave_no_session_task_or_socket_behind() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "leak", 4).await;
    let mut consumers = Vec::new();
    for i in 0..3 {
        consumers.push(register(&client, "leak", &format!("c{i}")).await);
    }
    // Warm up whatever the first subscription creates once (pools, lazily opened files).
    drop(raw_subscription(server.local_addr(), &consumers[0], &shard_id(0)).await);
    server.broker().clock().advance_ms(6_000).unwrap();
    let settle = || async {
        for _ in 0..MAX_POLLS {
            if server.broker().fanout().live_subscriptions() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sessions still alive");
    };
    settle().await;
    let fds = open_fds();
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    for round in 0..3 {
        let mut sockets = Vec::new();
        for c in &consumers {
            for s in 0..4 {
                sockets.push(raw_subscription(server.local_addr(), c, &shard_id(s)).await);
            }
        }
        assert_eq!(
            server.broker().fanout().live_subscriptions(),
            12,
            "round {round}"
        );
        drop(sockets);
        settle().await;
        server.broker().clock().advance_ms(6_000).unwrap();
    }
    // Connections close asynchronously after the sessions: give them a moment.
    let mut last = (0, 0);
    for _ in 0..MAX_POLLS {
        last = (
            open_fds(),
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        );
        if last.0 <= fds && last.1 <= tasks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        last.0 <= fds,
        "file descriptors: {} before, {} after",
        fds,
        last.0
    );
    assert!(last.1 <= tasks, "tasks: {} before, {} after", tasks, last.1);
    // The consumers still work.
    let mut rx = subscribe(
        &client,
        &consumers[1],
        &shard_id(2),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    assert!(next_event(&mut rx).await.unwrap().is_some());
}

#[tokio::test]
async fn shutdown_ends_live_subscriptions_at_once() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "stop", 1).await;
    let consumer = register(&client, "stop", "c").await;
    let mut rx = subscribe(
        &client,
        &consumer,
        &shard_id(0),
        position(ShardIteratorType::Latest, None),
    )
    .await;
    assert!(next_event(&mut rx).await.unwrap().is_some());
    // Well under the 10 s grace period and the 5 s heartbeat: the stream ends because the
    // server stops, not because anything timed out.
    let stopped = tokio::time::timeout(Duration::from_secs(4), server.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown waited for the subscription");
    assert!(matches!(next_event(&mut rx).await, Ok(None)));
}
