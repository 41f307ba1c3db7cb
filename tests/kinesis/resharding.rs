//! Resharding over time (issue 21, soak): closed shards are kept for their retention period,
//! so whatever each one costs while idle adds up with every reshard. The soak found two open
//! files per closed shard (its directory's `LOCK` and its sealed segment) that never went
//! away; a closed shard must cost no file descriptor, and its records must stay readable.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType};

use crate::common::*;

/// This process's open descriptors whose target lies under `dir` (the broker runs in this
/// process; other tests running in parallel have their own directories).
fn descriptors_under(dir: &Path) -> Vec<PathBuf> {
    let dir = fs::canonicalize(dir).unwrap();
    let mut v: Vec<PathBuf> = fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .collect();
    v.sort();
    v
}

/// The one stream's directory under `<data>/streams/`.
fn stream_dir(data: &Path) -> PathBuf {
    let streams = data.join("streams");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&streams)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one stream: {dirs:?}");
    dirs.pop().unwrap()
}

/// Descriptors of the broker that point into the directories of `shards`.
fn descriptors_of(data: &Path, shards: &BTreeSet<String>) -> Vec<PathBuf> {
    let stream = fs::canonicalize(stream_dir(data)).unwrap();
    descriptors_under(data)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(&stream)
                .ok()
                .and_then(|rest| rest.iter().next())
                .is_some_and(|shard| shards.contains(&*shard.to_string_lossy()))
        })
        .collect()
}

/// (open, closed) shard ids of the stream.
async fn shard_sets(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut open = BTreeSet::new();
    let mut closed = BTreeSet::new();
    for s in list_all_shards(client, name).await {
        let ended = s
            .sequence_number_range()
            .and_then(|r| r.ending_sequence_number())
            .is_some();
        if ended {
            closed.insert(s.shard_id().to_owned());
        } else {
            open.insert(s.shard_id().to_owned());
        }
    }
    (open, closed)
}

async fn put_round(client: &aws_sdk_kinesis::Client, name: &str, round: usize) -> Vec<String> {
    let values: Vec<String> = (0..40)
        .map(|i| format!("round-{round}-record-{i}"))
        .collect();
    let entries = values
        .iter()
        .map(|v| {
            PutRecordsRequestEntry::builder()
                .partition_key(v)
                .data(blob(v.as_bytes()))
                .build()
                .unwrap()
        })
        .collect();
    put_all(client, name, entries).await;
    values
}

/// Waits (bounded) until no descriptor points into a closed shard, and returns what is left.
async fn settle(data: &Path, closed: &BTreeSet<String>) -> Vec<PathBuf> {
    for _ in 0..MAX_POLLS {
        let left = descriptors_of(data, closed);
        if left.is_empty() {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    descriptors_of(data, closed)
}

async fn all_records(client: &aws_sdk_kinesis::Client, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for s in list_all_shards(client, name).await {
        for r in read_shard(client, name, s.shard_id()).await {
            seen.insert(String::from_utf8(data(&r).to_vec()).unwrap());
        }
    }
    seen
}

#[tokio::test]
async fn closed_shards_hold_file_descriptors_after_reshards() {
    let (client, handle, dir) = start_server().await;
    let name = "reshard-fds";
    create_stream(&client, name, 2).await;
    let mut written = BTreeSet::new();
    written.extend(put_round(&client, name, 0).await);

    // Open descriptors under the data directory after each reshard, by open-shard count.
    let mut by_open: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut closed_before = 0;
    for round in 1..=6 {
        let target = if round % 2 == 1 { 4 } else { 2 };
        client
            .update_shard_count()
            .stream_name(name)
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .unwrap_or_else(|e| panic!("UpdateShardCount to {target}: {}", describe_err(&e)));
        wait_active(&client, name).await;
        written.extend(put_round(&client, name, round).await);

        let (open, closed) = shard_sets(&client, name).await;
        assert_eq!(open.len(), target as usize);
        assert!(
            closed.len() > closed_before,
            "round {round} closed no shard"
        );
        closed_before = closed.len();
        // Read the closed shards (their sealed segments get mapped) before counting.
        for shard in &closed {
            read_shard(&client, name, shard).await;
        }
        let left = settle(dir.path(), &closed).await;
        assert!(
            left.is_empty(),
            "round {round}: closed shards hold descriptors: {left:?}"
        );
        by_open
            .entry(open.len())
            .or_default()
            .push(descriptors_under(dir.path()).len());
    }
    eprintln!("descriptors under the data directory, by open shards: {by_open:?}");
    // Flat: the same number of open shards costs the same descriptors, whatever the number
    // of closed shards (2 → 14 here).
    for (open, counts) in &by_open {
        assert!(
            counts.iter().all(|&c| c == counts[0]),
            "descriptors with {open} open shards grew: {counts:?}"
        );
    }
    // Every record is still there, closed shards' included (TRIM_HORIZON of each shard).
    assert_eq!(all_records(&client, name).await, written);

    // After a restart (recovery of sealed logs) too, and reading them opens nothing that stays.
    handle.shutdown().await.expect("clean shutdown");
    let handle = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(handle.local_addr());
    assert_eq!(all_records(&client, name).await, written);
    let (_, closed) = shard_sets(&client, name).await;
    let left = settle(dir.path(), &closed).await;
    assert!(
        left.is_empty(),
        "after a restart, closed shards hold descriptors: {left:?}"
    );
    handle.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn second_broker_opens_a_data_directory_whose_closed_shards_hold_no_lock() {
    // Closed shards give their directory locks back; the data directory's lock is what keeps
    // a second broker (process) from recovering, trimming or deleting them under the first.
    let (client, handle, dir) = start_server().await;
    let name = "two-brokers";
    create_stream(&client, name, 1).await;
    client
        .update_shard_count()
        .stream_name(name)
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    wait_active(&client, name).await;
    let config = kinesis_broker::Config::for_tests(dir.path());
    let second = tokio::task::spawn_blocking(move || {
        kinesis_broker::broker::Broker::open(&config).map(|_| ())
    })
    .await
    .unwrap();
    let err = second.expect_err("a second broker opened the same data directory");
    assert!(
        err.to_string()
            .contains("is in use by another broker process"),
        "{err}"
    );
    // The first broker is unaffected.
    put_round(&client, name, 0).await;
    handle.shutdown().await.expect("clean shutdown");
}
