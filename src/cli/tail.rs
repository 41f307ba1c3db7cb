//! `kinesis-broker tail STREAM`: follows every shard of a stream and prints its records as
//! they arrive, like kcat's consumer mode. After a reshard, a child shard is read only once
//! its parents have been read to their end, so records of one partition key come out in
//! order across the reshard.
//!
//! GetRecords' limits are respected: at most one call per shard every 200 ms (AWS allows
//! 5 per second per shard), exponential backoff on ProvisionedThroughputExceededException,
//! and an expired iterator is renewed after the last sequence number printed.

use super::{ConnectArgs, Failure};
use crate::client::kinesis::{Record, RecordsPage, Shard};
use crate::client::{ClientError, KinesisClient, Position, kinesis::jitter, time};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// AWS allows 5 GetRecords calls per second per shard.
const MIN_CALL_INTERVAL: Duration = Duration::from_millis(200);
/// Pause between calls once a shard is read to its tip: new records show within this.
const CAUGHT_UP_INTERVAL: Duration = Duration::from_millis(500);
/// Longest backoff after throttling or transient errors.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Consecutive transient failures (not throttling) after which a shard's reader gives up.
const MAX_TRANSIENT_FAILURES: u32 = 10;
/// Sequence numbers are long decimals (56 digits on AWS); epoch seconds are short.
const MIN_SEQUENCE_DIGITS: usize = 20;

/// `tail` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// The stream to follow.
    stream: String,
    /// Where to start: trim-horizon (oldest kept), latest (only new records), a sequence
    /// number, or a time (RFC 3339 or epoch seconds).
    #[arg(long, default_value = "latest", value_parser = parse_start)]
    from: Start,
    /// text: each record's data as UTF-8 (invalid bytes replaced), one per line; json: one
    /// object per line with shardId, sequenceNumber, partitionKey,
    /// approximateArrivalTimestamp and data (UTF-8, or base64 with "encoding":"base64").
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    max_records: Option<u64>,
    /// Exit after this many seconds without a new record.
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<f64>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The data only.
    Text,
    /// JSON lines with the record's metadata.
    Json,
}

/// `--from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// TRIM_HORIZON.
    TrimHorizon,
    /// LATEST.
    Latest,
    /// AT_SEQUENCE_NUMBER in the shard that has it, from its arrival time in the others.
    Sequence(String),
    /// AT_TIMESTAMP (ms since the epoch).
    Time(i64),
}

fn parse_start(text: &str) -> Result<Start, String> {
    match text.to_ascii_lowercase().replace('_', "-").as_str() {
        "trim-horizon" => return Ok(Start::TrimHorizon),
        "latest" => return Ok(Start::Latest),
        _ => {}
    }
    if text.len() >= MIN_SEQUENCE_DIGITS && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Start::Sequence(text.to_string()));
    }
    time::parse_time(text)
        .map(Start::Time)
        .map_err(|e| format!("{e}; or trim-horizon, latest, or a sequence number"))
}

/// What the shard readers tell the printer.
enum Event {
    /// Records of one shard, in order.
    Records(String, Vec<Record>),
    /// The shard is closed and has been read to its end.
    Finished(String),
    /// The shard cannot be read.
    Failed(String, ClientError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for its parents to be read to their end.
    Waiting,
    Reading,
    Done,
}

struct Tracked {
    shard: Shard,
    phase: Phase,
    start: Position,
}

/// Follows the stream until `--max-records`, `--idle-exit`, Ctrl-C, a closed standard
/// output or an error.
pub async fn run(args: TailArgs) -> Result<(), Failure> {
    let client = Arc::new(args.connect.client()?);
    let stream = args.stream.clone();
    let shards = client.list_shards(&stream).await?;
    let positions = initial_positions(&client, &stream, &shards, &args.from).await?;

    let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
    for shard in shards {
        let (phase, start) = match positions.get(&shard.shard_id) {
            Some(start) => (Phase::Waiting, start.clone()),
            None => (Phase::Done, Position::Latest),
        };
        tracked.insert(
            shard.shard_id.clone(),
            Tracked {
                shard,
                phase,
                start,
            },
        );
    }

    let (events, mut inbox) = mpsc::channel::<Event>(64);
    let mut readers = Vec::new();
    start_ready(&mut tracked, &client, &stream, &events, &mut readers);

    let out = std::io::stdout();
    let mut printed: u64 = 0;
    let idle = args.idle_exit.map(|s| Duration::from_secs_f64(s.max(0.0)));
    let mut idle_deadline = idle.map(|d| Instant::now() + d);
    let outcome = loop {
        if !tracked.values().any(|t| t.phase != Phase::Done) {
            break Ok(());
        }
        let idle_wait = async {
            match idle_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            event = inbox.recv() => event,
            _ = idle_wait => break Ok(()),
            _ = super::stop_signal() => break Ok(()),
        };
        match event {
            None => break Ok(()),
            Some(Event::Records(shard_id, records)) => {
                let mut lock = out.lock();
                let mut limit_reached = false;
                let mut write = || -> std::io::Result<()> {
                    for record in &records {
                        write_record(&mut lock, &shard_id, record, args.format)?;
                        printed += 1;
                        if args.max_records.is_some_and(|max| printed >= max) {
                            limit_reached = true;
                            break;
                        }
                    }
                    lock.flush()
                };
                // A closed pipe (`| head`) ends the tail quietly, as for other Unix tools.
                if write().is_err() || limit_reached {
                    break Ok(());
                }
                idle_deadline = idle.map(|d| Instant::now() + d);
            }
            Some(Event::Finished(shard_id)) => {
                if let Some(t) = tracked.get_mut(&shard_id) {
                    t.phase = Phase::Done;
                }
                // The children of a closed shard exist by now: learn them and start those
                // whose parents are all done.
                match client.list_shards(&stream).await {
                    Ok(shards) => {
                        for shard in shards {
                            tracked.entry(shard.shard_id.clone()).or_insert(Tracked {
                                shard,
                                phase: Phase::Waiting,
                                start: Position::TrimHorizon,
                            });
                        }
                    }
                    Err(e) => break Err(Failure::from(e)),
                }
                start_ready(&mut tracked, &client, &stream, &events, &mut readers);
            }
            Some(Event::Failed(shard_id, e)) => {
                break Err(Failure::error(format!("{shard_id}: {e}")));
            }
        }
    };
    for reader in readers {
        reader.abort();
    }
    outcome
}

/// Where each shard known at start begins; shards absent from the map have nothing to
/// give (closed shards under `latest`).
async fn initial_positions(
    client: &KinesisClient,
    stream: &str,
    shards: &[Shard],
    start: &Start,
) -> Result<BTreeMap<String, Position>, Failure> {
    let mut positions = BTreeMap::new();
    match start {
        Start::TrimHorizon => {
            for shard in shards {
                positions.insert(shard.shard_id.clone(), Position::TrimHorizon);
            }
        }
        Start::Latest => {
            for shard in shards {
                if shard.sequence_number_range.ending_sequence_number.is_none() {
                    positions.insert(shard.shard_id.clone(), Position::Latest);
                }
            }
        }
        Start::Time(ms) => {
            for shard in shards {
                positions.insert(shard.shard_id.clone(), Position::AtTimestamp(*ms));
            }
        }
        Start::Sequence(seq) => {
            // A sequence number belongs to one shard; the others start from the time that
            // record arrived, so that the tail begins at the same moment everywhere.
            let mut owner = None;
            let mut refusal = None;
            for shard in shards {
                match client
                    .get_shard_iterator(stream, &shard.shard_id, &Position::AtSequence(seq.clone()))
                    .await
                {
                    Ok(iterator) => {
                        owner = Some((shard.shard_id.clone(), iterator));
                        break;
                    }
                    Err(e) if e.code() == Some("InvalidArgumentException") => refusal = Some(e),
                    Err(e) => return Err(e.into()),
                }
            }
            let Some((owner, iterator)) = owner else {
                return Err(match refusal {
                    Some(e) => Failure::error(format!(
                        "no shard of {stream} holds sequence number {seq} (last answer: {e})"
                    )),
                    None => Failure::error(format!("{stream} has no shards")),
                });
            };
            let page = client.get_records(&iterator, Some(1)).await?;
            let arrival = page
                .records
                .first()
                .and_then(|r| r.approximate_arrival_timestamp)
                .map(|secs| (secs * 1000.0) as i64);
            for shard in shards {
                let position = if shard.shard_id == owner {
                    Position::AtSequence(seq.clone())
                } else {
                    match arrival {
                        Some(ms) => Position::AtTimestamp(ms),
                        // The record is gone (trimmed): nothing to align the others on.
                        None => Position::TrimHorizon,
                    }
                };
                positions.insert(shard.shard_id.clone(), position);
            }
        }
    }
    Ok(positions)
}

/// Starts a reader for every waiting shard whose parents are done (or unknown: trimmed
/// away, or never part of what was listed).
fn start_ready(
    tracked: &mut BTreeMap<String, Tracked>,
    client: &Arc<KinesisClient>,
    stream: &str,
    events: &mpsc::Sender<Event>,
    readers: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    for id in ready_shards(tracked) {
        let Some(t) = tracked.get_mut(&id) else {
            continue;
        };
        t.phase = Phase::Reading;
        readers.push(tokio::spawn(read_shard(
            client.clone(),
            stream.to_string(),
            id,
            t.start.clone(),
            events.clone(),
        )));
    }
}

/// The waiting shards whose parents are all done or unknown.
fn ready_shards(tracked: &BTreeMap<String, Tracked>) -> Vec<String> {
    let settled = |id: &String| tracked.get(id).is_none_or(|t| t.phase == Phase::Done);
    tracked
        .iter()
        .filter(|(_, t)| t.phase == Phase::Waiting)
        .filter(|(_, t)| {
            [&t.shard.parent_shard_id, &t.shard.adjacent_parent_shard_id]
                .into_iter()
                .flatten()
                .all(settled)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Reads one shard until it is closed and read to its end, or the printer goes away.
async fn read_shard(
    client: Arc<KinesisClient>,
    stream: String,
    shard_id: String,
    start: Position,
    events: mpsc::Sender<Event>,
) {
    let fail = |e: ClientError| Event::Failed(shard_id.clone(), e);
    let mut last_sequence: Option<String> = None;
    let mut iterator = match iterator_with_retry(&client, &stream, &shard_id, &start).await {
        Ok(it) => it,
        Err(e) => {
            let _ = events.send(fail(e)).await;
            return;
        }
    };
    let mut backoff = MIN_CALL_INTERVAL;
    let mut transient_failures = 0;
    loop {
        let called_at = Instant::now();
        match client.get_records(&iterator, None).await {
            Ok(RecordsPage {
                records,
                next_shard_iterator,
                millis_behind_latest,
            }) => {
                backoff = MIN_CALL_INTERVAL;
                transient_failures = 0;
                let empty = records.is_empty();
                if let Some(last) = records.last() {
                    last_sequence = Some(last.sequence_number.clone());
                    if events
                        .send(Event::Records(shard_id.clone(), records))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let Some(next) = next_shard_iterator else {
                    let _ = events.send(Event::Finished(shard_id.clone())).await;
                    return;
                };
                iterator = next;
                let caught_up = empty && millis_behind_latest.unwrap_or(0) == 0;
                let interval = if caught_up {
                    CAUGHT_UP_INTERVAL
                } else {
                    MIN_CALL_INTERVAL
                };
                tokio::time::sleep_until(called_at + interval).await;
            }
            Err(e) if e.code() == Some("ProvisionedThroughputExceededException") => {
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) if e.code() == Some("ExpiredIteratorException") => {
                let resume = match &last_sequence {
                    Some(seq) => Position::AfterSequence(seq.clone()),
                    None => start.clone(),
                };
                match iterator_with_retry(&client, &stream, &shard_id, &resume).await {
                    Ok(it) => iterator = it,
                    Err(e) => {
                        let _ = events.send(fail(e)).await;
                        return;
                    }
                }
            }
            Err(e) if e.is_transient() && transient_failures < MAX_TRANSIENT_FAILURES => {
                transient_failures += 1;
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                let _ = events.send(fail(e)).await;
                return;
            }
        }
    }
}

/// GetShardIterator, waiting out throttling (its limit is 5 calls per second per shard).
async fn iterator_with_retry(
    client: &KinesisClient,
    stream: &str,
    shard_id: &str,
    position: &Position,
) -> Result<String, ClientError> {
    let mut backoff = MIN_CALL_INTERVAL;
    let mut attempts = 0;
    loop {
        match client.get_shard_iterator(stream, shard_id, position).await {
            Err(e)
                if e.code() == Some("ProvisionedThroughputExceededException") && attempts < 20 =>
            {
                attempts += 1;
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// One record in the chosen format, newline-terminated.
fn write_record(
    out: &mut impl Write,
    shard_id: &str,
    record: &Record,
    format: Format,
) -> std::io::Result<()> {
    let data = base64_simd::STANDARD
        .decode_to_vec(record.data.as_bytes())
        .unwrap_or_else(|_| record.data.as_bytes().to_vec());
    match format {
        Format::Text => {
            out.write_all(String::from_utf8_lossy(&data).as_bytes())?;
            out.write_all(b"\n")
        }
        Format::Json => {
            let text = String::from_utf8(data).ok();
            let line = JsonLine {
                shard_id,
                sequence_number: &record.sequence_number,
                partition_key: &record.partition_key,
                approximate_arrival_timestamp: record
                    .approximate_arrival_timestamp
                    .map(|secs| time::rfc3339_ms((secs * 1000.0).round() as i64)),
                encoding: if text.is_some() { None } else { Some("base64") },
                data: text.as_deref().unwrap_or(&record.data),
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")
        }
    }
}

/// A record in `--format json`, fields in this order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLine<'a> {
    shard_id: &'a str,
    sequence_number: &'a str,
    partition_key: &'a str,
    approximate_arrival_timestamp: Option<String>,
    /// Only for data that is not UTF-8, which is then given in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    data: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_positions_sequence_numbers_and_times() {
        assert_eq!(parse_start("trim-horizon"), Ok(Start::TrimHorizon));
        assert_eq!(parse_start("TRIM_HORIZON"), Ok(Start::TrimHorizon));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        let seq = "49590338271490256608559692538361571095921575989136588898";
        assert_eq!(parse_start(seq), Ok(Start::Sequence(seq.into())));
        assert_eq!(
            parse_start("1700000000"),
            Ok(Start::Time(1_700_000_000_000))
        );
        assert_eq!(
            parse_start("2023-11-14T22:13:20Z"),
            Ok(Start::Time(1_700_000_000_000))
        );
        assert!(parse_start("soon").is_err());
    }

    fn tracked(id: &str, parents: [Option<&str>; 2], phase: Phase) -> (String, Tracked) {
        let shard: Shard = serde_json::from_value(serde_json::json!({
            "ShardId": id,
            "ParentShardId": parents[0],
            "AdjacentParentShardId": parents[1],
            "SequenceNumberRange": { "StartingSequenceNumber": "1" },
        }))
        .unwrap();
        (
            id.to_string(),
            Tracked {
                shard,
                phase,
                start: Position::TrimHorizon,
            },
        )
    }

    #[test]
    fn children_wait_for_every_parent_to_be_read_to_its_end() {
        let mut shards: BTreeMap<String, Tracked> = [
            tracked("p1", [None, None], Phase::Reading),
            tracked("p2", [None, None], Phase::Done),
            // Split children of p1, a merge of p1 and p2, a child of a trimmed-away shard.
            tracked("c1", [Some("p1"), None], Phase::Waiting),
            tracked("c2", [Some("p1"), None], Phase::Waiting),
            tracked("m", [Some("p2"), Some("p1")], Phase::Waiting),
            tracked("orphan", [Some("gone"), None], Phase::Waiting),
        ]
        .into_iter()
        .collect();
        assert_eq!(ready_shards(&shards), ["orphan"]);
        shards.get_mut("p1").unwrap().phase = Phase::Done;
        assert_eq!(ready_shards(&shards), ["c1", "c2", "m", "orphan"]);
    }

    fn record(data: &[u8]) -> Record {
        Record {
            sequence_number: "1".into(),
            partition_key: "k".into(),
            data: base64_simd::STANDARD.encode_to_string(data),
            approximate_arrival_timestamp: Some(1_700_000_000.25),
        }
    }

    #[test]
    fn text_replaces_invalid_utf8_and_json_falls_back_to_base64() {
        let mut out = Vec::new();
        write_record(&mut out, "s", &record(b"caf\xc3\xa9 \xff"), Format::Text).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "café \u{fffd}\n");

        let mut out = Vec::new();
        write_record(
            &mut out,
            "shardId-000000000000",
            &record(b"hello"),
            Format::Json,
        )
        .unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["data"], "hello");
        assert_eq!(line["shardId"], "shardId-000000000000");
        assert_eq!(
            line["approximateArrivalTimestamp"],
            "2023-11-14T22:13:20.250Z"
        );
        assert!(line.get("encoding").is_none());

        let mut out = Vec::new();
        write_record(&mut out, "s", &record(&[0xff, 0x00, 0x80]), Format::Json).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["encoding"], "base64");
        assert_eq!(line["data"], "/wCA");
    }
}
