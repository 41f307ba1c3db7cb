//! `/metrics`, `/health`, `/ready` and the console's `/_broker/throughput`, driven with the
//! SDK: the counters move as CloudWatch's namesakes would, shard-level series exist only for
//! what EnableEnhancedMonitoring turned on, and the throughput history follows the writes.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_kinesis::types::{MetricsName, PutRecordsRequestEntry, ShardIteratorType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// (status, body) of `GET path`, over a fresh HTTP/1.1 connection, bounded in time.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let status = raw[9..12].parse().unwrap();
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .expect("answer within 10 s")
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the series whose name and labels start with `series` (e.g.
/// `kinesis_incoming_records_total{stream="s"`), if present.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
}

fn stream_series(name: &str, stream: &str) -> String {
    format!("{name}{{stream=\"{stream}\",account=\"{DEFAULT_ACCOUNT}\",region=\"{REGION}\"}}")
}

fn entries(n: usize, size: usize) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(blob(vec![b'x'; size]))
                .build()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_puts_and_gets_with_cloudwatch_meanings() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_stream(&client, "m", 2).await;
    client
        .put_records()
        .stream_name("m")
        .set_records(Some(entries(10, 98)))
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .stream_name("m")
        .partition_key("pk")
        .data(blob(vec![b'y'; 48]))
        .send()
        .await
        .unwrap();
    let mut read = 0;
    for shard in 0..2 {
        let it = iterator(
            &client,
            "m",
            &shard_id(shard),
            ShardIteratorType::TrimHorizon,
        )
        .await;
        read += client
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .unwrap()
            .records()
            .len();
    }
    assert_eq!(read, 11);

    let m = scrape(addr).await;
    let v = |name: &str| value(&m, &stream_series(name, "m"));
    // Bytes are data plus partition key: 10 × (98 + 2) and 48 + 2.
    assert_eq!(v("kinesis_incoming_records_total"), Some(11.0), "{m}");
    assert_eq!(v("kinesis_incoming_bytes_total"), Some(1050.0));
    assert_eq!(v("kinesis_put_records_total_records_total"), Some(10.0));
    assert_eq!(
        v("kinesis_put_records_successful_records_total"),
        Some(10.0)
    );
    assert_eq!(v("kinesis_put_records_failed_records_total"), Some(0.0));
    assert_eq!(v("kinesis_put_records_bytes_total"), Some(1000.0));
    assert_eq!(v("kinesis_put_records_success_total"), Some(1.0));
    assert_eq!(v("kinesis_put_record_success_total"), Some(1.0));
    assert_eq!(v("kinesis_put_record_bytes_total"), Some(50.0));
    assert_eq!(v("kinesis_get_records_success_total"), Some(2.0));
    assert_eq!(v("kinesis_get_records_records_total"), Some(11.0));
    assert_eq!(v("kinesis_get_records_bytes_total"), Some(1050.0));
    assert_eq!(v("kinesis_put_records_latency_seconds_count"), Some(1.0));
    assert_eq!(v("kinesis_get_records_latency_seconds_count"), Some(2.0));
    assert_eq!(
        v("kinesis_get_records_iterator_age_milliseconds"),
        Some(0.0)
    );
    assert!(m.contains("# HELP kinesis_incoming_records_total IncomingRecords:"));
    assert!(m.contains("# TYPE kinesis_put_records_latency_seconds histogram"));
    // Requests are counted by the HTTP layer, failures included.
    assert_eq!(
        value(
            &m,
            "kinesis_broker_requests_total{operation=\"PutRecords\",error=\"none\"}"
        ),
        Some(1.0)
    );
    assert!(value(&m, "kinesis_broker_open_connections").unwrap() >= 1.0);
    assert!(value(&m, "kinesis_broker_recovery_seconds").unwrap() > 0.0);
    assert_eq!(value(&m, "kinesis_broker_ready"), Some(1.0));
    assert!(v("kinesis_broker_stream_disk_bytes").unwrap() > 0.0);
    assert_eq!(v("kinesis_broker_stream_segments"), Some(2.0));
    assert!(
        !m.contains("shard=\""),
        "no enhanced monitoring, no shard series:\n{m}"
    );

    // An unknown stream is counted under its operation and AWS error type.
    let err = client
        .put_record()
        .stream_name("nope")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await;
    assert!(err.is_err());
    let m = scrape(addr).await;
    assert_eq!(
        value(
            &m,
            "kinesis_broker_requests_total{operation=\"PutRecord\",error=\"ResourceNotFoundException\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(get(addr, "/health").await.0, 200);
    assert_eq!(
        get(addr, "/ready").await,
        (200, r#"{"status":"ready"}"#.to_string())
    );
    assert_eq!(get(addr, "/_broker/health").await.0, 200);
}

#[tokio::test]
async fn throttled_writes_count_as_write_provisioned_throughput_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    // A fifth of AWS's rates: 200 records/s per shard with a second of burst.
    let h = start_server_in(dir.path(), |c| c.throughput_multiplier = 0.2).await;
    let client = client_no_retry(h.local_addr());
    create_stream(&client, "hot", 1).await;
    let out = client
        .put_records()
        .stream_name("hot")
        .set_records(Some(entries(500, 10)))
        .send()
        .await
        .unwrap();
    let failed = out.failed_record_count().unwrap() as f64;
    assert!(failed > 0.0);
    let m = scrape(h.local_addr()).await;
    let v = |name: &str| value(&m, &stream_series(name, "hot"));
    assert_eq!(
        v("kinesis_put_records_throttled_records_total"),
        Some(failed)
    );
    assert_eq!(
        v("kinesis_write_provisioned_throughput_exceeded_total"),
        Some(failed)
    );
    assert_eq!(v("kinesis_incoming_records_total"), Some(500.0 - failed));
}

#[tokio::test]
async fn enhanced_monitoring_adds_shard_series_and_disabling_removes_them() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_stream(&client, "e", 2).await;
    client
        .enable_enhanced_monitoring()
        .stream_name("e")
        .shard_level_metrics(MetricsName::IncomingRecords)
        .send()
        .await
        .unwrap();
    client
        .put_records()
        .stream_name("e")
        .set_records(Some(entries(20, 5)))
        .send()
        .await
        .unwrap();
    let m = scrape(addr).await;
    let series = |shard: usize| {
        format!(
            "kinesis_shard_incoming_records_total{{stream=\"e\",account=\"{DEFAULT_ACCOUNT}\",region=\"{REGION}\",shard=\"{}\"}}",
            shard_id(shard)
        )
    };
    let per_shard: f64 = (0..2).map(|s| value(&m, &series(s)).unwrap_or(0.0)).sum();
    assert_eq!(per_shard, 20.0, "{m}");
    assert!(
        !m.contains("kinesis_shard_incoming_bytes"),
        "only the metric enabled"
    );

    client
        .enable_enhanced_monitoring()
        .stream_name("e")
        .shard_level_metrics(MetricsName::All)
        .send()
        .await
        .unwrap();
    let m = scrape(addr).await;
    assert!(m.contains("kinesis_shard_incoming_bytes_total{stream=\"e\""));
    assert!(m.contains("kinesis_shard_outgoing_records_total{stream=\"e\""));

    client
        .disable_enhanced_monitoring()
        .stream_name("e")
        .shard_level_metrics(MetricsName::All)
        .send()
        .await
        .unwrap();
    let m = scrape(addr).await;
    assert!(!m.contains("shard=\""), "{m}");
}

// 1,000 shards without enhanced monitoring adding no series is checked in
// `metrics::export`'s unit tests, on shards with tiny logs: through the API each shard
// preallocates an 11 MiB segment at creation (11 GB for a thousand).

#[tokio::test]
async fn throughput_history_follows_writes_and_reads_for_the_console() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_stream(&client, "t", 1).await;
    let arn = stream_arn("t");
    // A stream's history starts empty: only intervals since it exists.
    let (status, body) = get(addr, &format!("/_broker/throughput?StreamARN={arn}")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["StreamARN"], arn);
    assert_eq!(json["IntervalSeconds"], 5);
    assert_eq!(json["Points"], serde_json::json!([]));

    client
        .put_records()
        .stream_name("t")
        .set_records(Some(entries(7, 9)))
        .send()
        .await
        .unwrap();
    let it = iterator(&client, "t", &shard_id(0), ShardIteratorType::TrimHorizon).await;
    client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap();
    client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("dash")
        .send()
        .await
        .unwrap();
    // What the background sampler does every 5 s, done now instead of waiting.
    h.broker().sample_throughput();

    // A browser escapes the ARN's ':' and '/'.
    let escaped = arn.replace(':', "%3A").replace('/', "%2F");
    let (status, body) = get(addr, &format!("/_broker/throughput?StreamARN={escaped}")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let points = json["Points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{body}");
    let p = &points[0];
    assert_eq!(p["IncomingRecords"], 7);
    assert_eq!(p["IncomingBytes"], 7 * (9 + 2));
    assert_eq!(p["OutgoingRecords"], 7);
    assert_eq!(p["OutgoingBytes"], 7 * (9 + 2));
    assert_eq!(p["ReadThrottles"], 0);
    assert_eq!(p["WriteThrottles"], 0);
    let ts = p["Timestamp"].as_i64().unwrap();
    assert_eq!(ts % 5, 0, "intervals start on 5-second boundaries");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now_s - 15..=now_s).contains(&ts), "{ts} vs {now_s}");
    assert_eq!(
        json["Readers"],
        serde_json::json!([{"Kind": "consumer", "Name": "dash", "LagMilliseconds": null}])
    );

    let unknown = stream_arn("nope");
    assert_eq!(
        get(addr, &format!("/_broker/throughput?StreamARN={unknown}")).await,
        (404, r#"{"message":"Stream not found"}"#.to_string())
    );
}

#[tokio::test]
async fn ready_turns_503_when_the_shutdown_starts_and_metrics_port_serves_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let h = start_server_in(dir.path(), |c| c.metrics_listen = Some(metrics_addr)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "p", 1).await;
    let m = scrape(metrics_addr).await;
    assert!(
        m.contains(&stream_series("kinesis_incoming_records_total", "p")),
        "{m}"
    );
    assert_eq!(get(metrics_addr, "/ready").await.0, 200);

    let server = h.broker().server_metrics().clone();
    assert_eq!(server.readiness(), Ok(()));
    let trigger = h.shutdown_trigger();
    trigger.trigger();
    let mut said = None;
    for _ in 0..MAX_POLLS {
        if let Err(reason) = server.readiness() {
            said = Some(reason);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(said.as_deref(), Some("shutting down"));
    h.wait().await.unwrap();
}

#[tokio::test]
async fn fan_out_counts_subscriptions_events_and_the_consumer_lag() {
    use aws_sdk_kinesis::types::{ConsumerStatus, StartingPosition, SubscribeToShardEventStream};
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_stream(&client, "f", 1).await;
    client
        .put_records()
        .stream_name("f")
        .set_records(Some(entries(4, 6)))
        .send()
        .await
        .unwrap();
    let arn = client
        .register_stream_consumer()
        .stream_arn(stream_arn("f"))
        .consumer_name("c")
        .send()
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_string();
    for i in 0..MAX_POLLS {
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&arn)
            .send()
            .await
            .unwrap();
        if d.consumer_description().unwrap().consumer_status() == &ConsumerStatus::Active {
            break;
        }
        assert!(i + 1 < MAX_POLLS, "consumer never ACTIVE");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let from = StartingPosition::builder()
        .r#type(ShardIteratorType::TrimHorizon)
        .build()
        .unwrap();
    let subscribe = || {
        client
            .subscribe_to_shard()
            .consumer_arn(&arn)
            .shard_id(shard_id(0))
            .starting_position(from.clone())
            .send()
    };
    let mut rx = subscribe().await.unwrap().event_stream;
    let mut got = 0;
    while got < 4 {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)))) => {
                got += e.records().len();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A second subscription within 5 s is SubscribeToShard.RateExceeded.
    assert!(subscribe().await.is_err());

    let m = scrape(addr).await;
    let v = |name: &str| value(&m, &stream_series(name, "f"));
    assert_eq!(
        v("kinesis_subscribe_to_shard_success_total"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        v("kinesis_subscribe_to_shard_rate_exceeded_total"),
        Some(1.0)
    );
    assert_eq!(
        v("kinesis_subscribe_to_shard_event_records_total"),
        Some(4.0)
    );
    assert_eq!(
        v("kinesis_subscribe_to_shard_event_bytes_total"),
        Some(4.0 * 8.0)
    );
    assert!(v("kinesis_subscribe_to_shard_event_success_total").unwrap() >= 1.0);
    assert_eq!(
        v("kinesis_subscribe_to_shard_event_millis_behind_latest"),
        Some(0.0)
    );
    assert!(
        m.contains(
            "kinesis_broker_reader_lag_milliseconds{kind=\"consumer\",name=\"c\",stream=\"f\""
        ),
        "{m}"
    );

    let (_, body) = get(
        addr,
        &format!("/_broker/throughput?StreamARN={}", stream_arn("f")),
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["Readers"],
        serde_json::json!([{"Kind": "consumer", "Name": "c", "LagMilliseconds": 0}])
    );
}

#[tokio::test]
async fn event_source_mappings_show_their_counters_and_lag() {
    use crate::esm::{delivered, fake_runtime, free_port, http};
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let spec = kinesis_broker::config::FunctionSpec::runtime("fn", runtime);
    let h = start_server_in(dir.path(), move |c| {
        c.functions = vec![spec];
        c.event_source_mapping_delay = Duration::ZERO;
    })
    .await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "src", 1).await;
    client
        .put_records()
        .stream_name("src")
        .set_records(Some(entries(3, 4)))
        .send()
        .await
        .unwrap();
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    let created = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(
            &serde_json::json!({"FunctionName": "fn", "EventSourceArn": stream_arn("src"),
            "StartingPosition": "TRIM_HORIZON"}),
        ),
    )
    .await;
    assert_eq!(created.status, 202, "{:?}", created.body);
    let uuid = created.body["UUID"].as_str().unwrap().to_string();
    let mut m = String::new();
    for i in 0..MAX_POLLS {
        m = scrape(addr).await;
        let series = format!(
            "kinesis_broker_esm_delivered_records_total{{uuid=\"{uuid}\",function=\"fn\"}}"
        );
        if value(&m, &series) == Some(3.0) {
            break;
        }
        assert!(
            i + 1 < MAX_POLLS,
            "never delivered: {:?}\n{m}",
            delivered(&seen.lock().unwrap())
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        value(
            &m,
            &format!("kinesis_broker_esm_invocations_total{{uuid=\"{uuid}\"")
        )
        .unwrap()
            >= 1.0
    );
    assert!(m.contains(&format!(
        "kinesis_broker_reader_lag_milliseconds{{kind=\"event-source-mapping\",name=\"{uuid}\",stream=\"src\""
    )));
    let (_, body) = get(
        addr,
        &format!("/_broker/throughput?StreamARN={}", stream_arn("src")),
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["Readers"][0]["Kind"], "event-source-mapping");
    assert_eq!(json["Readers"][0]["Name"], uuid.as_str());
    task.abort();
    h.shutdown().await.unwrap();
}

/// A Kinesis JSON 1.1 call the SDK has no method for yet (the queue operations).
async fn kinesis_call(
    addr: SocketAddr,
    operation: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{operation}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261125T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/kinesis/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let status = raw[9..12].parse().unwrap();
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        (
            status,
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    })
    .await
    .expect("answer within 10 s")
}

#[tokio::test]
async fn queues_show_in_flight_records_and_their_lag() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    let (status, created) = kinesis_call(
        addr,
        "CreateQueue",
        serde_json::json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn("od"),
            "StartingPosition": {"Type": "TRIM_HORIZON"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let queue = created["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap()
        .to_string();
    client
        .put_records()
        .stream_name("od")
        .set_records(Some(entries(3, 5)))
        .send()
        .await
        .unwrap();
    let mut lag_before = None;
    let mut received = 0;
    for i in 0..MAX_POLLS {
        let m = scrape(addr).await;
        let series =
            "kinesis_broker_reader_lag_milliseconds{kind=\"queue\",name=\"q\",stream=\"od\"";
        if lag_before.is_none() {
            lag_before = value(&m, series);
        }
        let (status, got) = kinesis_call(
            addr,
            "ReceiveQueueRecords",
            serde_json::json!({"QueueARN": queue, "WaitTimeSeconds": 1, "MaxRecords": 10}),
        )
        .await;
        if status == 200 {
            received += got["QueueRecords"].as_array().map_or(0, Vec::len);
        }
        if received >= 3 {
            break;
        }
        assert!(i + 1 < MAX_POLLS, "never received: {status} {got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(lag_before.is_some(), "a queue is a reader with a lag");
    let m = scrape(addr).await;
    let labels = "{queue=\"q\",stream=\"od\",account=\"000000000000\"}";
    assert_eq!(
        value(
            &m,
            &format!("kinesis_broker_queue_in_flight_records{labels}")
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &format!("kinesis_broker_queue_dead_letter_records{labels}")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            "kinesis_broker_reader_lag_milliseconds{kind=\"queue\",name=\"q\",stream=\"od\""
        ),
        Some(0.0),
        "everything handed out: caught up"
    );
}
