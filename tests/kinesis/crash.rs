//! kill -9 during writes, against the real binary: every acknowledged record must be
//! readable after a restart, with the sequence number it was acknowledged with.

use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::common::*;

const SHARDS: u32 = 4;
/// Acknowledged records after which the broker is killed (writes keep going meanwhile).
const KILL_AFTER_ACKS: usize = 3_000;
const WRITERS: usize = 4;

/// The broker process; killed (SIGKILL) when dropped so a failing test leaves nothing behind.
pub(crate) struct Broker {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) log: std::path::PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the release or debug binary cargo built for this test on a free port and waits
/// (bounded polls) until it answers ListStreams.
async fn spawn_broker(data_dir: &Path, log_dir: &Path, run: usize) -> Broker {
    spawn_broker_with(data_dir, log_dir, run, "flush").await
}

/// As [`spawn_broker`], with a `--durability` mode.
async fn spawn_broker_with(
    data_dir: &Path,
    log_dir: &Path,
    run: usize,
    durability: &str,
) -> Broker {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--data-dir",
    ])
    .arg(data_dir)
    .args(["--durability", durability])
    .args([
        "--create-stream-delay-ms",
        "0",
        "--delete-stream-delay-ms",
        "0",
        "--update-stream-delay-ms",
        "0",
    ]);
    start(cmd, port, &log_dir.join(format!("broker-{run}.log"))).await
}

/// Spawns `cmd` (the broker, set up to listen on `port`) with its output in `log`, and
/// waits (bounded polls) until it answers ListStreams.
pub(crate) async fn start(mut cmd: Command, port: u16, log: &Path) -> Broker {
    let out = File::create(log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn kinesis-broker");
    let mut broker = Broker {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        log: log.to_path_buf(),
    };
    let client = client_for(broker.addr);
    for _ in 0..MAX_POLLS {
        if let Ok(Some(status)) = broker.child.try_wait() {
            panic!(
                "broker exited with {status}: {}",
                std::fs::read_to_string(&broker.log).unwrap_or_default()
            );
        }
        if client.list_streams().send().await.is_ok() {
            return broker;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "broker never answered: {}",
        std::fs::read_to_string(&broker.log).unwrap_or_default()
    );
}

type Acked = Arc<Mutex<Vec<(String, String, String, String)>>>; // (data, partition key, shard, sequence)

async fn writer(client: Client, id: usize, acked: Acked) {
    for batch in 0.. {
        let entries: Vec<_> = (0..25)
            .map(|j| {
                let d = format!("w{id}-b{batch}-r{j}");
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("w{id}-{}", j % 7))
                    .data(blob(d))
                    .build()
                    .unwrap()
            })
            .collect();
        let sent: Vec<(String, String)> = entries
            .iter()
            .map(|e| {
                (
                    String::from_utf8(e.data().as_ref().to_vec()).unwrap(),
                    e.partition_key().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        match client
            .put_records()
            .stream_name("crash")
            .set_records(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let mut acked = acked.lock().unwrap();
                for ((d, pk), r) in sent.into_iter().zip(out.records()) {
                    if let (Some(shard), Some(seq)) = (r.shard_id(), r.sequence_number()) {
                        acked.push((d, pk, shard.to_owned(), seq.to_owned()));
                    }
                }
            }
            Err(_) => return, // The broker is gone: unacknowledged, may or may not be stored.
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_kill_9_during_writes() {
    kill_9_during_writes("flush").await;
}

/// Page-cache mode promises to survive a process crash (not a power loss): kill -9 is a
/// process crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_kill_9_in_page_cache_mode() {
    kill_9_during_writes("page-cache").await;
}

async fn kill_9_during_writes(durability: &str) {
    let data_dir = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let mut broker = spawn_broker_with(data_dir.path(), log_dir.path(), 1, durability).await;
    let client = client_for(broker.addr);
    create_stream(&client, "crash", SHARDS as i32).await;

    let acked: Acked = Arc::default();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(client.clone(), id, acked.clone())))
        .collect();
    for _ in 0..100_000 {
        if acked.lock().unwrap().len() >= KILL_AFTER_ACKS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        acked.lock().unwrap().len() >= KILL_AFTER_ACKS,
        "writers stalled before the kill"
    );
    // SIGKILL while the writers still have requests in flight.
    broker.child.kill().expect("SIGKILL the broker");
    let status = broker.child.wait().unwrap();
    assert!(
        !status.success(),
        "the broker was killed, not stopped: {status}"
    );
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    drop(broker);

    let broker = spawn_broker_with(data_dir.path(), log_dir.path(), 2, durability).await;
    let client = client_for(broker.addr);
    wait_active(&client, "crash").await;
    let mut stored: HashMap<String, (String, String, String)> = HashMap::new();
    let mut max_seq: HashMap<String, Seq> = HashMap::new();
    for s in 0..SHARDS as usize {
        let sid = shard_id(s);
        let recs = read_shard(&client, "crash", &sid).await;
        for w in recs.windows(2) {
            assert!(
                seq(w[0].sequence_number()) < seq(w[1].sequence_number()),
                "{sid}: order broken after recovery"
            );
        }
        for r in recs {
            let d = String::from_utf8(data(&r).to_vec()).expect("recovered data is intact");
            max_seq.insert(sid.clone(), seq(r.sequence_number()));
            let prev = stored.insert(
                d.clone(),
                (
                    pk(&r).to_owned(),
                    sid.clone(),
                    r.sequence_number().to_owned(),
                ),
            );
            assert!(prev.is_none(), "record {d} stored twice");
        }
    }
    let mut missing = Vec::new();
    for (d, pk, shard, sq) in &acked {
        match stored.get(d) {
            None => missing.push(d.clone()),
            Some(got) => assert_eq!(
                got,
                &(pk.clone(), shard.clone(), sq.clone()),
                "record {d} changed"
            ),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );

    // Writing after recovery continues above every sequence number already in the shard.
    for s in 0..SHARDS as usize {
        let out = client
            .put_record()
            .stream_name("crash")
            .partition_key("after")
            .explicit_hash_key(expected_ranges(SHARDS)[s].0.to_string())
            .data(blob("after-crash"))
            .send()
            .await
            .unwrap();
        if let Some(m) = max_seq.get(&shard_id(s)) {
            assert!(
                &seq(out.sequence_number()) > m,
                "shard {s}: sequence number reused after recovery"
            );
        }
    }
}

#[tokio::test]
async fn sigterm_stops_the_binary_with_exit_0_and_keeps_what_was_written() {
    let data_dir = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let mut broker = spawn_broker(data_dir.path(), log_dir.path(), 1).await;
    let client = client_for(broker.addr);
    create_stream(&client, "term", 1).await;
    let put = client
        .put_record()
        .stream_name("term")
        .partition_key("a")
        .data(blob("kept"))
        .send()
        .await
        .unwrap();

    let pid = broker.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill -TERM");
    assert!(sent.success());
    let status = broker.child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}; log: {}",
        std::fs::read_to_string(&broker.log).unwrap_or_default()
    );
    drop(broker);

    let broker = spawn_broker(data_dir.path(), log_dir.path(), 2).await;
    let client = client_for(broker.addr);
    let recs = read_shard(&client, "term", &shard_id(0)).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].sequence_number(), put.sequence_number());
}
