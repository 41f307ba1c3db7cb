//! A mapping's delivery: one task per shard, parents finished before their children, each
//! waiting on its shard's tail notifier (no polling timer), batching, invoking with
//! retries, and checkpointing after each batch.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Mapping;
use super::event::{self, EventRecord, Source};
use super::mapping::StartingPosition;
use super::runtime::{Function, Outcome};
use crate::broker::stream::{Shard, Stream, StreamKey};
use crate::broker::{Broker, Position};

/// Pause after a failed invocation before the retry (grows to [`MAX_RETRY_PAUSE`]).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Pause after a storage error before reading again.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Runs a mapping until `stop`: starts each shard whose parents are finished.
pub(super) async fn run_mapping(
    broker: Arc<Broker>,
    mapping: Arc<Mapping>,
    function: Arc<Function>,
    mut stop: watch::Receiver<bool>,
) {
    let config = mapping.config();
    let stream = StreamKey::from_arn(&config.event_source_arn).and_then(|k| broker.stream(&k).ok());
    let Some(stream) = stream else {
        tracing::warn!(uuid = %config.uuid, arn = %config.event_source_arn, "mapping idle: its stream does not exist");
        let _ = stop.wait_for(|s| *s).await;
        return;
    };
    let mut running: HashSet<u32> = HashSet::new();
    let mut tasks = JoinSet::new();
    loop {
        let shards = stream.state().shards.clone();
        {
            let progress = mapping.progress();
            for shard in &shards {
                let done = |i: u32| progress.finished.contains(&i);
                let ready = !done(shard.index)
                    && !running.contains(&shard.index)
                    && [shard.parent, shard.adjacent_parent]
                        .into_iter()
                        .flatten()
                        .all(done);
                if ready {
                    running.insert(shard.index);
                    tasks.spawn(run_shard(
                        broker.clone(),
                        stream.clone(),
                        shard.clone(),
                        mapping.clone(),
                        function.clone(),
                        stop.clone(),
                    ));
                }
            }
        }
        tokio::select! {
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(Some(index)) = joined {
                    mapping.progress().finished.insert(index);
                    if let Err(e) = mapping.persist_async().await {
                        tracing::error!(error = %e, "cannot save a mapping's checkpoint");
                    }
                }
            }
            _ = stopped(&mut stop) => {
                // Each shard task sees the stop too, and finishes the checkpoint it is
                // writing first.
                while tasks.join_next().await.is_some() {}
                return;
            }
        }
    }
}

/// Delivers one shard; `Some(index)` once a closed shard was delivered to its end.
async fn run_shard(
    broker: Arc<Broker>,
    stream: Arc<Stream>,
    shard: Arc<Shard>,
    mapping: Arc<Mapping>,
    function: Arc<Function>,
    mut stop: watch::Receiver<bool>,
) -> Option<u32> {
    let mut tail = shard.tail.watch();
    let checkpoint = mapping.progress().positions.get(&shard.index).copied();
    let mut position = match checkpoint {
        Some(p) => p,
        None => {
            let config = mapping.config();
            let at = match (
                config.starting_position,
                config.starting_position_timestamp_ms,
            ) {
                (StartingPosition::AtTimestamp, Some(t)) => Position::AtTimestamp(t),
                _ => Position::TrimHorizon,
            };
            loop {
                match broker.resolve_position(&stream, &shard, at) {
                    Ok(p) => break p,
                    Err(e) => {
                        tracing::error!(error = %e, shard = %shard.id, "cannot resolve a mapping's start");
                        if pause(&mut stop, READ_ERROR_PAUSE).await {
                            return None;
                        }
                    }
                }
            }
        }
    };
    loop {
        if *stop.borrow() {
            return None;
        }
        tail.borrow_and_update();
        let horizon = match broker.trim_horizon(&stream, &shard) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, shard = %shard.id, "cannot read a shard for a mapping");
                if pause(&mut stop, READ_ERROR_PAUSE).await {
                    return None;
                }
                continue;
            }
        };
        let from = position.max(horizon);
        let end = Broker::shard_end(&shard);
        if from < end {
            let config = mapping.config();
            let batch_size = config.batch_size as u64;
            if config.batching_window_s > 0 && end - from < batch_size && shard.is_open() {
                let deadline =
                    Instant::now() + Duration::from_secs(config.batching_window_s.into());
                loop {
                    tokio::select! {
                        _ = tail.changed() => {}
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = stopped(&mut stop) => return None,
                    }
                    if Broker::shard_end(&shard) - from >= batch_size || !shard.is_open() {
                        break;
                    }
                }
            }
            let end = Broker::shard_end(&shard);
            match deliver(
                &broker, &stream, &shard, &mapping, &function, &mut stop, from, end,
            )
            .await
            {
                Some(next) => position = next,
                None => return None,
            }
            continue;
        }
        position = from;
        if shard.closed().is_some() {
            return Some(shard.index);
        }
        tokio::select! {
            changed = tail.changed() => if changed.is_err() { return None },
            _ = stopped(&mut stop) => return None,
        }
    }
}

/// Returns once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `d`; true when stopped meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stopped(stop) => true,
    }
}

/// Builds one batch at `from`, invokes until it succeeds or the mapping's policy discards
/// it, checkpoints past it, and returns the next offset (`None` when stopped).
#[allow(clippy::too_many_arguments)]
async fn deliver(
    broker: &Arc<Broker>,
    stream: &Stream,
    shard: &Shard,
    mapping: &Arc<Mapping>,
    function: &Function,
    stop: &mut watch::Receiver<bool>,
    from: u64,
    end: u64,
) -> Option<u64> {
    let config = mapping.config();
    let limit = (config.batch_size as u64).min(end - from) as usize;
    let batch = match shard.log.read(from, limit, event::MAX_PAYLOAD_BYTES) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, shard = %shard.id, "cannot read a shard for a mapping");
            return if pause(stop, READ_ERROR_PAUSE).await {
                None
            } else {
                Some(from)
            };
        }
    };
    let arn = stream.arn();
    let source = Source {
        shard_id: &shard.id,
        stream_arn: &arn,
        region: &stream.key.region,
        account: &stream.key.account,
    };
    let mut records = Vec::new();
    let mut size = 0;
    let mut next = from;
    let mut oldest_ms = None;
    let mut first_seq = String::new();
    let mut last_seq = String::new();
    for r in batch.iter() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, shard = %shard.id, "a damaged record stops this batch");
                break;
            }
        };
        let s = event::record_size(r.partition_key.len(), r.data.len());
        if !records.is_empty() && size + s > event::MAX_PAYLOAD_BYTES {
            break;
        }
        size += s;
        let seq = shard.sequence_number(r.arrival_ms, r.offset);
        if records.is_empty() {
            first_seq = seq.clone();
        }
        last_seq = seq.clone();
        oldest_ms.get_or_insert(r.arrival_ms);
        records.push(event::record(
            &source,
            &EventRecord {
                partition_key: r.partition_key,
                data: r.data,
                sequence_number: seq,
                arrival_ms: r.arrival_ms,
            },
        ));
        next = r.offset + 1;
    }
    drop(batch);
    if records.is_empty() {
        return if pause(stop, READ_ERROR_PAUSE).await {
            None
        } else {
            Some(from)
        };
    }
    let count = records.len();
    let payload = Bytes::from(event::event(records));
    let mut retries: i64 = 0;
    let mut wait = RETRY_PAUSE;
    loop {
        let outcome = tokio::select! {
            // An answer already given wins over a stop: it is checkpointed.
            biased;
            o = function.invoke(payload.clone()) => o,
            _ = stopped(stop) => return None,
        };
        let error = match outcome {
            Outcome::Response(_) => {
                mapping.progress().last_result = "OK".into();
                break;
            }
            Outcome::Error(e) => e,
        };
        tracing::info!(shard = %shard.id, retries, error = %error, "function error; the batch will be retried");
        mapping.progress().last_result = "PROBLEM: Function call failed".into();
        let config = mapping.config();
        let too_many =
            config.max_retry_attempts >= 0 && retries >= config.max_retry_attempts as i64;
        let too_old = config.max_record_age_s >= 0
            && oldest_ms.is_some_and(|t| {
                broker.clock().now_ms() - t > config.max_record_age_s as i64 * 1000
            });
        if too_many || too_old {
            let why = if too_many {
                format!(
                    "after {retries} retries (MaximumRetryAttempts {})",
                    config.max_retry_attempts
                )
            } else {
                format!("past MaximumRecordAgeInSeconds {}", config.max_record_age_s)
            };
            let message = format!(
                "PROBLEM: Function call failed; batch of {count} records of {} (sequence numbers {first_seq} to {last_seq}) discarded {why}",
                shard.id
            );
            tracing::warn!(uuid = %config.uuid, "{message}");
            mapping.progress().last_result = message;
            break;
        }
        retries += 1;
        if pause(stop, wait).await {
            return None;
        }
        wait = (wait * 2).min(MAX_RETRY_PAUSE);
    }
    mapping.progress().positions.insert(shard.index, next);
    if let Err(e) = mapping.persist_async().await {
        tracing::error!(error = %e, "cannot save a mapping's checkpoint");
    }
    Some(next)
}
