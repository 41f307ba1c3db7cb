//! Resharding and capacity modes (issue 7), driven by the Rust SDK: SplitShard,
//! MergeShards, UpdateShardCount, UpdateStreamMode and their errors; closed parents and
//! their children; ListShards' ShardFilter; and the lineage test: producers write while the
//! stream is split, merged, scaled and switched between modes, across a restart, and a
//! consumer that reads parents before children sees every acknowledged record exactly
//! once, in order per partition key.
//!
//! Expected messages: kinesalite's tests (recorded against AWS: test/splitShard.js,
//! test/mergeShards.js, test/updateShardCount.js) and moto's tests, cited per case; where
//! nothing pins a message only the type is asserted.

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ScalingType, Shard, ShardFilter, ShardFilterType, ShardIteratorType,
    StreamMode, StreamModeDetails, StreamStatus,
};
use common::*;
use kinesis_broker::broker::Clock;

const HOUR_MS: i64 = 3_600_000;
const ACCOUNT: &str = "000000000000";

// ---- helpers ----------------------------------------------------------------------------

/// Every shard of a stream, from DescribeStream (one page: the tests stay under 100).
async fn describe_shards(client: &Client, name: &str) -> Vec<Shard> {
    let out = client
        .describe_stream()
        .stream_name(name)
        .limit(10000)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeStream {name}: {}", describe_err(&e)));
    let d = out.stream_description().expect("description");
    assert!(!d.has_more_shards(), "test streams fit one page");
    d.shards().to_vec()
}

fn ids(shards: &[Shard]) -> Vec<String> {
    shards.iter().map(|s| s.shard_id().to_owned()).collect()
}

fn range(s: &Shard) -> (u128, u128) {
    let r = s.hash_key_range().expect("HashKeyRange");
    (
        r.starting_hash_key().parse().unwrap(),
        r.ending_hash_key().parse().unwrap(),
    )
}

fn is_open(s: &Shard) -> bool {
    s.sequence_number_range()
        .and_then(|r| r.ending_sequence_number())
        .is_none()
}

fn open_ranges(shards: &[Shard]) -> Vec<(u128, u128)> {
    let mut r: Vec<_> = shards.iter().filter(|s| is_open(s)).map(range).collect();
    r.sort();
    r
}

/// Lineage holds together: the open shards cover the key space without gaps or overlap;
/// every child has one parent (split) or two adjacent ones (merge) whose ranges are
/// exactly covered by their children; every closed shard has children; a child's first
/// sequence number is above its parents' last.
fn assert_lineage(shards: &[Shard]) {
    let by_id: HashMap<&str, &Shard> = shards.iter().map(|s| (s.shard_id(), s)).collect();
    let open = open_ranges(shards);
    assert_eq!(open.first().map(|r| r.0), Some(0), "open shards start at 0");
    assert_eq!(
        open.last().map(|r| r.1),
        Some(u128::MAX),
        "open shards end at 2^128-1"
    );
    for w in open.windows(2) {
        assert_eq!(w[0].1 + 1, w[1].0, "open shards are contiguous: {open:?}");
    }
    let mut children: HashMap<&str, Vec<&Shard>> = HashMap::new();
    for s in shards {
        let parents: Vec<&str> = s
            .parent_shard_id()
            .into_iter()
            .chain(s.adjacent_parent_shard_id())
            .collect();
        for p in &parents {
            let parent = by_id
                .get(p)
                .unwrap_or_else(|| panic!("parent {p} of {} listed", s.shard_id()));
            assert!(!is_open(parent), "parent {p} is closed");
            let end = seq(parent
                .sequence_number_range()
                .unwrap()
                .ending_sequence_number()
                .unwrap());
            let start = seq(s
                .sequence_number_range()
                .unwrap()
                .starting_sequence_number());
            assert!(
                start > end,
                "child {} starts after parent {p} ends",
                s.shard_id()
            );
            children.entry(p).or_default().push(s);
        }
        if parents.len() == 2 {
            let (a, b) = (range(by_id[parents[0]]), range(by_id[parents[1]]));
            assert!(
                a.1 + 1 == b.0 || b.1 + 1 == a.0,
                "merged parents are adjacent"
            );
            assert_eq!(
                range(s),
                (a.0.min(b.0), a.1.max(b.1)),
                "merge child covers both parents"
            );
        }
    }
    for s in shards.iter().filter(|s| !is_open(s)) {
        let kids = children
            .get(s.shard_id())
            .unwrap_or_else(|| panic!("closed {} has children", s.shard_id()));
        let mut covered: Vec<(u128, u128)> = kids.iter().map(|k| range(k)).collect();
        covered.sort();
        let (lo, hi) = range(s);
        if kids.len() == 1 {
            let k = range(kids[0]);
            assert!(
                k.0 <= lo && hi <= k.1,
                "merge child covers parent {}",
                s.shard_id()
            );
        } else {
            assert_eq!(kids.len(), 2, "a split has two children");
            assert_eq!(covered[0].0, lo);
            assert_eq!(covered[0].1 + 1, covered[1].0);
            assert_eq!(
                covered[1].1,
                hi,
                "split children cover {} exactly",
                s.shard_id()
            );
        }
    }
}

async fn summary_status(client: &Client, name: &str) -> StreamStatus {
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_status()
        .clone()
}

/// Reads a shard from TRIM_HORIZON to its end: for a closed shard, until GetRecords gives
/// no NextShardIterator (returning that last answer's ChildShards); for an open one, to
/// the tip. Bounded by MAX_POLLS calls.
async fn read_whole_shard(
    client: &Client,
    stream: &str,
    shard: &str,
    closed: bool,
) -> (
    Vec<aws_sdk_kinesis::types::Record>,
    Vec<aws_sdk_kinesis::types::ChildShard>,
) {
    let mut it = iterator(client, stream, shard, ShardIteratorType::TrimHorizon).await;
    let mut records = Vec::new();
    for _ in 0..MAX_POLLS {
        let out = match client.get_records().shard_iterator(&it).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("ProvisionedThroughputExceededException") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => panic!("GetRecords {shard}: {}", describe_err(&e)),
        };
        let got = out.records().len();
        records.extend(out.records().iter().cloned());
        match out.next_shard_iterator() {
            None => {
                assert!(closed, "open shard {shard} ended its iterator");
                return (records, out.child_shards().to_vec());
            }
            Some(next) => {
                assert!(
                    out.child_shards().is_empty(),
                    "ChildShards only at the end of a closed shard ({shard})"
                );
                it = next.to_owned();
            }
        }
        if !closed && got == 0 && out.millis_behind_latest() == Some(0) {
            return (records, Vec::new());
        }
    }
    panic!("{shard} not read to its end within {MAX_POLLS} calls");
}

async fn put_one(client: &Client, stream: &str, key: &str, data: &str) -> (String, String) {
    let out = client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(blob(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecord: {}", describe_err(&e)));
    (out.shard_id().to_owned(), out.sequence_number().to_owned())
}

async fn put_hash(client: &Client, stream: &str, hash: u128, data: &str) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("k")
        .explicit_hash_key(hash.to_string())
        .data(blob(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecord: {}", describe_err(&e)))
        .shard_id()
        .to_owned()
}

fn uniform(
    client: &Client,
    name: &str,
    target: i32,
) -> aws_sdk_kinesis::operation::update_shard_count::builders::UpdateShardCountFluentBuilder {
    client
        .update_shard_count()
        .stream_name(name)
        .target_shard_count(target)
        .scaling_type(ScalingType::UniformScaling)
}

// ---- SplitShard ---------------------------------------------------------------------------

#[tokio::test]
async fn split_closes_the_parent_and_children_take_over_its_range() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "split", 1).await;
    let (_, before_seq) = put_one(&client, "split", "a", "before").await;
    let mid: u128 = 1 << 127;
    client
        .split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(mid.to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_active(&client, "split").await;
    let shards = describe_shards(&client, "split").await;
    assert_eq!(ids(&shards), vec![shard_id(0), shard_id(1), shard_id(2)]);
    assert!(!is_open(&shards[0]), "the parent is closed");
    assert_eq!(range(&shards[1]), (0, mid - 1));
    assert_eq!(range(&shards[2]), (mid, u128::MAX));
    for child in &shards[1..] {
        assert_eq!(child.parent_shard_id(), Some(shard_id(0).as_str()));
        assert_eq!(child.adjacent_parent_shard_id(), None);
    }
    let ending = seq(shards[0]
        .sequence_number_range()
        .unwrap()
        .ending_sequence_number()
        .unwrap());
    assert!(
        ending >= seq(&before_seq),
        "the parent's end covers its last record"
    );
    assert_lineage(&shards);

    // New records go to the children, by hash key.
    assert_eq!(put_hash(&client, "split", 0, "low").await, shard_id(1));
    assert_eq!(
        put_hash(&client, "split", mid - 1, "low2").await,
        shard_id(1)
    );
    assert_eq!(put_hash(&client, "split", mid, "high").await, shard_id(2));
    assert_eq!(
        put_hash(&client, "split", u128::MAX, "high2").await,
        shard_id(2)
    );

    // The parent stays readable to its end, which names the children.
    let (records, children) = read_whole_shard(&client, "split", &shard_id(0), true).await;
    assert_eq!(records.len(), 1);
    assert_eq!(data(&records[0]), b"before");
    let mut kids: Vec<(String, Vec<String>, (String, String))> = children
        .iter()
        .map(|c| {
            let r = c.hash_key_range().unwrap();
            (
                c.shard_id().to_owned(),
                c.parent_shards().to_vec(),
                (
                    r.starting_hash_key().to_owned(),
                    r.ending_hash_key().to_owned(),
                ),
            )
        })
        .collect();
    kids.sort();
    assert_eq!(
        kids,
        vec![
            (
                shard_id(1),
                vec![shard_id(0)],
                ("0".into(), (mid - 1).to_string())
            ),
            (
                shard_id(2),
                vec![shard_id(0)],
                (mid.to_string(), u128::MAX.to_string())
            ),
        ]
    );
    // The children's records have larger sequence numbers than the parent's.
    for i in [1, 2] {
        let (recs, _) = read_whole_shard(&client, "split", &shard_id(i), false).await;
        assert_eq!(recs.len(), 2);
        for r in recs {
            assert!(seq(r.sequence_number()) > seq(&before_seq));
        }
    }
    // A closed shard takes no writes: nothing routes there any more, and it is still
    // described (its data has not expired).
    let summary = client
        .describe_stream_summary()
        .stream_name("split")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2
    );
    server.shutdown().await.unwrap();
}

// ---- MergeShards --------------------------------------------------------------------------

#[tokio::test]
async fn merge_closes_both_parents_and_the_child_names_them() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "merge", 3).await;
    let ranges = expected_ranges(3);
    put_hash(&client, "merge", ranges[0].0, "p0").await;
    put_hash(&client, "merge", ranges[1].0, "p1").await;
    client
        .merge_shards()
        .stream_name("merge")
        .shard_to_merge(shard_id(0))
        .adjacent_shard_to_merge(shard_id(1))
        .send()
        .await
        .expect("MergeShards");
    wait_active(&client, "merge").await;
    let shards = describe_shards(&client, "merge").await;
    assert_eq!(ids(&shards), (0..4).map(shard_id).collect::<Vec<_>>());
    assert!(!is_open(&shards[0]) && !is_open(&shards[1]) && is_open(&shards[2]));
    // kinesalite test/mergeShards.js 'should work with standard merge'.
    assert_eq!(shards[3].parent_shard_id(), Some(shard_id(0).as_str()));
    assert_eq!(
        shards[3].adjacent_parent_shard_id(),
        Some(shard_id(1).as_str())
    );
    assert_eq!(range(&shards[3]), (ranges[0].0, ranges[1].1));
    assert_lineage(&shards);
    assert_eq!(
        put_hash(&client, "merge", ranges[1].1, "child").await,
        shard_id(3)
    );

    for parent in [0, 1] {
        let (records, children) = read_whole_shard(&client, "merge", &shard_id(parent), true).await;
        assert_eq!(records.len(), 1);
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].shard_id(), shard_id(3));
        assert_eq!(children[0].parent_shards(), &[shard_id(0), shard_id(1)]);
    }
    server.shutdown().await.unwrap();
}

// ---- UpdateShardCount ---------------------------------------------------------------------

#[tokio::test]
async fn update_shard_count_reaches_a_uniform_layout_with_consistent_lineage() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "scale", 2).await;
    // kinesalite test/updateShardCount.js: 2 → 4 closes 2 shards (6 in all); 4 → 2 closes 4.
    let out = uniform(&client, "scale", 4).send().await.expect("2 → 4");
    assert_eq!(
        (
            out.stream_name(),
            out.current_shard_count(),
            out.target_shard_count()
        ),
        (Some("scale"), Some(2), Some(4))
    );
    wait_active(&client, "scale").await;
    let shards = describe_shards(&client, "scale").await;
    assert_eq!(shards.len(), 6);
    assert_eq!(shards.iter().filter(|s| !is_open(s)).count(), 2);
    assert_eq!(open_ranges(&shards), expected_ranges(4));
    assert_lineage(&shards);

    let (client2, server2, _dir2) = start_server().await;
    create_stream(&client2, "down", 4).await;
    uniform(&client2, "down", 2).send().await.expect("4 → 2");
    wait_active(&client2, "down").await;
    let shards = describe_shards(&client2, "down").await;
    assert_eq!(shards.len(), 6);
    assert_eq!(shards.iter().filter(|s| !is_open(s)).count(), 4);
    assert_eq!(open_ranges(&shards), expected_ranges(2));
    assert_lineage(&shards);
    server2.shutdown().await.unwrap();

    // 4 → 8 → 4 → 3 → 6 → 5 → 7: every step at most double / at least half.
    for target in [8, 4, 3, 6, 5, 7] {
        let current = open_ranges(&describe_shards(&client, "scale").await).len() as i32;
        let out = uniform(&client, "scale", target)
            .send()
            .await
            .unwrap_or_else(|e| panic!("→ {target}: {}", describe_err(&e)));
        assert_eq!(out.current_shard_count(), Some(current));
        assert_eq!(out.target_shard_count(), Some(target));
        wait_active(&client, "scale").await;
        let shards = describe_shards(&client, "scale").await;
        assert_eq!(
            open_ranges(&shards),
            expected_ranges(target as u32),
            "uniform {target}"
        );
        assert_lineage(&shards);
        let summary = client
            .describe_stream_summary()
            .stream_name("scale")
            .send()
            .await
            .unwrap();
        assert_eq!(
            summary
                .stream_description_summary()
                .unwrap()
                .open_shard_count(),
            target
        );
    }
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.open_shard_count(), 7, "closed shards do not count");
    server.shutdown().await.unwrap();
}

// ---- UpdateStreamMode ---------------------------------------------------------------------

#[tokio::test]
async fn update_stream_mode_switches_and_is_reported() {
    let (client, server, _dir) = start_server().await;
    create_stream(&client, "modal", 2).await;
    let arn = stream_arn("modal");
    let mode = |m: StreamMode| StreamModeDetails::builder().stream_mode(m).build().unwrap();
    let summary_mode = |client: Client| async move {
        client
            .describe_stream_summary()
            .stream_name("modal")
            .send()
            .await
            .unwrap()
            .stream_description_summary()
            .unwrap()
            .stream_mode_details()
            .map(|d| d.stream_mode().clone())
    };
    assert_eq!(
        summary_mode(client.clone()).await,
        Some(StreamMode::Provisioned)
    );
    client
        .update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(mode(StreamMode::OnDemand))
        .send()
        .await
        .expect("→ ON_DEMAND");
    wait_active(&client, "modal").await;
    assert_eq!(
        summary_mode(client.clone()).await,
        Some(StreamMode::OnDemand)
    );
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.on_demand_stream_count(), 1);
    let listed = client.list_streams().send().await.unwrap();
    let s = &listed.stream_summaries()[0];
    assert_eq!(
        s.stream_mode_details().map(|d| d.stream_mode().clone()),
        Some(StreamMode::OnDemand)
    );
    // Records still flow.
    put_one(&client, "modal", "k", "on-demand").await;

    client
        .update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(mode(StreamMode::Provisioned))
        .send()
        .await
        .expect("→ PROVISIONED");
    wait_active(&client, "modal").await;
    assert_eq!(
        summary_mode(client.clone()).await,
        Some(StreamMode::Provisioned)
    );
    assert_eq!(
        client
            .describe_limits()
            .send()
            .await
            .unwrap()
            .on_demand_stream_count(),
        0
    );
    server.shutdown().await.unwrap();
}

// ---- errors ---------------------------------------------------------------------------------

fn could_not_find(shard: &str, stream: &str) -> Option<String> {
    Some(format!(
        "Could not find shard {shard} in stream {stream} under account {ACCOUNT}."
    ))
}

fn bad_split(key: &str, shard: usize, start: u128, end: u128) -> Option<String> {
    Some(format!(
        "NewStartingHashKey {key} used in SplitShard() on shard {} in stream s under account {ACCOUNT} is not both greater than one plus the shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}.",
        shard_id(shard)
    ))
}

#[tokio::test]
async fn resharding_errors_in_aws_words() {
    let (c, server, _dir) = start_server().await;
    create_stream(&c, "s", 3).await;
    let r = expected_ranges(3);
    let arn = stream_arn("s");
    // Shard 0 is split below, so it is closed for the cases that need one.
    c.split_shard()
        .stream_name("s")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((r[0].1 / 2).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&c, "s").await;
    // A stream of 4 open shards of its own for UpdateShardCount's bounds.
    create_stream(&c, "u", 4).await;
    // Now: 0 closed, 1 and 2 open (original ranges), 3 and 4 the halves of 0.
    let rows = vec![
        // kinesalite test/splitShard.js.
        Row {
            case: "SplitShard unknown stream, parseable shard id",
            got: outcome(c.split_shard().stream_name("nope").shard_to_split("2147483647").new_starting_hash_key("0").send().await),
            code: "ResourceNotFoundException",
            message: Some(format!("Stream nope under account {ACCOUNT} not found.")),
        },
        Row {
            case: "SplitShard unknown stream, shard id that does not parse",
            got: outcome(c.split_shard().stream_name("nope").shard_to_split("ABKLFD8").new_starting_hash_key("0").send().await),
            code: "ResourceNotFoundException",
            message: could_not_find("ABKLFD8", "nope"),
        },
        Row {
            case: "SplitShard shard id too big",
            got: outcome(c.split_shard().stream_name("s").shard_to_split("shardId-002147483648").new_starting_hash_key("0").send().await),
            code: "ResourceNotFoundException",
            message: could_not_find("shardId-002147483648", "s"),
        },
        Row {
            case: "SplitShard shard that does not exist (shardId-9)",
            got: outcome(c.split_shard().stream_name("s").shard_to_split("shardId-9").new_starting_hash_key("0").send().await),
            code: "ResourceNotFoundException",
            message: could_not_find(&shard_id(9), "s"),
        },
        Row {
            case: "SplitShard hash key = StartingHashKey + 1",
            got: outcome(c.split_shard().stream_name("s").shard_to_split("shard-1").new_starting_hash_key((r[1].0 + 1).to_string()).send().await),
            code: "InvalidArgumentException",
            message: bad_split(&(r[1].0 + 1).to_string(), 1, r[1].0, r[1].1),
        },
        Row {
            case: "SplitShard hash key = EndingHashKey",
            got: outcome(c.split_shard().stream_name("s").shard_to_split("shard-1").new_starting_hash_key(r[1].1.to_string()).send().await),
            code: "InvalidArgumentException",
            message: bad_split(&r[1].1.to_string(), 1, r[1].0, r[1].1),
        },
        Row {
            case: "SplitShard hash key of another shard",
            got: outcome(c.split_shard().stream_name("s").shard_to_split(shard_id(1)).new_starting_hash_key("5").send().await),
            code: "InvalidArgumentException",
            message: bad_split("5", 1, r[1].0, r[1].1),
        },
        // kinesalite 'should return InvalidArgumentException for hash much too big': a key
        // above 2^128-1 (39 digits, so it passes the model's pattern) gets the same message.
        Row {
            case: "SplitShard hash key above 2^128-1",
            got: outcome(c.split_shard().stream_name("s").shard_to_split("shard-2").new_starting_hash_key("999999999999999999999999999999999999999").send().await),
            code: "InvalidArgumentException",
            message: bad_split("999999999999999999999999999999999999999", 2, r[2].0, r[2].1),
        },
        // moto tests/test_kinesis/test_kinesis.py (test_split_shard_that_was_split_before).
        Row {
            case: "SplitShard a closed shard",
            got: outcome(c.split_shard().stream_name("s").shard_to_split(shard_id(0)).new_starting_hash_key("12345").send().await),
            code: "InvalidArgumentException",
            message: Some(format!("Shard {} in stream s under account {ACCOUNT} has already been merged or split, and thus is not eligible for merging or splitting.", shard_id(0))),
        },
        // kinesalite test/mergeShards.js.
        Row {
            case: "MergeShards unknown stream",
            got: outcome(c.merge_shards().stream_name("nope").shard_to_merge("2147483647").adjacent_shard_to_merge("x-0").send().await),
            code: "ResourceNotFoundException",
            message: Some(format!("Stream nope under account {ACCOUNT} not found.")),
        },
        Row {
            case: "MergeShards adjacent shard id that does not parse",
            got: outcome(c.merge_shards().stream_name("nope").shard_to_merge("x-0").adjacent_shard_to_merge("2.14E4").send().await),
            code: "ResourceNotFoundException",
            message: could_not_find("2.14E4", "nope"),
        },
        Row {
            case: "MergeShards shard that does not exist",
            got: outcome(c.merge_shards().stream_name("s").shard_to_merge("shardId-9").adjacent_shard_to_merge("x-1").send().await),
            code: "ResourceNotFoundException",
            message: could_not_find(&shard_id(9), "s"),
        },
        Row {
            case: "MergeShards adjacent shard that does not exist",
            got: outcome(c.merge_shards().stream_name("s").shard_to_merge("x-1").adjacent_shard_to_merge("shardId-9").send().await),
            code: "ResourceNotFoundException",
            message: could_not_find(&shard_id(9), "s"),
        },
        Row {
            case: "MergeShards shards that are not adjacent (3 and 2)",
            got: outcome(c.merge_shards().stream_name("s").shard_to_merge(shard_id(3)).adjacent_shard_to_merge(shard_id(2)).send().await),
            code: "InvalidArgumentException",
            message: Some(format!("Shards {} and {} in stream s under account {ACCOUNT} are not an adjacent pair of shards eligible for merging", shard_id(3), shard_id(2))),
        },
        // kinesalite 'should return InvalidArgumentException if adjacency is inverted':
        // ShardToMerge must be the lower range.
        Row {
            case: "MergeShards with the adjacency inverted (2 then 1)",
            got: outcome(c.merge_shards().stream_name("s").shard_to_merge(shard_id(2)).adjacent_shard_to_merge(shard_id(1)).send().await),
            code: "InvalidArgumentException",
            message: Some(format!("Shards {} and {} in stream s under account {ACCOUNT} are not an adjacent pair of shards eligible for merging", shard_id(2), shard_id(1))),
        },
        Row {
            case: "MergeShards a closed shard",
            got: outcome(c.merge_shards().stream_name("s").shard_to_merge(shard_id(0)).adjacent_shard_to_merge(shard_id(1)).send().await),
            code: "InvalidArgumentException",
            message: Some(format!("Shard {} in stream s under account {ACCOUNT} has already been merged or split, and thus is not eligible for merging or splitting.", shard_id(0))),
        },
        // kinesalite test/updateShardCount.js (LimitExceededException, not InvalidArgument).
        Row {
            case: "UpdateShardCount unknown stream",
            got: outcome(uniform(&c, "nope", 2).send().await),
            code: "ResourceNotFoundException",
            message: Some(format!("Stream nope under account {ACCOUNT} not found.")),
        },
        Row {
            case: "UpdateShardCount over double (4 open → 9)",
            got: outcome(uniform(&c, "u", 9).send().await),
            code: "LimitExceededException",
            message: Some("UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: 4, Target shard count: 9".into()),
        },
        Row {
            case: "UpdateShardCount below half (4 open → 1)",
            got: outcome(uniform(&c, "u", 1).send().await),
            code: "LimitExceededException",
            message: Some("UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: 4, Target shard count: 1".into()),
        },
        Row {
            case: "UpdateStreamMode unknown stream",
            got: outcome(c.update_stream_mode().stream_arn(stream_arn("nope")).stream_mode_details(StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build().unwrap()).send().await),
            code: "ResourceNotFoundException",
            message: Some(format!("Stream nope under account {ACCOUNT} not found.")),
        },
        // Switching to the mode the stream is in: refused (DOC UpdateStreamMode); wording
        // NOT PINNED.
        Row {
            case: "UpdateStreamMode to the current mode",
            got: outcome(c.update_stream_mode().stream_arn(&arn).stream_mode_details(StreamModeDetails::builder().stream_mode(StreamMode::Provisioned).build().unwrap()).send().await),
            code: "InvalidArgumentException",
            message: None,
        },
    ];
    check_rows(rows);
    // Nothing of the refused calls changed the stream.
    let shards = describe_shards(&c, "s").await;
    assert_eq!(shards.len(), 5);
    assert_lineage(&shards);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn update_shard_count_beyond_the_account_shard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.segment_bytes = kinesis_broker::config::MIN_SEGMENT_BYTES;
    })
    .await;
    let c = client_for(server.local_addr());
    create_stream(&c, "big", 300).await;
    // kinesalite test/updateShardCount.js 'should return LimitExceededException if
    // increasing over shards limit' (limit 500).
    check_rows(vec![Row {
        case: "UpdateShardCount 300 → 502",
        got: outcome(uniform(&c, "big", 502).send().await),
        code: "LimitExceededException",
        message: Some("Target shard count or number of open shards cannot be greater than 500. Current open shard count: 300, Target shard count: 502".into()),
    }]);
    // kinesalite test/splitShard.js 'should return LimitExceededException if splitting
    // over limit': with 500 open shards one more split is refused.
    create_stream(&c, "rest", 200).await;
    check_rows(vec![Row {
        case: "SplitShard with 500 open",
        got: outcome(
            c.split_shard()
                .stream_name("rest")
                .shard_to_split("shard-0")
                .new_starting_hash_key("2")
                .send()
                .await,
        ),
        code: "LimitExceededException",
        message: Some(format!(
            "This request would exceed the shard limit for the account {ACCOUNT} in us-east-1. Current shard count for the account: 500. Limit: 500. Number of additional shards that would have resulted from this request: 1. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits."
        )),
    }]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reshards_are_refused_while_the_stream_is_updating() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.update_stream_delay = kinesis_broker::config::MAX_LIFECYCLE_DELAY;
    })
    .await;
    let c = client_for(server.local_addr());
    create_stream(&c, "busy", 2).await;
    c.split_shard()
        .stream_name("busy")
        .shard_to_split("shard-0")
        .new_starting_hash_key("2")
        .send()
        .await
        .expect("first split");
    assert_eq!(summary_status(&c, "busy").await, StreamStatus::Updating);
    // kinesalite test/splitShard.js and mergeShards.js ('not ACTIVE, instead in state UPDATING').
    let updating = Some(format!(
        "Stream busy under account {ACCOUNT} not ACTIVE, instead in state UPDATING"
    ));
    check_rows(vec![
        Row {
            case: "SplitShard while UPDATING",
            got: outcome(
                c.split_shard()
                    .stream_name("busy")
                    .shard_to_split("shard-1")
                    .new_starting_hash_key((u128::MAX - 5).to_string())
                    .send()
                    .await,
            ),
            code: "ResourceInUseException",
            message: updating.clone(),
        },
        Row {
            case: "MergeShards while UPDATING",
            got: outcome(
                c.merge_shards()
                    .stream_name("busy")
                    .shard_to_merge("shard-2")
                    .adjacent_shard_to_merge("shard-3")
                    .send()
                    .await,
            ),
            code: "ResourceInUseException",
            message: updating.clone(),
        },
        Row {
            case: "UpdateShardCount while UPDATING",
            got: outcome(uniform(&c, "busy", 4).send().await),
            code: "ResourceInUseException",
            message: updating.clone(),
        },
        Row {
            case: "UpdateStreamMode while UPDATING",
            got: outcome(
                c.update_stream_mode()
                    .stream_arn(stream_arn("busy"))
                    .stream_mode_details(
                        StreamModeDetails::builder()
                            .stream_mode(StreamMode::OnDemand)
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await,
            ),
            code: "ResourceInUseException",
            message: updating.clone(),
        },
    ]);
    // Writes still succeed while UPDATING (kinesalite test/splitShard.js puts a record then).
    put_one(&c, "busy", "k", "while updating").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn update_shard_count_is_refused_on_an_on_demand_stream() {
    let (c, server, _dir) = start_server().await;
    c.create_stream()
        .stream_name("od")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_active(&c, "od").await;
    // DOC UpdateShardCount: "This API is only supported for the data streams with the
    // provisioned capacity mode." The error's type and wording are NOT PINNED; it must be
    // a client error, and the layout must not change.
    let r = uniform(&c, "od", 8).send().await;
    let (code, msg, status) = outcome(r);
    assert!(
        status == 400 && code != "success",
        "UpdateShardCount on ON_DEMAND: HTTP {status} {code}: {msg}"
    );
    assert_eq!(describe_shards(&c, "od").await.len(), 4);
    server.shutdown().await.unwrap();
}

// ---- ListShards ShardFilter ---------------------------------------------------------------

async fn filtered(client: &Client, name: &str, filter: ShardFilter) -> Vec<String> {
    let out = client
        .list_shards()
        .stream_name(name)
        .shard_filter(filter)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListShards: {}", describe_err(&e)));
    assert!(out.next_token().is_none());
    ids(out.shards())
}

fn filter(t: ShardFilterType) -> aws_sdk_kinesis::types::builders::ShardFilterBuilder {
    ShardFilter::builder().r#type(t)
}

#[tokio::test]
async fn list_shards_filters_and_closed_shards_until_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let server = ClockServer::start(dir.path(), Clock::system(), |_| {}).await;
    let c = server.client.clone();
    create_stream(&c, "f", 2).await;
    let t_created = server.clock.now_ms();
    server.clock.advance_ms(HOUR_MS).unwrap();
    let t_before_split = server.clock.now_ms();
    server.clock.advance_ms(HOUR_MS).unwrap();
    c.split_shard()
        .stream_name("f")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 100).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&c, "f").await;
    server.clock.advance_ms(HOUR_MS).unwrap();
    let t_after_split = server.clock.now_ms();
    let at = |ms: i64| DateTime::from_millis(ms);
    let all = vec![shard_id(0), shard_id(1), shard_id(2), shard_id(3)];
    let open = vec![shard_id(1), shard_id(2), shard_id(3)];

    // DOC ListShards, ShardFilter: AT_LATEST = only the open shards.
    assert_eq!(
        filtered(&c, "f", filter(ShardFilterType::AtLatest).build().unwrap()).await,
        open
    );
    // AFTER_SHARD_ID = the shards after the given id.
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::AfterShardId)
                .shard_id(shard_id(1))
                .build()
                .unwrap()
        )
        .await,
        vec![shard_id(2), shard_id(3)]
    );
    // FROM_TRIM_HORIZON = every shard within the retention period.
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::FromTrimHorizon).build().unwrap()
        )
        .await,
        all
    );
    // AT_TRIM_HORIZON = the shards open at the trim horizon: nothing has expired, so the
    // trim horizon is the stream's start and those are the shards it was created with (the
    // KCL lists its root shards this way).
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::AtTrimHorizon).build().unwrap()
        )
        .await,
        vec![shard_id(0), shard_id(1)]
    );
    // AT_TIMESTAMP = shards open at that time; FROM_TIMESTAMP = those and every later one.
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::AtTimestamp)
                .timestamp(at(t_before_split))
                .build()
                .unwrap()
        )
        .await,
        vec![shard_id(0), shard_id(1)]
    );
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::AtTimestamp)
                .timestamp(at(t_after_split))
                .build()
                .unwrap()
        )
        .await,
        open
    );
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::FromTimestamp)
                .timestamp(at(t_before_split))
                .build()
                .unwrap()
        )
        .await,
        all
    );
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::FromTimestamp)
                .timestamp(at(t_after_split))
                .build()
                .unwrap()
        )
        .await,
        open
    );
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::AtTimestamp)
                .timestamp(at(t_created))
                .build()
                .unwrap()
        )
        .await,
        vec![shard_id(0), shard_id(1)]
    );
    // Filters that lack their argument (wording NOT PINNED).
    let no_id = c
        .list_shards()
        .stream_name("f")
        .shard_filter(filter(ShardFilterType::AfterShardId).build().unwrap())
        .send()
        .await;
    assert_eq!(code_of(&no_id), "InvalidArgumentException");
    let no_ts = c
        .list_shards()
        .stream_name("f")
        .shard_filter(filter(ShardFilterType::AtTimestamp).build().unwrap())
        .send()
        .await;
    assert_eq!(code_of(&no_ts), "InvalidArgumentException");

    // Past the retention period the closed shard is no longer listed or described.
    server.clock.advance_ms(25 * HOUR_MS).unwrap();
    assert_eq!(ids(&list_all_shards(&c, "f").await), open);
    assert_eq!(ids(&describe_shards(&c, "f").await), open);
    assert_eq!(
        filtered(
            &c,
            "f",
            filter(ShardFilterType::FromTrimHorizon).build().unwrap()
        )
        .await,
        open
    );
    server.stop().await;
}

// ---- the lineage test -------------------------------------------------------------------

/// A tiny deterministic PRNG (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Every acknowledged record: key → [(counter, shard, sequence number)] in send order.
type Acks = HashMap<String, Vec<(u64, String, String)>>;

const KEYS_PER_PRODUCER: usize = 40;
const BATCH: usize = 10;

#[allow(
    clippy::too_many_arguments,
    reason = "one producer's whole configuration, spawned once"
)]
/// Writes batches of records with distinct random keys (of this producer's own key set)
/// until `stop`, resending throttled entries before the next batch, so each key's records
/// are acknowledged in counter order.
async fn produce(
    client: Client,
    stream: String,
    producer: usize,
    seed: u64,
    mut counters: Vec<u64>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    max_records: usize,
) -> (Acks, Vec<u64>) {
    let mut rng = Rng(seed | 1);
    let mut acks: Acks = HashMap::new();
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) && sent < max_records {
        let mut keys: Vec<usize> = Vec::new();
        while keys.len() < BATCH {
            let k = (rng.next() % KEYS_PER_PRODUCER as u64) as usize;
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let entries: Vec<PutRecordsRequestEntry> = keys
            .iter()
            .map(|&k| {
                let key = format!("p{producer}-k{k}");
                PutRecordsRequestEntry::builder()
                    .partition_key(&key)
                    .data(blob(format!("{key}|{}", counters[k])))
                    .build()
                    .unwrap()
            })
            .collect();
        let results = put_all(&client, &stream, entries).await;
        for (&k, (shard, seqno)) in keys.iter().zip(results) {
            acks.entry(format!("p{producer}-k{k}"))
                .or_default()
                .push((counters[k], shard, seqno));
            counters[k] += 1;
        }
        sent += BATCH;
        acked.fetch_add(BATCH, Ordering::Relaxed);
    }
    (acks, counters)
}

const PRODUCERS: usize = 4;

/// Runs the producers while `reshard` runs; stops them once it is done and a last batch of
/// records has gone in after it. Returns what was acknowledged and the next counters.
async fn phase<F, Fut>(
    client: &Client,
    stream: &str,
    seed: u64,
    counters: Vec<Vec<u64>>,
    reshard: F,
) -> (Acks, Vec<Vec<u64>>)
where
    F: FnOnce(Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (p, c) in counters.into_iter().enumerate() {
        tasks.push(tokio::spawn(produce(
            client.clone(),
            stream.to_owned(),
            p,
            seed.wrapping_add(p as u64 * 7919),
            c,
            stop.clone(),
            acked.clone(),
            // Bound on records per producer per phase, whatever happens.
            2000,
        )));
    }
    reshard(acked.clone()).await;
    let target = acked.load(Ordering::Relaxed) + 100;
    wait_for(&acked, target).await;
    stop.store(true, Ordering::Relaxed);
    let mut acks: Acks = HashMap::new();
    let mut next = Vec::new();
    for t in tasks {
        let (a, c) = t.await.expect("producer");
        for (k, v) in a {
            acks.entry(k).or_default().extend(v);
        }
        next.push(c);
    }
    (acks, next)
}

/// Waits (bounded) until at least `n` records have been acknowledged.
async fn wait_for(acked: &AtomicUsize, n: usize) {
    for _ in 0..3000 {
        if acked.load(Ordering::Relaxed) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "producers stalled at {} records (waiting for {n})",
        acked.load(Ordering::Relaxed)
    );
}

async fn step(client: &Client, stream: &str, what: &str, acked: &AtomicUsize, after: usize) {
    wait_for(acked, after).await;
    wait_active(client, stream).await;
    let _ = what;
}

/// Reads a stream the way the KCL does: a shard only after its parents are read to their
/// end. Returns every record in that order with the shard it came from.
async fn lineage_read(client: &Client, stream: &str) -> Vec<(String, String, String)> {
    let shards = describe_shards(client, stream).await;
    assert_lineage(&shards);
    let listed: HashSet<String> = ids(&shards).into_iter().collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let mut last_seq: HashMap<String, Seq> = HashMap::new();
    while done.len() < shards.len() {
        let ready: Vec<&Shard> = shards
            .iter()
            .filter(|s| !done.contains(s.shard_id()))
            .filter(|s| {
                s.parent_shard_id()
                    .into_iter()
                    .chain(s.adjacent_parent_shard_id())
                    .all(|p| done.contains(p) || !listed.contains(p))
            })
            .collect();
        assert!(
            !ready.is_empty(),
            "lineage has a cycle or a dangling parent"
        );
        for s in ready {
            let closed = !is_open(s);
            let (records, children) = read_whole_shard(client, stream, s.shard_id(), closed).await;
            if closed {
                let mut got: Vec<String> =
                    children.iter().map(|c| c.shard_id().to_owned()).collect();
                got.sort();
                let mut want: Vec<String> = shards
                    .iter()
                    .filter(|c| {
                        c.parent_shard_id() == Some(s.shard_id())
                            || c.adjacent_parent_shard_id() == Some(s.shard_id())
                    })
                    .map(|c| c.shard_id().to_owned())
                    .collect();
                want.sort();
                assert_eq!(got, want, "ChildShards at the end of {}", s.shard_id());
            }
            let floor = s
                .parent_shard_id()
                .into_iter()
                .chain(s.adjacent_parent_shard_id())
                .filter_map(|p| last_seq.get(p).cloned())
                .max();
            let mut prev = floor;
            for r in &records {
                let n = seq(r.sequence_number());
                assert!(
                    prev.as_ref().is_none_or(|p| &n > p),
                    "sequence numbers increase along lineage in {}",
                    s.shard_id()
                );
                prev = Some(n);
                out.push((
                    s.shard_id().to_owned(),
                    r.sequence_number().to_owned(),
                    String::from_utf8(data(r).to_vec()).expect("utf-8 data"),
                ));
            }
            if let Some(prev) = prev {
                last_seq.insert(s.shard_id().to_owned(), prev);
            }
            done.insert(s.shard_id().to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_consumer_reads_every_record_once_in_key_order_across_reshards_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let stream = "lineage";
    let server = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(server.local_addr());
    create_stream(&client, stream, 4).await;
    let counters = vec![vec![0u64; KEYS_PER_PRODUCER]; PRODUCERS];

    // Phase 1: split, merge, 4 → 8 → 4 while the producers write.
    let c = client.clone();
    let (acks1, counters) = phase(&client, stream, 0x5eed, counters, |acked| async move {
        step(&c, stream, "split", &acked, 200).await;
        c.split_shard()
            .stream_name(stream)
            .shard_to_split(shard_id(1))
            .new_starting_hash_key((expected_ranges(4)[1].0 + (1u128 << 120)).to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("split: {}", describe_err(&e)));
        step(&c, stream, "merge", &acked, 400).await;
        // The split's children are shards 4 and 5; merge 5 with shard 2 (adjacent).
        c.merge_shards()
            .stream_name(stream)
            .shard_to_merge(shard_id(5))
            .adjacent_shard_to_merge(shard_id(2))
            .send()
            .await
            .unwrap_or_else(|e| panic!("merge: {}", describe_err(&e)));
        step(&c, stream, "to 4", &acked, 500).await;
        // Back to a uniform 4, then 8, then 4.
        for (target, after) in [(4, 600), (8, 800), (4, 1000)] {
            step(&c, stream, "scale", &acked, after).await;
            uniform(&c, stream, target)
                .send()
                .await
                .unwrap_or_else(|e| panic!("→ {target}: {}", describe_err(&e)));
        }
        wait_active(&c, stream).await;
    })
    .await;
    let layout_before = describe_shards(&client, stream).await;
    assert_eq!(open_ranges(&layout_before), expected_ranges(4));
    server.shutdown().await.unwrap();

    // A restart between reshards: the same shards, lineage and end points.
    let server = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(server.local_addr());
    let layout_after = describe_shards(&client, stream).await;
    assert_eq!(
        layout_after, layout_before,
        "the stream is as it was before the restart"
    );

    // Phase 2: 4 → 3, to ON_DEMAND and back, → 6.
    let c = client.clone();
    let arn = stream_arn(stream);
    let (acks2, _) = phase(&client, stream, 0xbeef, counters, |acked| async move {
        step(&c, stream, "to 3", &acked, 200).await;
        uniform(&c, stream, 3)
            .send()
            .await
            .unwrap_or_else(|e| panic!("→ 3: {}", describe_err(&e)));
        for (mode, after) in [(StreamMode::OnDemand, 400), (StreamMode::Provisioned, 600)] {
            step(&c, stream, "mode", &acked, after).await;
            c.update_stream_mode()
                .stream_arn(&arn)
                .stream_mode_details(
                    StreamModeDetails::builder()
                        .stream_mode(mode.clone())
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("mode {mode:?}: {}", describe_err(&e)));
        }
        step(&c, stream, "to 6", &acked, 800).await;
        uniform(&c, stream, 6)
            .send()
            .await
            .unwrap_or_else(|e| panic!("→ 6: {}", describe_err(&e)));
        wait_active(&c, stream).await;
    })
    .await;
    assert_eq!(
        open_ranges(&describe_shards(&client, stream).await),
        expected_ranges(6)
    );

    // Everything acknowledged, by sequence number.
    let mut acks = acks1;
    for (k, v) in acks2 {
        acks.entry(k).or_default().extend(v);
    }
    let mut by_seq: HashMap<String, (String, u64, String)> = HashMap::new();
    let mut total = 0;
    for (key, list) in &acks {
        for (i, (counter, shard, seqno)) in list.iter().enumerate() {
            assert_eq!(
                *counter, i as u64,
                "{key}: counters are acknowledged in order"
            );
            let dup = by_seq.insert(seqno.clone(), (key.clone(), *counter, shard.clone()));
            assert!(dup.is_none(), "sequence number {seqno} acknowledged twice");
            total += 1;
        }
    }
    assert!(
        total >= 2000,
        "the producers wrote through every reshard ({total} records)"
    );

    // The lineage-following consumer.
    let read = lineage_read(&client, stream).await;
    let mut seen: HashSet<String> = HashSet::new();
    let mut next_counter: BTreeMap<String, u64> = BTreeMap::new();
    for (shard, seqno, data) in &read {
        let (key, counter) = data.split_once('|').expect("key|counter");
        let counter: u64 = counter.parse().unwrap();
        let (akey, acounter, ashard) = by_seq
            .get(seqno)
            .unwrap_or_else(|| panic!("record {data} ({seqno}) was never acknowledged"));
        assert_eq!(
            (akey.as_str(), *acounter, ashard),
            (key, counter, shard),
            "read where it was acknowledged"
        );
        assert!(seen.insert(seqno.clone()), "{data} read twice");
        let want = next_counter.entry(key.to_owned()).or_insert(0);
        assert_eq!(counter, *want, "{key}: records in order");
        *want += 1;
    }
    assert_eq!(seen.len(), total, "every acknowledged record was read");
    server.shutdown().await.unwrap();
}

// ---- restarts and rolling 24-hour limits ------------------------------------------------

#[tokio::test]
async fn a_restart_while_updating_finishes_the_reshard() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.update_stream_delay = kinesis_broker::config::MAX_LIFECYCLE_DELAY;
    })
    .await;
    let c = client_for(server.local_addr());
    create_stream(&c, "interrupted", 2).await;
    put_one(&c, "interrupted", "a", "before").await;
    uniform(&c, "interrupted", 4).send().await.expect("2 → 4");
    assert_eq!(
        summary_status(&c, "interrupted").await,
        StreamStatus::Updating
    );
    let layout = describe_shards(&c, "interrupted").await;
    server.shutdown().await.unwrap();

    let server = start_server_in(dir.path(), |_| {}).await;
    let c = client_for(server.local_addr());
    wait_active(&c, "interrupted").await;
    let after = describe_shards(&c, "interrupted").await;
    // As on AWS the shards change when the update ends: while UPDATING the old layout
    // served; the restart finished the interrupted reshard.
    assert_eq!(
        open_ranges(&layout),
        expected_ranges(2),
        "old shards while UPDATING"
    );
    assert_eq!(
        open_ranges(&after),
        expected_ranges(4),
        "the reshard finished on restart"
    );
    assert_lineage(&after);
    // It takes writes and reshards again.
    put_one(&c, "interrupted", "a", "after").await;
    uniform(&c, "interrupted", 2)
        .send()
        .await
        .expect("4 → 2 after the restart");
    wait_active(&c, "interrupted").await;
    assert_lineage(&describe_shards(&c, "interrupted").await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shard_count_updates_and_mode_switches_are_limited_per_rolling_day() {
    let dir = tempfile::tempdir().unwrap();
    let server = ClockServer::start(dir.path(), Clock::system(), |_| {}).await;
    let c = server.client.clone();
    create_stream(&c, "daily", 2).await;
    // DOC UpdateShardCount: at most 10 scaling operations per rolling 24 hours per stream.
    for i in 0..10 {
        let target = if i % 2 == 0 { 4 } else { 2 };
        uniform(&c, "daily", target)
            .send()
            .await
            .unwrap_or_else(|e| panic!("update {}: {}", i + 1, describe_err(&e)));
        wait_active(&c, "daily").await;
    }
    let eleventh = uniform(&c, "daily", 4).send().await;
    assert_eq!(
        code_of(&eleventh),
        "LimitExceededException",
        "the 11th in 24 hours"
    );
    server
        .clock
        .advance_ms(24 * HOUR_MS + 60_000)
        .expect("the clock moves");
    uniform(&c, "daily", 4)
        .send()
        .await
        .expect("allowed again a day later");
    wait_active(&c, "daily").await;

    // DOC UpdateStreamMode: two switches per rolling 24 hours.
    let arn = stream_arn("daily");
    let switch = |m: StreamMode| {
        c.update_stream_mode()
            .stream_arn(&arn)
            .stream_mode_details(StreamModeDetails::builder().stream_mode(m).build().unwrap())
            .send()
    };
    switch(StreamMode::OnDemand).await.expect("first switch");
    wait_active(&c, "daily").await;
    switch(StreamMode::Provisioned)
        .await
        .expect("second switch");
    wait_active(&c, "daily").await;
    let third = switch(StreamMode::OnDemand).await;
    assert_eq!(
        code_of(&third),
        "LimitExceededException",
        "a third switch in 24 hours"
    );
    server
        .clock
        .advance_ms(24 * HOUR_MS + 60_000)
        .expect("the clock moves");
    switch(StreamMode::OnDemand)
        .await
        .expect("allowed again a day later");
    server.stop().await;
}

#[tokio::test]
async fn latest_on_a_closed_shard_ends_at_once_with_its_children() {
    let (c, server, _dir) = start_server().await;
    create_stream(&c, "closed", 1).await;
    put_one(&c, "closed", "a", "x").await;
    c.split_shard()
        .stream_name("closed")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key("1000")
        .send()
        .await
        .unwrap();
    wait_active(&c, "closed").await;
    let it = iterator(&c, "closed", &shard_id(0), ShardIteratorType::Latest).await;
    let out = c.get_records().shard_iterator(&it).send().await.unwrap();
    assert!(out.records().is_empty());
    assert_eq!(
        out.next_shard_iterator(),
        None,
        "nothing more will ever come"
    );
    let mut kids: Vec<&str> = out.child_shards().iter().map(|k| k.shard_id()).collect();
    kids.sort();
    assert_eq!(kids, vec![shard_id(1), shard_id(2)]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_split_takes_effect_when_the_stream_is_active_again() {
    // kinesalite test/splitShard.js 'should work with minimum hash' ("Takes 65 secs to run
    // on production"): right after SplitShard the stream is UPDATING, DescribeStream still
    // lists only the parent, open, and a PutRecord in the range of a future child is
    // written to the parent; the children appear when the stream is ACTIVE again.
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.update_stream_delay = kinesis_broker::config::MAX_LIFECYCLE_DELAY;
    })
    .await;
    let c = client_for(server.local_addr());
    create_stream(&c, "pending", 1).await;
    c.split_shard()
        .stream_name("pending")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key("2")
        .send()
        .await
        .unwrap();
    assert_eq!(summary_status(&c, "pending").await, StreamStatus::Updating);
    let during = describe_shards(&c, "pending").await;
    let during_ids = ids(&during);
    let parent_open = during.first().is_some_and(is_open);
    let landed = put_hash(&c, "pending", 1, "while updating").await;
    server.shutdown().await.unwrap();

    let server = start_server_in(dir.path(), |_| {}).await;
    let c = client_for(server.local_addr());
    wait_active(&c, "pending").await;
    let after = describe_shards(&c, "pending").await;
    assert_eq!(ids(&after), vec![shard_id(0), shard_id(1), shard_id(2)]);
    assert_lineage(&after);
    server.shutdown().await.unwrap();

    assert_eq!(
        (during_ids, parent_open, landed),
        (vec![shard_id(0)], true, shard_id(0)),
        "while UPDATING: only the parent, still open, taking the writes"
    );
}

// ---- on-demand autoscaling -----------------------------------------------------------------

/// Issue 7's on-demand test: writes above the 4 MiB/s of a new on-demand stream make the
/// autoscaler add shards, and once capacity has caught up nothing is throttled any more.
#[tokio::test]
async fn on_demand_stream_scales_up_until_nothing_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.throughput_limits = true;
        c.on_demand_scale_interval = Duration::from_millis(500);
    })
    .await;
    let c = client_for(server.local_addr());
    c.create_stream()
        .stream_name("od-scale")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_active(&c, "od-scale").await;
    let data = vec![b'x'; 3000];
    let mut throttled_rounds = 0;
    let mut calm = false;
    // Each round offers about 12 MB at once (8 concurrent requests of 500 × 3 KB) and
    // then waits out the rest of its second. Bounded: at most 20 rounds.
    for round in 0..20 {
        let started = std::time::Instant::now();
        let mut requests = tokio::task::JoinSet::new();
        for r in 0..8 {
            let c = c.clone();
            let data = data.clone();
            requests.spawn(async move {
                let entries: Vec<PutRecordsRequestEntry> = (0..500)
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("key-{round}-{r}-{i}"))
                            .data(aws_sdk_kinesis::primitives::Blob::new(data.clone()))
                            .build()
                            .unwrap()
                    })
                    .collect();
                let out = c
                    .put_records()
                    .stream_name("od-scale")
                    .set_records(Some(entries))
                    .send()
                    .await
                    .unwrap();
                out.failed_record_count().unwrap_or(0)
            });
        }
        let mut throttled = 0;
        while let Some(n) = requests.join_next().await {
            throttled += n.unwrap();
        }
        if throttled > 0 {
            throttled_rounds += 1;
        } else if throttled_rounds > 0 {
            calm = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
    }
    assert!(
        throttled_rounds > 0,
        "12 MB at once must overload 4 shards at first"
    );
    assert!(calm, "throttling must stop once the stream has scaled up");
    let open = describe_shards(&c, "od-scale")
        .await
        .iter()
        .filter(|s| is_open(s))
        .count();
    assert!(open > 4, "the stream scaled up: {open} open shards");
    server.shutdown().await.unwrap();
}
