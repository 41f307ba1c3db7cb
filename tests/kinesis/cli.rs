//! The client commands of the binary (`tail`, `put`, `streams`) against an in-process
//! broker, and `--log-format json` of the server. Each command runs as the real binary with
//! a cleared environment (no AWS_* variables or ~/.aws from the machine running the tests)
//! and a bounded wait.

use std::collections::{BTreeMap, HashSet};
use std::process::{Output, Stdio};
use std::time::Duration;

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_broker::broker::faults::{FaultConfig, FaultRules};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::common::*;
use crate::crash::{free_port, start};

/// Longest any one command may run before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary with only what the test gives it: no credentials, profile or endpoint from
/// the environment, a HOME without `.aws`.
fn cli(home: &std::path::Path, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
    cmd.env_clear()
        .env("HOME", home)
        .args(args)
        .args(["--endpoint-url", endpoint])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to its end with `input` on stdin.
async fn run_with_input(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kinesis-broker");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        // Dropping stdin closes it: the end of the input.
    });
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .expect("command finished in time")
        .expect("command ran");
    writer.await.unwrap();
    output
}

async fn run(cmd: Command) -> Output {
    run_with_input(cmd, b"").await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn put_from_stdin_then_tail_from_trim_horizon() {
    let (client, server, _dir) = start_server().await;
    let home = tempfile::tempdir().unwrap();
    let endpoint = server.endpoint();
    create_stream(&client, "lines", 3).await;

    let input: String = (0..300).map(|i| format!("line {i}\n")).collect();
    let put = run_with_input(
        cli(home.path(), &endpoint, &["put", "lines"]),
        input.as_bytes(),
    )
    .await;
    assert!(put.status.success(), "{}", text(&put.stderr));
    let summary = text(&put.stderr);
    assert!(
        summary.contains("300 of 300 records written to lines"),
        "{summary}"
    );

    // Random partition keys spread the records over the three shards.
    for shard in 0..3 {
        let records = read_shard(&client, "lines", &shard_id(shard)).await;
        assert!(!records.is_empty(), "shard {shard} got nothing");
    }

    let tail = run(cli(
        home.path(),
        &endpoint,
        &[
            "tail",
            "lines",
            "--from",
            "trim-horizon",
            "--max-records",
            "300",
            "--idle-exit",
            "20",
        ],
    ))
    .await;
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    let got: HashSet<String> = text(&tail.stdout).lines().map(str::to_string).collect();
    let want: HashSet<String> = (0..300).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want);

    // --max-records stops early; --from latest sees nothing old, and --idle-exit ends it.
    let tail = run(cli(
        home.path(),
        &endpoint,
        &[
            "tail",
            "lines",
            "--from",
            "trim-horizon",
            "--max-records",
            "7",
        ],
    ))
    .await;
    assert!(tail.status.success());
    assert_eq!(text(&tail.stdout).lines().count(), 7);
    let tail = run(cli(
        home.path(),
        &endpoint,
        &["tail", "lines", "--idle-exit", "1"],
    ))
    .await;
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    assert_eq!(text(&tail.stdout), "");

    // A line over the 1 MiB record limit makes the service refuse its whole batch: the
    // command stops with the service's error, says which lines were not written, and
    // still prints its summary.
    let mut input = b"small\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1_100_000));
    input.push(b'\n');
    let put = run_with_input(cli(home.path(), &endpoint, &["put", "lines"]), &input).await;
    assert_eq!(put.status.code(), Some(1));
    let stderr = text(&put.stderr);
    assert!(
        stderr.contains("0 of 2 records written to lines"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kinesis-broker: ValidationException: "),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("(input lines 1-2 not written)\n"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tail_json_gives_metadata_and_base64_for_binary_data() {
    let (client, server, _dir) = start_server().await;
    let home = tempfile::tempdir().unwrap();
    create_stream(&client, "json", 1).await;
    let put = client
        .put_records()
        .stream_name("json")
        .records(
            PutRecordsRequestEntry::builder()
                .data(blob("héllo"))
                .partition_key("k1")
                .build()
                .unwrap(),
        )
        .records(
            PutRecordsRequestEntry::builder()
                .data(blob(vec![0xff, 0x00, 0x80]))
                .partition_key("k2")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let sequence_numbers: Vec<String> = put
        .records()
        .iter()
        .map(|r| r.sequence_number().unwrap().to_string())
        .collect();
    let records = read_shard(&client, "json", &shard_id(0)).await;

    let tail = run(cli(
        home.path(),
        &server.endpoint(),
        &[
            "tail",
            "json",
            "--from",
            "trim-horizon",
            "--format",
            "json",
            "--max-records",
            "2",
        ],
    ))
    .await;
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    let lines = json_lines(&tail);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["shardId"], shard_id(0));
    assert_eq!(lines[0]["sequenceNumber"], sequence_numbers[0]);
    assert_eq!(lines[0]["partitionKey"], "k1");
    assert_eq!(lines[0]["data"], "héllo");
    assert!(lines[0].get("encoding").is_none(), "{}", lines[0]);
    assert_eq!(lines[1]["partitionKey"], "k2");
    assert_eq!(lines[1]["sequenceNumber"], sequence_numbers[1]);
    assert_eq!(lines[1]["data"], "/wCA");
    assert_eq!(lines[1]["encoding"], "base64");
    // The arrival time is the broker's, in RFC 3339 with milliseconds.
    let arrival = kinesis_broker::client::time::parse_time(
        lines[0]["approximateArrivalTimestamp"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(arrival, arrival_ms(&records[0]));

    // --from a sequence number starts at that record; --from a time at the first record
    // that arrived then.
    let tail = run(cli(
        home.path(),
        &server.endpoint(),
        &[
            "tail",
            "json",
            "--from",
            &sequence_numbers[1],
            "--format",
            "json",
            "--max-records",
            "1",
        ],
    ))
    .await;
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    assert_eq!(json_lines(&tail)[0]["sequenceNumber"], sequence_numbers[1]);
    let from_time = format!("{:.3}", arrival as f64 / 1000.0);
    let tail = run(cli(
        home.path(),
        &server.endpoint(),
        &["tail", "json", "--from", &from_time, "--max-records", "1"],
    ))
    .await;
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    assert_eq!(text(&tail.stdout), "héllo\n");
}

#[tokio::test]
async fn tail_follows_a_split_reading_parents_before_children() {
    let (client, server, _dir) = start_server().await;
    let home = tempfile::tempdir().unwrap();
    create_stream(&client, "reshard", 1).await;
    const KEYS: usize = 8;
    const BEFORE: usize = 5;
    const AFTER: usize = 5;

    // The tail starts on the empty stream and has to discover the children by itself.
    let mut tail = cli(
        home.path(),
        &server.endpoint(),
        &[
            "tail",
            "reshard",
            "--from",
            "trim-horizon",
            "--format",
            "json",
            "--max-records",
            &(KEYS * (BEFORE + AFTER)).to_string(),
            "--idle-exit",
            "30",
        ],
    )
    .spawn()
    .unwrap();
    let put_round = |round: std::ops::Range<usize>| {
        let client = client.clone();
        async move {
            for i in round {
                let mut req = client.put_records().stream_name("reshard");
                for k in 0..KEYS {
                    req = req.records(
                        PutRecordsRequestEntry::builder()
                            .data(blob(format!("key{k}:{i}")))
                            .partition_key(format!("key{k}"))
                            .build()
                            .unwrap(),
                    );
                }
                let out = req.send().await.unwrap();
                assert_eq!(out.failed_record_count(), Some(0));
            }
        }
    };
    put_round(0..BEFORE).await;
    client
        .split_shard()
        .stream_name("reshard")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&client, "reshard").await;
    put_round(BEFORE..BEFORE + AFTER).await;

    let output = tokio::time::timeout(COMMAND_TIMEOUT, async {
        let status = tail.wait().await.unwrap();
        let mut stdout = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(tail.stdout.as_mut().unwrap(), &mut stdout)
            .await
            .unwrap();
        let mut stderr = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(tail.stderr.as_mut().unwrap(), &mut stderr)
            .await
            .unwrap();
        Output {
            status,
            stdout,
            stderr,
        }
    })
    .await
    .expect("tail finished in time");
    assert!(output.status.success(), "{}", text(&output.stderr));
    check_parents_first(&json_lines(&output), KEYS, BEFORE, AFTER);

    // A tail started after the split knows the children from the start, and still waits
    // for the parent to be read to its end before reading them.
    let output = run(cli(
        home.path(),
        &server.endpoint(),
        &[
            "tail",
            "reshard",
            "--from",
            "trim-horizon",
            "--format",
            "json",
            "--max-records",
            &(KEYS * (BEFORE + AFTER)).to_string(),
            "--idle-exit",
            "30",
        ],
    ))
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    check_parents_first(&json_lines(&output), KEYS, BEFORE, AFTER);
}

/// `lines` hold `keys` keys written `before` times to shard 0, then `after` times after
/// shard 0 was split: every parent record must come first, and each key in write order.
fn check_parents_first(lines: &[Value], keys: usize, before: usize, after: usize) {
    assert_eq!(lines.len(), keys * (before + after));
    let first_child = lines
        .iter()
        .position(|l| l["shardId"] != shard_id(0))
        .unwrap();
    assert_eq!(first_child, keys * before);
    assert!(
        lines[first_child..]
            .iter()
            .all(|l| l["shardId"] != shard_id(0))
    );
    let children: HashSet<&str> = lines[first_child..]
        .iter()
        .map(|l| l["shardId"].as_str().unwrap())
        .collect();
    assert_eq!(
        children.len(),
        2,
        "records after the split come from both children: {children:?}"
    );
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for line in lines {
        let (key, i) = line["data"].as_str().unwrap().split_once(':').unwrap();
        per_key
            .entry(key.to_string())
            .or_default()
            .push(i.parse().unwrap());
    }
    for (key, order) in per_key {
        assert_eq!(order, (0..before + after).collect::<Vec<_>>(), "{key}");
    }
}

#[tokio::test]
async fn streams_prints_a_table_of_the_account_streams() {
    let (client, server, _dir) = start_server().await;
    let home = tempfile::tempdir().unwrap();
    create_stream(&client, "alpha", 2).await;
    create_on_demand(&client, "beta").await;
    client
        .increase_stream_retention_period()
        .stream_name("alpha")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    wait_active(&client, "alpha").await;

    let out = run(cli(home.path(), &server.endpoint(), &["streams"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "STATUS", "MODE", "OPEN_SHARDS", "RETENTION_HOURS"],
        "{table}"
    );
    assert_eq!(
        rows[1],
        ["alpha", "ACTIVE", "PROVISIONED", "2", "48"],
        "{table}"
    );
    assert_eq!(rows[2][..3], ["beta", "ACTIVE", "ON_DEMAND"], "{table}");
    assert_eq!(rows[2][4], "24", "{table}");
    assert_eq!(rows.len(), 3, "{table}");
    // Columns line up: every row's second column starts where the header's does.
    let status_at = table.lines().next().unwrap().find("STATUS").unwrap();
    for line in table.lines().skip(1) {
        assert_eq!(line.find("ACTIVE"), Some(status_at), "{table}");
    }

    // Another account (a 12-digit access key) sees its own, empty, list.
    let mut other = cli(home.path(), &server.endpoint(), &["streams"]);
    other
        .env("AWS_ACCESS_KEY_ID", "111122223333")
        .env("AWS_SECRET_ACCESS_KEY", "x");
    let out = run(other).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn unknown_stream_prints_the_aws_error_and_exits_1() {
    let (_client, server, _dir) = start_server().await;
    let home = tempfile::tempdir().unwrap();
    let not_found = "kinesis-broker: ResourceNotFoundException: Stream nope under account 000000000000 not found.";
    for (args, tail) in [
        (&["tail", "nope"][..], ""),
        // put also says which input was not written.
        (&["put", "nope"][..], " (input line 1 not written)"),
    ] {
        let out = run_with_input(cli(home.path(), &server.endpoint(), args), b"x\n").await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            text(&out.stderr).lines().last().unwrap(),
            format!("{not_found}{tail}"),
            "{args:?}"
        );
    }
    // Usage errors are 2: an unknown --from, a CA bundle that cannot be read.
    let out = run(cli(
        home.path(),
        &server.endpoint(),
        &["tail", "s", "--from", "soon"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let mut https = Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
    https.env_clear().env("HOME", home.path()).args([
        "streams",
        "--endpoint-url",
        "https://127.0.0.1:1",
        "--ca-bundle",
        "/nonexistent/ca.pem",
    ]);
    let out = tokio::time::timeout(COMMAND_TIMEOUT, https.output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("CA bundle: TLS certificate /nonexistent/ca.pem"),
        "{}",
        text(&out.stderr)
    );
}

/// A broker whose every stream fails by `rules` (seeded, so a run is reproducible).
async fn start_with_faults(
    dir: &std::path::Path,
    seed: u64,
    rules: FaultRules,
) -> kinesis_broker::ServerHandle {
    start_server_in(dir, |config| {
        config.faults = FaultConfig {
            seed,
            global: rules,
            ..Default::default()
        };
    })
    .await
}

#[tokio::test]
async fn put_retries_throttled_records_until_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = start_with_faults(
        dir.path(),
        19,
        FaultRules {
            record_failure_rate: 0.5,
            ..Default::default()
        },
    )
    .await;
    let client = client_for(server.local_addr());
    create_stream(&client, "throttled", 2).await;
    let input: String = (0..200).map(|i| format!("r{i}\n")).collect();
    let out = run_with_input(
        cli(home.path(), &server.endpoint(), &["put", "throttled"]),
        input.as_bytes(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stderr);
    assert!(summary.contains("200 of 200 records written"), "{summary}");
    assert!(
        !summary.contains(" 0 retried"),
        "half the records fail each time: {summary}"
    );

    let mut written = HashSet::new();
    for shard in 0..2 {
        for record in read_shard(&client, "throttled", &shard_id(shard)).await {
            assert!(written.insert(text(data(&record))), "written twice");
        }
    }
    assert_eq!(
        written,
        (0..200).map(|i| format!("r{i}")).collect::<HashSet<_>>()
    );

    // Records that keep failing are given up after --max-attempts, named, and the exit is 1.
    let out = run_with_input(
        cli(
            home.path(),
            &server.endpoint(),
            &[
                "put",
                "throttled",
                "--partition-key",
                "one",
                "--max-attempts",
                "1",
            ],
        ),
        (0..40)
            .map(|i| format!("again {i}\n"))
            .collect::<String>()
            .as_bytes(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("records lost after 1 attempts each (input lines "),
        "{stderr}"
    );
    assert!(
        stderr.contains("ProvisionedThroughputExceededException"),
        "{stderr}"
    );
}

#[tokio::test]
async fn log_format_json_writes_one_json_object_per_line() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    for (how, log) in [("flag", "flag.log"), ("env", "env.log")] {
        let port = free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
        // `serve` with its flags is the same as no command.
        cmd.args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(data.path().join(how))
            .args(["--create-stream-delay-ms", "0", "--create-stream", "logged"]);
        if how == "flag" {
            cmd.args(["--log-format", "json"]);
        } else {
            cmd.env("KINESIS_BROKER_LOG_FORMAT", "json");
        }
        let broker = start(cmd, port, &logs.path().join(log)).await;
        wait_active(&client_for(broker.addr), "logged").await;
        drop(broker);
        let text = std::fs::read_to_string(logs.path().join(log)).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() >= 2, "{text}");
        for line in &lines {
            let object: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{how}: {e}: {line}"));
            assert!(
                object["level"].is_string() && object["timestamp"].is_string(),
                "{line}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains("listening on") && l.contains(&format!("127.0.0.1:{port}"))),
            "{text}"
        );
    }
}

/// Puts `data` one record at a time under partition key `key`.
async fn put_each(client: &aws_sdk_kinesis::Client, stream: &str, key: &str, data: &[String]) {
    for d in data {
        client
            .put_record()
            .stream_name(stream)
            .partition_key(key)
            .data(blob(d.as_str()))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn tail_renews_an_expired_iterator_after_the_last_record_printed() {
    use tokio::io::AsyncBufReadExt;
    let (client, server, _dir) = start_server().await;
    let home = tempfile::tempdir().unwrap();
    create_stream(&client, "expiry", 1).await;
    let first: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    let second: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
    put_each(&client, "expiry", "k", &first).await;

    let mut tail = cli(
        home.path(),
        &server.endpoint(),
        &[
            "tail",
            "expiry",
            "--from",
            "trim-horizon",
            "--max-records",
            "10",
            "--idle-exit",
            "30",
        ],
    )
    .spawn()
    .unwrap();
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    let mut next_line = async || {
        tokio::time::timeout(COMMAND_TIMEOUT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
    };
    for _ in 0..first.len() {
        got.push(next_line().await.expect("a record"));
    }
    // The iterator the tail holds is now older than the 5 minutes iterators live.
    server.broker().clock().advance_ms(6 * 60 * 1000).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    put_each(&client, "expiry", "k", &second).await;
    while let Some(line) = next_line().await {
        got.push(line);
    }
    let status = tokio::time::timeout(COMMAND_TIMEOUT, tail.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        got,
        [first, second].concat(),
        "nothing lost or repeated across the renewal"
    );
}

#[tokio::test]
async fn tail_backs_off_when_get_records_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = start_with_faults(
        dir.path(),
        7,
        FaultRules {
            get_records_failure_rate: 0.6,
            ..Default::default()
        },
    )
    .await;
    let client = client_for(server.local_addr());
    create_stream(&client, "busy", 2).await;
    let data: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    put_each(&client, "busy", "k", &data).await;
    let out = run(cli(
        home.path(),
        &server.endpoint(),
        &[
            "tail",
            "busy",
            "--from",
            "trim-horizon",
            "--max-records",
            "20",
            "--idle-exit",
            "30",
        ],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().collect::<Vec<_>>(), data);
}
