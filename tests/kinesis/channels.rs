//! Channels (issue 22): the five operations against the model's rules, the lifecycle,
//! the ties to their stream, tags, counts and restart durability. The Rust SDK in
//! Cargo.toml (aws-sdk-kinesis 1.130) has no channel operations, so these are driven over
//! raw HTTP JSON; streams go through the SDK as elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const ROLE: &str = "arn:aws:iam::000000000000:role/channel-writer";
const BUCKET: &str = "arn:aws:s3:::lake";

/// A CreateChannel body for `stream` with `extra` members merged in (a member set to null
/// is removed).
fn channel_body(name: &str, stream: &str, extra: Value) -> Value {
    let mut body = json!({
        "ChannelName": name,
        "ServiceExecutionRoleARN": ROLE,
        "StreamConfigurationList": [{
            "StreamARN": stream_arn(stream),
            "RecordConfiguration": {"RecordFormatType": "JSON"},
        }],
        "S3DestinationConfiguration": {
            "StorageConfiguration": {
                "BucketARN": BUCKET,
                "ExpectedBucketOwner": DEFAULT_ACCOUNT,
                "CompressionType": "GZIP",
            },
        },
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    body
}

async fn create_channel(addr: SocketAddr, name: &str, stream: &str) -> Value {
    ok(addr, "CreateChannel", channel_body(name, stream, json!({}))).await["ChannelDescription"]
        .clone()
}

#[tokio::test]
async fn create_channel_enforces_the_model_rules() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_stream(&client, "provisioned", 1).await;
    create_on_demand(&client, "od").await;

    // On-demand streams only, as documented.
    let m = fails(
        addr,
        "CreateChannel",
        channel_body("c", "provisioned", json!({})),
        "InvalidArgumentException",
    )
    .await;
    assert!(m.contains("on-demand"), "{m}");
    // The stream must exist.
    fails(
        addr,
        "CreateChannel",
        channel_body("c", "nope", json!({})),
        "ResourceNotFoundException",
    )
    .await;
    // Exactly one destination.
    fails(
        addr,
        "CreateChannel",
        channel_body("c", "od", json!({"S3DestinationConfiguration": null})),
        "InvalidArgumentException",
    )
    .await;
    // Streaming tables are refused clearly, not accepted and never delivered.
    let m = fails(
        addr,
        "CreateChannel",
        channel_body(
            "c",
            "od",
            json!({"S3DestinationConfiguration": null, "S3TablesDestinationConfiguration": {
                "DeadLetterQueueS3Configuration": {"BucketARN": BUCKET, "ExpectedBucketOwner": DEFAULT_ACCOUNT},
                "S3TablesConfigurationList": [{
                    "TableBucketARN": "arn:aws:s3tables:us-east-1:000000000000:bucket/tables",
                    "Namespace": "ns", "TableName": "t", "CompressionType": "ZSTD"}],
            }}),
        ),
        "InvalidArgumentException",
    )
    .await;
    assert!(m.contains("S3TablesDestinationConfiguration"), "{m}");
    // GSR_JSON is for streaming tables only.
    fails(
        addr,
        "CreateChannel",
        channel_body(
            "c",
            "od",
            json!({"StreamConfigurationList": [{"StreamARN": stream_arn("od"),
                "RecordConfiguration": {"RecordFormatType": "GSR_JSON"}}]}),
        ),
        "InvalidArgumentException",
    )
    .await;
    // DataFreshnessInSeconds: 300 to 900.
    for freshness in [299, 901, -1] {
        fails(
            addr,
            "CreateChannel",
            channel_body(
                "c",
                "od",
                json!({"S3DestinationConfiguration": {"DataFreshnessInSeconds": freshness,
                    "StorageConfiguration": {"BucketARN": BUCKET, "ExpectedBucketOwner": DEFAULT_ACCOUNT, "CompressionType": "NONE"}}}),
            ),
            "InvalidArgumentException",
        )
        .await;
    }
    // The model's constraints answer ValidationException: name pattern, bucket ARN pattern,
    // owner length, enum, missing required member.
    for body in [
        channel_body("bad name!", "od", json!({})),
        channel_body(
            "c",
            "od",
            json!({"S3DestinationConfiguration": {"StorageConfiguration": {
                "BucketARN": "arn:aws:s3:::X", "ExpectedBucketOwner": DEFAULT_ACCOUNT, "CompressionType": "NONE"}}}),
        ),
        channel_body(
            "c",
            "od",
            json!({"S3DestinationConfiguration": {"StorageConfiguration": {
                "BucketARN": BUCKET, "ExpectedBucketOwner": "123", "CompressionType": "NONE"}}}),
        ),
        channel_body(
            "c",
            "od",
            json!({"S3DestinationConfiguration": {"StorageConfiguration": {
                "BucketARN": BUCKET, "ExpectedBucketOwner": DEFAULT_ACCOUNT, "CompressionType": "LZ4"}}}),
        ),
        channel_body("c", "od", json!({"ServiceExecutionRoleARN": null})),
    ] {
        fails(addr, "CreateChannel", body, "ValidationException").await;
    }
    // The service key cannot encrypt a channel.
    fails(
        addr,
        "CreateChannel",
        channel_body(
            "c",
            "od",
            json!({"EncryptionConfiguration": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}}),
        ),
        "InvalidArgumentException",
    )
    .await;

    // A good request: defaults filled in as documented.
    let d = create_channel(addr, "c", "od").await;
    assert_eq!(d["ChannelName"], "c");
    let arn = d["ChannelARN"].as_str().unwrap();
    assert_eq!(
        arn,
        format!("arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:channel/c")
    );
    let id = d["ChannelId"].as_str().unwrap();
    assert_eq!(id.len(), 20, "{id}");
    assert_eq!(d["ServiceExecutionRoleARN"], ROLE);
    assert_eq!(
        d["StreamConfigurationList"][0]["StreamARN"],
        stream_arn("od")
    );
    assert_eq!(
        d["StreamConfigurationList"][0]["RecordConfiguration"]["RecordFormatType"],
        "JSON"
    );
    let s3 = &d["S3DestinationConfiguration"];
    assert_eq!(s3["DataFreshnessInSeconds"], 300);
    assert_eq!(s3["StorageConfiguration"]["CompressionType"], "GZIP");
    // "If not specified, it defaults to the destination bucket with an error prefix."
    assert_eq!(s3["DeadLetterQueueS3Configuration"]["BucketARN"], BUCKET);
    assert!(s3["DeadLetterQueueS3Configuration"]["ErrorOutputPrefix"].is_string());
    assert_eq!(
        d["LoggingConfiguration"]["CloudWatchLogs"]["Enabled"],
        false
    );
    assert!(d["ChannelCreationTimestamp"].is_number());

    // Names are unique in the account and region.
    fails(
        addr,
        "CreateChannel",
        channel_body("c", "od", json!({})),
        "ResourceInUseException",
    )
    .await;

    // Logging defaults: /aws/kinesis/{channelName}/{channelId} and DestinationDelivery.
    let d = ok(
        addr,
        "CreateChannel",
        channel_body(
            "logged",
            "od",
            json!({"LoggingConfiguration": {"CloudWatchLogs": {"Enabled": true}}}),
        ),
    )
    .await["ChannelDescription"]
        .clone();
    let cw = &d["LoggingConfiguration"]["CloudWatchLogs"];
    assert_eq!(
        cw["LogGroupName"],
        format!("/aws/kinesis/logged/{}", d["ChannelId"].as_str().unwrap())
    );
    assert_eq!(cw["LogStreamName"], "DestinationDelivery");
}

#[tokio::test]
async fn channels_follow_their_lifecycle_and_tie_their_stream() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |c| {
        c.create_stream_delay = Duration::from_millis(300);
        c.update_stream_delay = Duration::from_millis(300);
        c.delete_stream_delay = Duration::from_millis(300);
    })
    .await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_on_demand(&client, "od").await;

    let d = create_channel(addr, "c", "od").await;
    assert_eq!(d["ChannelStatus"], "CREATING");
    assert!(d.get("ChannelStatusReason").is_none());
    let arn = d["ChannelARN"].as_str().unwrap().to_string();

    // Without --s3-endpoint there is nowhere to deliver: the end of CREATING is FAILED,
    // with the reason.
    let mut described = Value::Null;
    for _ in 0..MAX_POLLS {
        described = ok(addr, "DescribeChannel", json!({"ChannelARN": arn})).await;
        if described["ChannelDescription"]["ChannelStatus"] != "CREATING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let d = &described["ChannelDescription"];
    assert_eq!(d["ChannelStatus"], "FAILED", "{d}");
    assert!(
        d["ChannelStatusReason"].as_str().unwrap().contains("S3"),
        "{d}"
    );
    // Only an ACTIVE channel can be updated.
    fails(
        addr,
        "UpdateChannel",
        json!({"ChannelARN": arn, "S3DestinationConfiguration": {"DataFreshnessInSeconds": 600}}),
        "ResourceInUseException",
    )
    .await;

    // The stream cannot be deleted or leave on-demand mode while it has channels.
    let e = client.delete_stream().stream_name("od").send().await;
    assert_eq!(code_of(&e), "ResourceInUseException");
    let e = client
        .update_stream_mode()
        .stream_arn(stream_arn("od"))
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    assert_eq!(code_of(&e), "ResourceInUseException");

    // DeleteChannel: DELETING, then gone; then the stream can go.
    ok(addr, "DeleteChannel", json!({"ChannelARN": arn})).await;
    let d = ok(addr, "DescribeChannel", json!({"ChannelARN": arn})).await;
    assert_eq!(d["ChannelDescription"]["ChannelStatus"], "DELETING");
    let mut gone = false;
    for _ in 0..MAX_POLLS {
        let (status, v) = call(addr, "DescribeChannel", json!({"ChannelARN": arn})).await;
        if status != 200 {
            assert!(
                v["__type"]
                    .as_str()
                    .unwrap()
                    .ends_with("ResourceNotFoundException")
            );
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "channel never went away");
    fails(
        addr,
        "DeleteChannel",
        json!({"ChannelARN": arn}),
        "ResourceNotFoundException",
    )
    .await;
    client
        .delete_stream()
        .stream_name("od")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn list_channels_filters_by_stream_and_pages() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "a").await;
    create_on_demand(&client, "b").await;
    for (name, stream) in [("c1", "a"), ("c2", "b"), ("c3", "a")] {
        create_channel(addr, name, stream).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["ChannelSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ChannelName"].as_str().unwrap().to_string())
            .collect()
    };
    let all = ok(addr, "ListChannels", json!({})).await;
    assert_eq!(names(&all), ["c1", "c2", "c3"]);
    assert!(all.get("NextToken").is_none());
    let s = &all["ChannelSummaries"][0];
    assert_eq!(s["ChannelDestinationType"], "S3");
    assert_eq!(s["Streams"][0]["StreamARN"], stream_arn("a"));
    assert!(s["Streams"][0]["StreamCreationTimestamp"].is_number());

    let on_a = ok(
        addr,
        "ListChannels",
        json!({"StreamFilter": [{"StreamARN": stream_arn("a")}]}),
    )
    .await;
    assert_eq!(names(&on_a), ["c1", "c3"]);
    // A creation time that is not the stream's matches nothing.
    let other = ok(
        addr,
        "ListChannels",
        json!({"StreamFilter": [{"StreamARN": stream_arn("a"), "StreamCreationTimestamp": 1}]}),
    )
    .await;
    assert!(names(&other).is_empty());

    // Pages of one.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut body = json!({"MaxResults": 1});
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let page = ok(addr, "ListChannels", body).await;
        seen.extend(names(&page));
        token = page["NextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["c1", "c2", "c3"]);
    fails(
        addr,
        "ListChannels",
        json!({"NextToken": "garbage"}),
        "InvalidArgumentException",
    )
    .await;
    fails(
        addr,
        "ListChannels",
        json!({"MaxResults": 0}),
        "ValidationException",
    )
    .await;

    // Counted where the model counts them.
    let limits = ok(addr, "DescribeLimits", json!({})).await;
    assert_eq!(limits["ChannelCount"], 3);
    assert!(limits["ChannelCountLimit"].as_i64().unwrap() >= 3);
    let summary = ok(addr, "DescribeStreamSummary", json!({"StreamName": "a"})).await;
    assert_eq!(summary["StreamDescriptionSummary"]["ChannelCount"], 2);
}

#[tokio::test]
async fn channel_tags_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_on_demand(&client, "od").await;
    let d = ok(
        addr,
        "CreateChannel",
        channel_body(
            "c",
            "od",
            json!({"Tags": {"team": "data"},
                   "EncryptionConfiguration": {"EncryptionType": "KMS", "KeyId": "alias/mine"}}),
        ),
    )
    .await["ChannelDescription"]
        .clone();
    let arn = d["ChannelARN"].as_str().unwrap().to_string();
    ok(
        addr,
        "TagResource",
        json!({"ResourceARN": arn, "Tags": {"env": "test"}}),
    )
    .await;
    ok(
        addr,
        "UntagResource",
        json!({"ResourceARN": arn, "TagKeys": ["team"]}),
    )
    .await;
    let tags = ok(addr, "ListTagsForResource", json!({"ResourceARN": arn})).await;
    assert_eq!(tags["Tags"], json!([{"Key": "env", "Value": "test"}]));
    fails(
        addr,
        "ListTagsForResource",
        json!({"ResourceARN": format!("arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:channel/none")}),
        "ResourceNotFoundException",
    )
    .await;
    let before = ok(addr, "DescribeChannel", json!({"ChannelARN": arn})).await;

    h.shutdown().await.expect("clean shutdown");
    let h = start_server_in(dir.path(), |_| {}).await;
    let addr = h.local_addr();
    let after = ok(addr, "DescribeChannel", json!({"ChannelARN": arn})).await;
    assert_eq!(after, before, "a channel survives a restart unchanged");
    assert_eq!(
        after["ChannelDescription"]["EncryptionConfiguration"]["KeyId"],
        "alias/mine"
    );
    let tags = ok(addr, "ListTagsForResource", json!({"ResourceARN": arn})).await;
    assert_eq!(tags["Tags"], json!([{"Key": "env", "Value": "test"}]));
    // Still tied to its stream after the restart.
    let e = client_for(addr)
        .delete_stream()
        .stream_name("od")
        .send()
        .await;
    assert_eq!(code_of(&e), "ResourceInUseException");
}

#[tokio::test]
async fn another_accounts_channel_is_not_reachable() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    let arn = create_channel(addr, "c", "od").await["ChannelARN"]
        .as_str()
        .unwrap()
        .to_string();
    // Account 111111111111 names account 000000000000's channel by ARN.
    let (status, v) = call_as(
        addr,
        "111111111111",
        "DescribeChannel",
        json!({"ChannelARN": arn}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["__type"]
            .as_str()
            .unwrap()
            .ends_with("AccessDeniedException"),
        "{v}"
    );
    let listed = call_as(addr, "111111111111", "ListChannels", json!({}))
        .await
        .1;
    assert_eq!(listed["ChannelSummaries"], json!([]));
}

/// The body of `GET path` (a 200), bounded in time.
async fn get(addr: SocketAddr, path: &str) -> String {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{path} answers"))
        .unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    raw.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The body of `GET /metrics`.
async fn scrape(addr: SocketAddr) -> String {
    get(addr, "/metrics").await
}

/// The `Readers` of `GET /_broker/throughput` for `stream` (the console's reader rows).
async fn readers(addr: SocketAddr, stream: &str) -> Value {
    let body = get(
        addr,
        &format!("/_broker/throughput?StreamARN={}", stream_arn(stream)),
    )
    .await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["Readers"].clone()
}

/// Polls DescribeChannel until the channel is `status`.
async fn wait_channel_status(addr: SocketAddr, arn: &str, status: &str) {
    let mut last = Value::Null;
    for _ in 0..MAX_POLLS {
        last = ok(addr, "DescribeChannel", json!({"ChannelARN": arn})).await;
        if last["ChannelDescription"]["ChannelStatus"] == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("channel {arn} never {status}: {last}");
}

/// The value of the series named exactly `series` (name and labels).
fn series_value(metrics: &str, series: &str) -> Option<i64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_show_a_channels_lag_and_counters() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    let arn = create_channel(addr, "c", "od").await["ChannelARN"]
        .as_str()
        .unwrap()
        .to_string();
    // Without --s3-endpoint the channel ends FAILED and delivers nothing: its lag is the
    // whole stream, and stays put while the clock moves.
    for _ in 0..MAX_POLLS {
        let d = ok(addr, "DescribeChannel", json!({"ChannelARN": arn})).await;
        if d["ChannelDescription"]["ChannelStatus"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let labels = format!("{{channel=\"c\",stream=\"od\",account=\"{DEFAULT_ACCOUNT}\"}}");
    let lag_records = format!("kinesis_broker_channel_lag_records{labels}");
    let lag_ms = format!("kinesis_broker_channel_lag_milliseconds{labels}");
    let text = scrape(addr).await;
    assert_eq!(series_value(&text, &lag_records), Some(0), "{text}");
    assert_eq!(series_value(&text, &lag_ms), Some(0), "{text}");

    // Five records on the first shard, two on the last.
    let entry = |hash: &str| {
        aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
            .data(aws_sdk_kinesis::primitives::Blob::new(
                b"{\"a\":1}".to_vec(),
            ))
            .partition_key("k")
            .explicit_hash_key(hash)
            .build()
            .unwrap()
    };
    let last = u128::MAX.to_string();
    let mut entries: Vec<_> = (0..5).map(|_| entry("0")).collect();
    entries.extend((0..2).map(|_| entry(&last)));
    put_all(&client, "od", entries).await;
    h.broker().clock().advance_ms(7_000).unwrap();

    let text = scrape(addr).await;
    assert_eq!(series_value(&text, &lag_records), Some(7), "{text}");
    let age = series_value(&text, &lag_ms).unwrap();
    assert!((7_000..60_000).contains(&age), "lag {age} ms\n{text}");
    for counter in [
        "objects",
        "bytes",
        "records",
        "dead_letter_records",
        "failed_writes",
    ] {
        let series = format!("kinesis_broker_channel_{counter}_total{labels}");
        assert_eq!(series_value(&text, &series), Some(0), "{series}\n{text}");
    }

    // The lag counts from where the cursor stands, and not at all on finished shards.
    let stream = h
        .broker()
        .streams()
        .into_iter()
        .find(|s| s.key.name == "od")
        .unwrap();
    let now = h.broker().clock().now_ms();
    let mut cursor = kinesis_broker::broker::channel::delivery::Cursor::default();
    let broker = h.broker();
    assert_eq!(broker.channel_lag(&stream, &cursor, now).records, 7);
    cursor.next.insert(0, 3);
    assert_eq!(broker.channel_lag(&stream, &cursor, now).records, 4);
    let last_shard = stream.state().shards.last().unwrap().index;
    cursor.finished.insert(last_shard);
    assert_eq!(broker.channel_lag(&stream, &cursor, now).records, 2);
    cursor.next.insert(0, 5);
    let caught_up = broker.channel_lag(&stream, &cursor, now);
    assert_eq!((caught_up.records, caught_up.ms), (0, 0));
}

#[tokio::test]
async fn throughput_lists_a_streams_channels_with_their_lag() {
    let dir = tempfile::tempdir().unwrap();
    // Deletion takes long enough to see a DELETING channel among the readers.
    let h = start_server_in(dir.path(), |c| {
        c.delete_stream_delay = Duration::from_secs(600);
    })
    .await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_on_demand(&client, "od").await;
    create_on_demand(&client, "other").await;
    let arn = create_channel(addr, "c", "od").await["ChannelARN"]
        .as_str()
        .unwrap()
        .to_string();
    let elsewhere = create_channel(addr, "elsewhere", "other").await["ChannelARN"]
        .as_str()
        .unwrap()
        .to_string();
    // Without --s3-endpoint the channels end FAILED and deliver nothing: their lag is
    // their whole stream.
    wait_channel_status(addr, &arn, "FAILED").await;
    wait_channel_status(addr, &elsewhere, "FAILED").await;
    assert_eq!(
        readers(addr, "od").await,
        json!([{"Kind": "channel", "Name": "c", "LagMilliseconds": 0, "LagRecords": 0}])
    );

    let entries = (0..5)
        .map(|i| {
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .data(aws_sdk_kinesis::primitives::Blob::new(
                    b"{\"a\":1}".to_vec(),
                ))
                .partition_key(format!("k{i}"))
                .build()
                .unwrap()
        })
        .collect();
    put_all(&client, "od", entries).await;
    h.broker().clock().advance_ms(7_000).unwrap();

    // The same figures as the channel's gauges in /metrics.
    let found = readers(addr, "od").await;
    let text = scrape(addr).await;
    let labels = format!("{{channel=\"c\",stream=\"od\",account=\"{DEFAULT_ACCOUNT}\"}}");
    let gauge_records = series_value(
        &text,
        &format!("kinesis_broker_channel_lag_records{labels}"),
    )
    .unwrap();
    let gauge_ms = series_value(
        &text,
        &format!("kinesis_broker_channel_lag_milliseconds{labels}"),
    )
    .unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    let channel = &found[0];
    assert_eq!(
        (&channel["Kind"], &channel["Name"]),
        (&json!("channel"), &json!("c"))
    );
    assert_eq!(
        channel["LagRecords"],
        json!(gauge_records),
        "{found}\n{text}"
    );
    assert_eq!(gauge_records, 5);
    let lag_ms = channel["LagMilliseconds"].as_i64().unwrap();
    assert!((7_000..60_000).contains(&lag_ms), "{found}");
    // Read a moment apart on the same clock: the endpoint's figure is not the later one.
    assert!(lag_ms <= gauge_ms, "{found}\n{text}");
    // The channel is not a reader of /metrics' reader-lag series: its own gauges say it.
    assert!(
        !text.contains("kinesis_broker_reader_lag_milliseconds{kind=\"channel\""),
        "{text}"
    );

    // A channel being deleted reads nothing: no lag rather than none left.
    ok(addr, "DeleteChannel", json!({"ChannelARN": elsewhere})).await;
    wait_channel_status(addr, &elsewhere, "DELETING").await;
    assert_eq!(
        readers(addr, "other").await,
        json!([{"Kind": "channel", "Name": "elsewhere", "LagMilliseconds": null}])
    );
    assert_eq!(readers(addr, "od").await.as_array().map(Vec::len), Some(1));
}
