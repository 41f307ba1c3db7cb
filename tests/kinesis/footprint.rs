//! Disk footprint (issue 21): what a stream costs on disk before anything is written to it,
//! and what a full disk does to CreateStream and resharding (the broker's own limit,
//! LimitExceededException with the reason, nothing half created; `compat-tests/AWS_BEHAVIOUR.md`).

use std::fs;
use std::path::Path;

use aws_sdk_kinesis::types::ScalingType;

use crate::common::*;

/// Disk blocks used under `dir` (what `du` counts), in bytes.
fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += meta.blocks() * 512;
        if meta.is_dir() {
            total += du(&entry.path());
        }
    }
    total
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_idle_shard_reserves_a_whole_segment_of_disk() {
    let (client, _h, dir) = start_server().await;
    let before = du(dir.path());
    create_stream(&client, "idle", 50).await;
    let per_shard = (du(dir.path()) - before) / 50;
    // A directory, a one-page segment, a one-page index: 12 KiB on ext4. It was 11 MiB
    // (the smallest segment, preallocated whole).
    assert!(
        per_shard < 64 * 1024,
        "an empty shard occupies {per_shard} bytes of disk"
    );
}

#[tokio::test]
async fn a_full_disk_at_create_stream_or_reshard_is_an_internal_failure_or_leaves_half_a_stream() {
    let (client, _h, dir) = start_server().await;
    create_stream(&client, "existing", 1).await;
    let catalog = dir.path().join("catalog.json");
    let catalog_before = fs::read(&catalog).unwrap();
    let streams_dir = dir.path().join("streams");
    let stream_dirs_before = names_in(&streams_dir);
    {
        let _full = storage::disk_full::fill(dir.path());
        assert_error_prefix(
            client
                .create_stream()
                .stream_name("big")
                .shard_count(8)
                .send()
                .await,
            "LimitExceededException",
            "Not enough disk space to create stream big: the broker could not reserve disk space for shardId-000000000000",
        );
        // Nothing of it exists: not in the API, not in the catalog, not on disk.
        assert_eq!(
            code_of(
                &client
                    .describe_stream_summary()
                    .stream_name("big")
                    .send()
                    .await
            ),
            "ResourceNotFoundException"
        );
        let listed = client.list_streams().send().await.unwrap();
        assert_eq!(listed.stream_names(), ["existing"]);
        assert_eq!(
            fs::read(&catalog).unwrap(),
            catalog_before,
            "catalog changed"
        );
        assert_eq!(names_in(&streams_dir), stream_dirs_before);

        // New shards of a reshard: refused the same way, the stream as it was.
        let existing_dir = streams_dir.join(&stream_dirs_before[0]);
        let shard_dirs = names_in(&existing_dir);
        assert_error_prefix(
            client
                .update_shard_count()
                .stream_name("existing")
                .target_shard_count(2)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await,
            "LimitExceededException",
            "Not enough disk space to add shards to stream existing: ",
        );
        assert_error_prefix(
            client
                .split_shard()
                .stream_name("existing")
                .shard_to_split(shard_id(0))
                .new_starting_hash_key((1u128 << 127).to_string())
                .send()
                .await,
            "LimitExceededException",
            "Not enough disk space to add shards to stream existing: ",
        );
        let shards = list_all_shards(&client, "existing").await;
        assert_eq!(shards.len(), 1);
        assert!(
            shards[0]
                .sequence_number_range()
                .unwrap()
                .ending_sequence_number()
                .is_none()
        );
        assert_eq!(
            names_in(&existing_dir),
            shard_dirs,
            "a child's files were left"
        );
        assert_eq!(
            fs::read(&catalog).unwrap(),
            catalog_before,
            "catalog changed"
        );
        // Writes to the existing shard still work (its segment has room).
        client
            .put_record()
            .stream_name("existing")
            .partition_key("k")
            .data(blob("still writable"))
            .send()
            .await
            .unwrap();
    }
    // Space is back: the same requests succeed.
    create_stream(&client, "big", 8).await;
    client
        .update_shard_count()
        .stream_name("existing")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    wait_active(&client, "existing").await;
    assert_eq!(list_all_shards(&client, "existing").await.len(), 3);
}
