//! Unit tests of the broker domain.

use super::*;
use iterator::ITERATOR_TTL_MS;

fn config(dir: &Path) -> Config {
    let mut c = Config::new();
    c.data_dir = dir.to_path_buf();
    c.create_stream_delay = Duration::ZERO;
    c.delete_stream_delay = Duration::ZERO;
    c.segment_bytes = MIN_SEGMENT_BYTES;
    c
}

fn key(name: &str) -> StreamKey {
    StreamKey {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: name.into(),
    }
}

fn entry(pk: &'static str, data: &'static [u8]) -> PutEntry<'static> {
    PutEntry {
        hash_key: hash::partition_key_hash(pk.as_bytes()),
        partition_key: pk.as_bytes(),
        explicit_hash_key: None,
        data,
    }
}

fn read_all(broker: &Broker, stream: &Stream, shard: &Shard) -> Vec<(String, Vec<u8>)> {
    let it = broker
        .issue_iterator(stream, shard, Position::TrimHorizon)
        .unwrap();
    let read = broker.get_records(&it, 10_000, usize::MAX).unwrap();
    read.batch
        .iter()
        .map(|r| r.unwrap())
        .map(|r| {
            (
                shard.sequence_number(r.arrival_ms, r.offset),
                r.data.to_vec(),
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn records_over_the_shard_write_limit_fail_alone_and_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.throughput_limits = true;
    let broker = Broker::open(&c).unwrap();
    broker
        .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
        .await
        .unwrap();
    let stream = broker.stream(&key("s")).unwrap();
    let entries: Vec<PutEntry<'static>> = (0..1200).map(|_| entry("k", b"x")).collect();
    let results = broker.put(&stream, &entries, 0).await.unwrap();
    let throttled = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Throttled { .. })))
        .count();
    assert_eq!(throttled, 200);
    assert!(
        results[..1000].iter().all(|r| r.is_ok()),
        "the first 1,000 fit the burst"
    );
    let shard = stream.state().shards[0].clone();
    assert_eq!(
        shard.log.bounds().next_offset,
        1000,
        "throttled records are not written"
    );
}

#[tokio::test]
async fn injected_record_failures_are_not_written_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.faults.seed = 9;
    c.faults.global.record_failure_rate = 0.5;
    let broker = Broker::open(&c).unwrap();
    broker
        .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
        .await
        .unwrap();
    let stream = broker.stream(&key("s")).unwrap();
    let entries: Vec<PutEntry<'static>> = (0..100).map(|_| entry("k", b"x")).collect();
    let first: Vec<bool> = broker
        .put(&stream, &entries, 0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.is_ok())
        .collect();
    let ok = first.iter().filter(|x| **x).count();
    assert!((20..80).contains(&ok), "{ok}");
    let shard = stream.state().shards[0].clone();
    assert_eq!(shard.log.bounds().next_offset, ok as u64);
    broker.faults().configure(c.faults.clone());
    let again: Vec<bool> = broker
        .put(&stream, &entries, 0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.is_ok())
        .collect();
    assert_eq!(first, again, "the same seed fails the same records");
}

#[tokio::test]
async fn concurrent_creates_cannot_together_pass_the_shard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.shard_limit = 10;
    let broker = Broker::open(&c).unwrap();
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..8 {
        let broker = broker.clone();
        creates.spawn(async move {
            broker
                .create_stream(
                    key(&format!("s{i}")),
                    2,
                    StreamMode::Provisioned,
                    BTreeMap::new(),
                )
                .await
        });
    }
    let mut created = 0;
    while let Some(r) = creates.join_next().await {
        match r.unwrap() {
            Ok(()) => created += 1,
            Err(e) => assert!(matches!(e, Error::LimitExceeded(_)), "{e}"),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(broker.usage("000000000000", "us-east-1").0, 10);
}

#[tokio::test]
async fn records_and_sequence_numbers_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (seq, stream_uid) = {
        let broker = Broker::open(&config(dir.path())).unwrap();
        broker
            .create_stream(key("s"), 2, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key("s")).unwrap();
        let written = broker
            .put(&stream, &[entry("a", b"one"), entry("a", b"two")], 0)
            .await
            .unwrap();
        let seq: Vec<String> = written
            .into_iter()
            .map(|w| w.unwrap().sequence_number)
            .collect();
        broker.shutdown().await;
        (seq, stream.uid)
    };
    let broker = Broker::open(&config(dir.path())).unwrap();
    let stream = broker.stream(&key("s")).unwrap();
    assert_eq!(stream.uid, stream_uid);
    let shard = stream
        .state()
        .route(hash::partition_key_hash(b"a"))
        .unwrap()
        .clone();
    let records = read_all(&broker, &stream, &shard);
    assert_eq!(
        records,
        vec![
            (seq[0].clone(), b"one".to_vec()),
            (seq[1].clone(), b"two".to_vec())
        ]
    );
    let more = broker
        .put(&stream, &[entry("a", b"three")], 0)
        .await
        .unwrap();
    let next = &more[0].as_ref().unwrap().sequence_number;
    assert!(
        crate::broker::sequence::compare(next, &seq[1]).is_gt(),
        "sequence numbers keep increasing after a restart"
    );
}

#[tokio::test]
async fn deleted_and_recreated_stream_rejects_old_iterators() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(&config(dir.path())).unwrap();
    broker
        .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
        .await
        .unwrap();
    let old = broker.stream(&key("s")).unwrap();
    let shard = old.state().shards[0].clone();
    let it = broker
        .issue_iterator(&old, &shard, Position::TrimHorizon)
        .unwrap();
    broker.delete_stream(&old).await.unwrap();
    broker
        .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
        .await
        .unwrap();
    assert!(matches!(
        broker.get_records(&it, 10, usize::MAX),
        Err(Error::IteratorStreamGone { .. })
    ));
}

#[tokio::test]
async fn iterator_expires_after_five_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let broker = Broker::open_with_clock(&config(dir.path()), clock.clone()).unwrap();
    broker
        .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
        .await
        .unwrap();
    let stream = broker.stream(&key("s")).unwrap();
    let shard = stream.state().shards[0].clone();
    let it = broker
        .issue_iterator(&stream, &shard, Position::Latest)
        .unwrap();
    clock.advance_ms(ITERATOR_TTL_MS - 1000).unwrap();
    assert!(broker.get_records(&it, 10, usize::MAX).is_ok());
    clock.advance_ms(2000).unwrap();
    assert!(matches!(
        broker.get_records(&it, 10, usize::MAX),
        Err(Error::IteratorExpired { .. })
    ));
}

#[tokio::test]
async fn creating_stream_takes_no_writes_and_existing_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.create_stream_delay = Duration::from_secs(3600);
    let broker = Broker::open(&c).unwrap();
    broker
        .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
        .await
        .unwrap();
    let stream = broker.stream(&key("s")).unwrap();
    assert_eq!(stream.state().status, StreamStatus::Creating);
    assert!(matches!(
        broker.put(&stream, &[entry("a", b"x")], 0).await,
        Err(Error::StreamNotFound { .. })
    ));
    assert!(matches!(
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await,
        Err(Error::StreamExists { .. })
    ));
}

#[tokio::test]
async fn at_and_after_offset_and_latest_position_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(&config(dir.path())).unwrap();
    broker
        .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
        .await
        .unwrap();
    let stream = broker.stream(&key("s")).unwrap();
    let shard = stream.state().shards[0].clone();
    let latest = broker
        .issue_iterator(&stream, &shard, Position::Latest)
        .unwrap();
    broker
        .put(
            &stream,
            &[entry("a", b"0"), entry("b", b"1"), entry("c", b"2")],
            0,
        )
        .await
        .unwrap();
    let data = |it: &str| -> Vec<Vec<u8>> {
        broker
            .get_records(it, 100, usize::MAX)
            .unwrap()
            .batch
            .iter()
            .map(|r| r.unwrap().data.to_vec())
            .collect()
    };
    assert_eq!(
        data(&latest),
        vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]
    );
    let at1 = broker
        .issue_iterator(&stream, &shard, Position::AtOffset(1))
        .unwrap();
    assert_eq!(data(&at1), vec![b"1".to_vec(), b"2".to_vec()]);
    let after1 = broker
        .issue_iterator(&stream, &shard, Position::AfterOffset(1))
        .unwrap();
    assert_eq!(data(&after1), vec![b"2".to_vec()]);
    let end = broker
        .issue_iterator(&stream, &shard, Position::Latest)
        .unwrap();
    let read = broker.get_records(&end, 100, usize::MAX).unwrap();
    assert!(read.batch.is_empty());
    assert_eq!(read.millis_behind_latest, 0);
    assert!(read.next_iterator.is_some());
}

#[test]
fn stream_id_has_aws_shape() {
    let id = make_stream_id(1, 1_764_000_000_000);
    assert_eq!(id.len(), 24);
    assert_eq!(&id[20..21], "-");
    assert!(
        id.bytes()
            .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_ne!(id, make_stream_id(2, 1_764_000_000_000));
}
