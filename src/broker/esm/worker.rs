//! A mapping's delivery: one task per shard, parents finished before their children, each
//! waiting on its shard's tail notifier (no polling timer). A shard is delivered in rounds:
//! up to ParallelizationFactor batches at once, one per lane, each partition key always in
//! the same lane; each batch is retried, bisected, partially acknowledged
//! (ReportBatchItemFailures) or discarded (MaximumRetryAttempts, MaximumRecordAgeInSeconds,
//! reported to the on-failure destination) as Lambda does. The checkpoint only ever moves
//! to the lowest record some lane has not finished with, so a restart may deliver a record
//! again but never skips one.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Mapping;
use super::access::{self, SourceAccess};
use super::batch::{self, Item, Verdict};
use super::destination::{self, Condition, Discard};
use super::event::{self, EventRecord, Source};
use super::filter::Filters;
use super::mapping::{MappingConfig, StartingPosition};
use super::runtime::{self, Function, Outcome};
use super::stats::Event as StatsEvent;
use super::window::{self, OpenWindow, WindowFields};
use crate::broker::stream::{Shard, Stream, StreamKey};
use crate::broker::{Broker, Position, hash};

/// Pause after a failed invocation before the retry (grows to [`MAX_RETRY_PAUSE`]).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Pause after a storage error before reading again.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How often a mapping reading another account's stream re-checks the stream's policy while
/// it has nothing to deliver or is refused: Lambda polls each shard once a second.
const ACCESS_RECHECK: Duration = Duration::from_secs(1);

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
                    mapping.checkpoint_behind();
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
    let mut access = SourceAccess::new(&mapping.config().function_arn, &stream);
    loop {
        if *stop.borrow() {
            return None;
        }
        tail.borrow_and_update();
        if !access.allowed(&stream) {
            report_access_lost(&mapping, &stream);
            if pause(&mut stop, ACCESS_RECHECK).await {
                return None;
            }
            continue;
        }
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
        // Under a tumbling window, the open window is over once its end has passed with
        // every record of it delivered (later records arrive later), or its shard ended.
        // Windows are arrival-time ranges, and arrival times are the wall reading held
        // monotonic per shard, so the wall reading (not the steady one) says when no record
        // can arrive in one any more; a forward step during the sleep below is noticed when
        // it ends, at most one window length late.
        let config = mapping.config();
        let open = mapping.progress().windows.get(&shard.index).cloned();
        let window_end = open
            .filter(|_| config.tumbling_window_s > 0)
            .map(|w| w.start_ms + i64::from(config.tumbling_window_s) * 1000);
        if let Some(window_end) = window_end
            && (shard.closed().is_some() || broker.clock().now_ms() >= window_end)
        {
            let context = ShardContext {
                broker: broker.clone(),
                shard: shard.clone(),
                mapping: mapping.clone(),
                function: function.clone(),
                stream_arn: stream.arn(),
                region: stream.key.region.clone(),
                account: stream.key.account.clone(),
            };
            if !final_invoke(&context, &mut stop, false).await {
                return None;
            }
            continue;
        }
        if shard.closed().is_some() {
            return Some(shard.index);
        }
        let until_window_end = window_end.map_or(Duration::from_secs(86_400), |end| {
            Duration::from_millis((end - broker.clock().now_ms()).max(0) as u64)
        });
        tokio::select! {
            changed = tail.changed() => if changed.is_err() { return None },
            _ = tokio::time::sleep(until_window_end), if window_end.is_some() => {}
            // An idle poller still finds out (and reports) that it lost access.
            _ = tokio::time::sleep(ACCESS_RECHECK), if access.is_cross_account() => {}
            _ = stopped(&mut stop) => return None,
        }
    }
}

/// Shows the refusal in LastProcessingResult (persisted, once per change). The mapping
/// stays Enabled: Lambda keeps polling and picks up again once the policy allows it.
fn report_access_lost(mapping: &Arc<Mapping>, stream: &Stream) {
    let problem = access::access_lost(&stream.arn());
    let changed = {
        let mut progress = mapping.progress();
        let changed = progress.last_result != problem;
        if changed {
            progress.last_result = problem;
        }
        changed
    };
    if changed {
        tracing::warn!(uuid = %mapping.config().uuid, stream = %stream.arn(), "a mapping lost access to another account's stream");
        mapping.checkpoint_behind();
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

/// What a shard's delivery works with.
struct ShardContext {
    broker: Arc<Broker>,
    shard: Arc<Shard>,
    mapping: Arc<Mapping>,
    function: Arc<Function>,
    stream_arn: String,
    region: String,
    account: String,
}

/// One round: reads up to ParallelizationFactor × BatchSize records at `from`, routes them to
/// lanes by a hash of their partition key (so each key stays in one lane, in order),
/// delivers every lane's batch at once, and checkpoints past the round once every record in
/// it was delivered or discarded by policy. Returns the next offset (`None` when stopped).
#[allow(clippy::too_many_arguments)]
async fn deliver(
    broker: &Arc<Broker>,
    stream: &Stream,
    shard: &Arc<Shard>,
    mapping: &Arc<Mapping>,
    function: &Arc<Function>,
    stop: &mut watch::Receiver<bool>,
    from: u64,
    end: u64,
) -> Option<u64> {
    let config = mapping.config();
    let lanes_n = config.parallelization_factor.max(1) as usize;
    let batch_size = config.batch_size as usize;
    let limit = ((batch_size * lanes_n) as u64).min(end - from) as usize;
    let read = shard.log.read(
        from,
        limit,
        event::MAX_PAYLOAD_BYTES.saturating_mul(lanes_n),
    );
    let read = match read {
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
    // Validated at create/update; a pattern stored by an older version that no longer
    // parses delivers nothing rather than everything.
    let filters = config.filter_criteria.as_ref().map(|c| {
        Filters::parse(c).unwrap_or_else(|e| {
            tracing::error!(error = %e, uuid = %config.uuid, "a stored filter does not parse");
            Filters::nothing()
        })
    });
    let stream_arn = stream.arn();
    let source = Source {
        shard_id: &shard.id,
        stream_arn: &stream_arn,
        region: &stream.key.region,
        account: &stream.key.account,
    };
    let mut lanes: Vec<Vec<Item>> = vec![Vec::new(); lanes_n];
    let mut sizes = vec![0usize; lanes_n];
    let mut next = from;
    let window_s = config.tumbling_window_s;
    let mut round_window = None;
    for r in read.iter() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, shard = %shard.id, "a damaged record stops this batch");
                break;
            }
        };
        // A batch never spans two windows.
        if window_s > 0 {
            let w = window::window_start(r.arrival_ms, window_s);
            if *round_window.get_or_insert(w) != w {
                break;
            }
        }
        let sequence_number = shard.sequence_number(r.arrival_ms, r.offset);
        if let Some(filters) = &filters {
            let as_delivered = event::record(
                &source,
                &EventRecord {
                    partition_key: r.partition_key,
                    data: r.data,
                    sequence_number: sequence_number.clone(),
                    arrival_ms: r.arrival_ms,
                },
            );
            if !filters.matches(&as_delivered, r.data) {
                // Filtered out: never delivered, and the checkpoint moves past it.
                mapping.stats.count(StatsEvent::Filtered);
                next = r.offset + 1;
                continue;
            }
        }
        let lane = if lanes_n == 1 {
            0
        } else {
            (hash::partition_key_hash(r.partition_key) % lanes_n as u128) as usize
        };
        let s = event::record_size(r.partition_key.len(), r.data.len());
        // The round stays a prefix of the shard: it ends at the first record whose lane is
        // full, so checkpointing past the round never passes a record not delivered.
        if lanes[lane].len() >= batch_size
            || (!lanes[lane].is_empty() && sizes[lane] + s > event::MAX_PAYLOAD_BYTES)
        {
            break;
        }
        sizes[lane] += s;
        lanes[lane].push(Item {
            offset: r.offset,
            arrival_ms: r.arrival_ms,
            partition_key: Bytes::copy_from_slice(r.partition_key),
            data: Bytes::copy_from_slice(r.data),
            sequence_number,
        });
        next = r.offset + 1;
    }
    drop(read);
    if next == from {
        return if pause(stop, READ_ERROR_PAUSE).await {
            None
        } else {
            Some(from)
        };
    }
    if lanes.iter().all(Vec::is_empty) {
        // Every record of the round was filtered out.
        mapping.progress().positions.insert(shard.index, next);
        mapping.checkpoint_behind();
        return Some(next);
    }
    let context = Arc::new(ShardContext {
        broker: broker.clone(),
        shard: shard.clone(),
        mapping: mapping.clone(),
        function: function.clone(),
        stream_arn: stream.arn(),
        region: stream.key.region.clone(),
        account: stream.key.account.clone(),
    });
    if let Some(start_ms) = round_window {
        let open = mapping
            .progress()
            .windows
            .get(&shard.index)
            .map(|w| w.start_ms);
        match open {
            Some(open) if open == start_ms => {}
            Some(_) => {
                // The records of the open window are all delivered: it is over.
                if !final_invoke(&context, stop, false).await {
                    return None;
                }
                open_window(mapping, shard.index, start_ms);
            }
            None => open_window(mapping, shard.index, start_ms),
        }
    }
    let round = Arc::new(Round {
        lowest_pending: Mutex::new(
            lanes
                .iter()
                .map(|l| l.first().map_or(next, |i| i.offset))
                .collect(),
        ),
        end: next,
    });
    let completed = if lanes_n == 1 {
        // One lane (the default): no task to spawn per batch.
        let items = lanes.pop().unwrap_or_default();
        deliver_lane(context, round, 0, items, stop.clone()).await
    } else {
        let mut tasks = JoinSet::new();
        for (lane, items) in lanes.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            tasks.spawn(deliver_lane(
                context.clone(),
                round.clone(),
                lane,
                items,
                stop.clone(),
            ));
        }
        let mut completed = true;
        while let Some(joined) = tasks.join_next().await {
            completed &= joined.unwrap_or(false);
        }
        completed
    };
    if !completed {
        return None;
    }
    mapping.progress().positions.insert(shard.index, next);
    mapping.checkpoint_behind();
    Some(next)
}

/// The lanes of one round: per lane, the offset of its first record not yet delivered or
/// discarded. Everything below the lowest of them is done, so the checkpoint may move there.
struct Round {
    lowest_pending: Mutex<Vec<u64>>,
    end: u64,
}

impl Round {
    /// Lane `lane` has nothing pending below `offset`; moves the checkpoint if the round's
    /// lowest pending offset rose.
    async fn advance(&self, context: &ShardContext, lane: usize, offset: u64) {
        let low = {
            let mut lowest = self
                .lowest_pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            lowest[lane] = offset;
            lowest.iter().copied().min().unwrap_or(self.end)
        };
        // The round's end is checkpointed by the round itself.
        if low >= self.end {
            return;
        }
        {
            let mut progress = context.mapping.progress();
            let current = progress.positions.get(&context.shard.index).copied();
            if current.is_some_and(|c| c >= low) {
                return;
            }
            progress.positions.insert(context.shard.index, low);
        }
        context.mapping.checkpoint_behind();
    }
}

/// A batch waiting for delivery in a lane.
struct Pending {
    items: Vec<Item>,
    retries: i64,
    invocations: u32,
    /// Whether the last invocation ended in a function error.
    function_error: bool,
}

impl Pending {
    fn new(items: Vec<Item>, retries: i64) -> Self {
        Self {
            items,
            retries,
            invocations: 0,
            function_error: false,
        }
    }
}

/// Delivers one lane's batch until every record is delivered or discarded by the mapping's
/// policy: retries, MaximumRetryAttempts, MaximumRecordAgeInSeconds, bisection and reported
/// batch item failures. False when stopped.
async fn deliver_lane(
    context: Arc<ShardContext>,
    round: Arc<Round>,
    lane: usize,
    items: Vec<Item>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let lane_end = items.last().map_or(round.end, |i| i.offset + 1);
    let mut queue = VecDeque::from([Pending::new(items, 0)]);
    let mut wait = RETRY_PAUSE;
    while let Some(mut pending) = queue.pop_front() {
        'batch: loop {
            let config = context.mapping.config();
            // Lambda does not send records older than MaximumRecordAgeInSeconds: they are
            // discarded before the invocation, whether or not they were tried before.
            if config.max_record_age_s >= 0 {
                let clock = context.broker.clock();
                let max_age_ms = config.max_record_age_s as i64 * 1000;
                // By `Clock::age_ms`: a forward wall step must not age every pending
                // record past the limit at once.
                let expired = pending
                    .items
                    .iter()
                    .take_while(|i| clock.age_ms(i.arrival_ms) > max_age_ms)
                    .count();
                if expired > 0 {
                    let rest = pending.items.split_off(expired);
                    let why = format!("past MaximumRecordAgeInSeconds {}", config.max_record_age_s);
                    discard(&context, &pending, Condition::RecordAgeExceeded, &why).await;
                    pending = Pending {
                        items: rest,
                        ..pending
                    };
                    match pending.items.first() {
                        Some(i) => round.advance(&context, lane, i.offset).await,
                        None => break 'batch,
                    }
                }
            }
            let payload = Bytes::from(event_for(&context, &config, &pending.items));
            let outcome = tokio::select! {
                // An answer already given wins over a stop: it is checkpointed.
                biased;
                o = context.function.invoke(payload) => o,
                _ = stopped(&mut stop) => return false,
            };
            pending.invocations += 1;
            context.mapping.stats.count(StatsEvent::Invocation);
            let failure = match outcome {
                Outcome::Response(body) => {
                    pending.function_error = false;
                    let mut verdict = if config.report_batch_item_failures {
                        batch::batch_item_failures(&body, &pending.items)
                    } else {
                        Verdict::Success
                    };
                    if config.tumbling_window_s > 0 {
                        match window::returned_state(&body) {
                            // Lambda counts a windowed response without `state` as failed.
                            None => {
                                verdict = Verdict::Failure(
                                    "a tumbling-window response has no state".into(),
                                )
                            }
                            Some(state) => {
                                let too_big = state.to_string().len() > window::MAX_STATE_BYTES;
                                if let Some(w) = context
                                    .mapping
                                    .progress()
                                    .windows
                                    .get_mut(&context.shard.index)
                                {
                                    w.state = state;
                                }
                                if too_big && !final_invoke(&context, &mut stop, true).await {
                                    return false;
                                }
                            }
                        }
                    }
                    match verdict {
                        Verdict::Success => {
                            context
                                .mapping
                                .stats
                                .count(StatsEvent::Delivered(pending.items.len() as u64));
                            context.mapping.progress().last_result = "OK".into();
                            wait = RETRY_PAUSE;
                            break 'batch;
                        }
                        Verdict::FailedFrom(index) if index > 0 => {
                            context
                                .mapping
                                .stats
                                .count(StatsEvent::Delivered(index as u64));
                            pending.items.drain(..index);
                            round.advance(&context, lane, pending.items[0].offset).await;
                            if config.bisect_on_error {
                                context.mapping.stats.count(StatsEvent::Bisection);
                                // With BisectBatchOnFunctionError, a partial response splits the
                                // batch at the returned sequence number and only the rest is
                                // retried: a split, not a retry.
                                continue 'batch;
                            }
                            format!(
                                "the function reported batch item failures from sequence number {}",
                                pending.items[0].sequence_number
                            )
                        }
                        Verdict::FailedFrom(_) => format!(
                            "the function reported the batch's first record ({}) failed",
                            pending.items[0].sequence_number
                        ),
                        Verdict::Failure(why) => why,
                    }
                }
                Outcome::Error(e) => {
                    pending.function_error = true;
                    context.mapping.stats.count(StatsEvent::FunctionError);
                    e
                }
            };
            tracing::info!(shard = %context.shard.id, retries = pending.retries, error = %failure, "function error; the batch will be retried");
            context.mapping.progress().last_result = "PROBLEM: Function call failed".into();
            if config.bisect_on_error && pending.items.len() > 1 {
                // Splitting does not consume the retry quota: both halves keep the count.
                context.mapping.stats.count(StatsEvent::Bisection);
                let second = pending.items.split_off(pending.items.len() / 2);
                queue.push_front(Pending::new(second, pending.retries));
                queue.push_front(Pending::new(
                    std::mem::take(&mut pending.items),
                    pending.retries,
                ));
                break 'batch;
            }
            if config.max_retry_attempts >= 0 && pending.retries >= config.max_retry_attempts as i64
            {
                let why = format!(
                    "after {} retries (MaximumRetryAttempts {})",
                    pending.retries, config.max_retry_attempts
                );
                discard(&context, &pending, Condition::RetryAttemptsExhausted, &why).await;
                break 'batch;
            }
            pending.retries += 1;
            context.mapping.stats.count(StatsEvent::Retry);
            if pause(&mut stop, wait).await {
                return false;
            }
            wait = (wait * 2).min(MAX_RETRY_PAUSE);
        }
        let low = queue
            .front()
            .and_then(|p| p.items.first())
            .map_or(lane_end, |i| i.offset);
        round.advance(&context, lane, low).await;
    }
    true
}

/// The invocation event of `items` (with its window's members under a tumbling window).
fn event_for(context: &ShardContext, config: &MappingConfig, items: &[Item]) -> Vec<u8> {
    let source = Source {
        shard_id: &context.shard.id,
        stream_arn: &context.stream_arn,
        region: &context.region,
        account: &context.account,
    };
    let records = event::records_json(
        &source,
        items.iter().map(|i| EventRecord {
            partition_key: &i.partition_key,
            data: &i.data,
            sequence_number: i.sequence_number.clone(),
            arrival_ms: i.arrival_ms,
        }),
    );
    if config.tumbling_window_s > 0 {
        let open = context
            .mapping
            .progress()
            .windows
            .get(&context.shard.index)
            .cloned();
        if let Some(open) = open {
            return window::event(
                &records,
                &WindowFields {
                    window: &open,
                    window_s: config.tumbling_window_s,
                    shard_id: &context.shard.id,
                    stream_arn: &context.stream_arn,
                    is_final: false,
                    terminated_early: false,
                },
            );
        }
    }
    event::event_of(&records)
}

fn open_window(mapping: &Mapping, shard_index: u32, start_ms: i64) {
    mapping
        .progress()
        .windows
        .insert(shard_index, OpenWindow::new(start_ms));
}

/// The shard's open window is over (or its state passed 1 MB: `terminated_early`): invokes
/// the function with no records and `isFinalInvokeForWindow`, until it succeeds (Lambda
/// holds the shard until the final invocation succeeds), then forgets the window (or, ended
/// early, goes on with a fresh state). False when stopped.
async fn final_invoke(
    context: &ShardContext,
    stop: &mut watch::Receiver<bool>,
    terminated_early: bool,
) -> bool {
    let config = context.mapping.config();
    let Some(open) = context
        .mapping
        .progress()
        .windows
        .get(&context.shard.index)
        .cloned()
    else {
        return true;
    };
    let payload = Bytes::from(window::event(
        b"[]",
        &WindowFields {
            window: &open,
            window_s: config.tumbling_window_s.max(1),
            shard_id: &context.shard.id,
            stream_arn: &context.stream_arn,
            is_final: true,
            terminated_early,
        },
    ));
    let mut wait = RETRY_PAUSE;
    loop {
        let outcome = tokio::select! {
            biased;
            o = context.function.invoke(payload.clone()) => o,
            _ = stopped(stop) => return false,
        };
        context.mapping.stats.count(StatsEvent::Invocation);
        match outcome {
            Outcome::Response(_) => break,
            Outcome::Error(e) => {
                context.mapping.stats.count(StatsEvent::FunctionError);
                tracing::info!(shard = %context.shard.id, error = %e, "the final invocation of a window failed; retrying");
                context.mapping.progress().last_result = "PROBLEM: Function call failed".into();
                if pause(stop, wait).await {
                    return false;
                }
                wait = (wait * 2).min(MAX_RETRY_PAUSE);
            }
        }
    }
    {
        let mut progress = context.mapping.progress();
        if terminated_early {
            if let Some(w) = progress.windows.get_mut(&context.shard.index) {
                w.state = OpenWindow::new(w.start_ms).state;
            }
        } else {
            progress.windows.remove(&context.shard.index);
        }
    }
    context.mapping.checkpoint_behind();
    true
}

/// Gives up on `pending`'s records: reports it in LastProcessingResult and sends Lambda's
/// invocation record to the on-failure destination, if any.
async fn discard(context: &ShardContext, pending: &Pending, condition: Condition, why: &str) {
    let (Some(first), Some(last)) = (pending.items.first(), pending.items.last()) else {
        return;
    };
    context
        .mapping
        .stats
        .count(StatsEvent::Discarded(pending.items.len() as u64));
    let config = context.mapping.config();
    let mut message = format!(
        "PROBLEM: Function call failed; batch of {} records of {} (sequence numbers {} to {}) discarded {why}",
        pending.items.len(),
        context.shard.id,
        first.sequence_number,
        last.sequence_number
    );
    if let Some(destination) = &config.on_failure_destination {
        let request_id = runtime::format_uuid(random_bytes());
        let record = destination::invocation_record(&Discard {
            items: &pending.items,
            shard_id: &context.shard.id,
            stream_arn: &context.stream_arn,
            function_arn: &config.function_arn,
            condition,
            invoke_count: pending.invocations,
            function_error: pending.function_error,
            now_ms: context.broker.clock().now_ms(),
            request_id: &request_id,
        });
        match destination::write(&context.broker, destination, &context.shard.id, &record).await {
            Ok(_) => message.push_str(&format!(
                "; invocation record {request_id} written to {destination}"
            )),
            Err(e) => {
                tracing::error!(uuid = %config.uuid, error = %e, "cannot write an on-failure record");
                message.push_str(&format!("; {e}"));
            }
        }
    }
    tracing::warn!(uuid = %config.uuid, "{message}");
    context.mapping.progress().last_result = message;
}

fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b
}
