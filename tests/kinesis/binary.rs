//! The `kinesis-broker` binary's command line: flags, their environment variables, streams
//! created at start, `--help` and the start-up line.

use std::process::Command;

use crate::common::*;
use crate::crash::{free_port, start};

#[tokio::test]
async fn every_setting_can_come_from_its_environment_variable() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
    cmd.env("KINESIS_BROKER_HOST", "127.0.0.1")
        .env("KINESIS_BROKER_PORT", port.to_string())
        .env("KINESIS_BROKER_DATA_DIR", data.path())
        .env("KINESIS_BROKER_CREATE_STREAM_DELAY_MS", "0")
        .env("KINESIS_BROKER_DELETE_STREAM_DELAY_MS", "0")
        .env("KINESIS_BROKER_CREATE_STREAM", "from-env:2");
    let broker = start(cmd, port, &logs.path().join("env.log")).await;
    let client = client_for(broker.addr);
    wait_active(&client, "from-env").await;
    assert_eq!(list_all_shards(&client, "from-env").await.len(), 2);
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_some(),
        "KINESIS_BROKER_DATA_DIR was not used"
    );
}

#[tokio::test]
async fn create_stream_flag_is_repeatable_and_defaults_to_one_shard() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
    cmd.args(["--port", &port.to_string(), "--data-dir"])
        .arg(data.path())
        .args(["--create-stream-delay-ms", "0"])
        .args(["--create-stream", "three:3", "--create-stream", "one"]);
    let broker = start(cmd, port, &logs.path().join("flags.log")).await;
    let client = client_for(broker.addr);
    wait_active(&client, "three").await;
    wait_active(&client, "one").await;
    assert_eq!(list_all_shards(&client, "three").await.len(), 3);
    assert_eq!(list_all_shards(&client, "one").await.len(), 1);

    // The start-up line names the address, the data directory and the durability mode.
    let log = std::fs::read_to_string(&broker.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port}")))
        .unwrap_or_else(|| panic!("no start-up line with the address in {log:?}"));
    assert!(line.contains(&data.path().display().to_string()), "{line}");
    assert!(line.contains("page-cache"), "{line}");
}

#[test]
fn help_explains_every_flag_of_issue_3() {
    let out = Command::new(env!("CARGO_BIN_EXE_kinesis-broker"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--host",
        "--port",
        "--data-dir",
        "--durability",
        "--create-stream",
        "--create-stream-delay-ms",
        "--delete-stream-delay-ms",
        "--update-stream-delay-ms",
        "--log-level",
        "KINESIS_BROKER_PORT",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}
