"""The AWS CLI (v1, from the virtualenv) against the broker, via --endpoint-url and via
AWS_ENDPOINT_URL_KINESIS, including the error line the CLI prints for a service error."""

import base64

from conftest import ACCOUNT, arn, aws, cli_env, endpoint, expected_shard, md5_hash_key, shard_id, unique


def test_cli_creates_describes_writes_reads_and_deletes_a_stream():
    name = unique("cli")
    aws("create-stream", "--stream-name", name, "--shard-count", "2")
    aws("wait", "stream-exists", "--stream-name", name)
    _, out, _ = aws("describe-stream-summary", "--stream-name", name)
    s = out["StreamDescriptionSummary"]
    assert (s["StreamName"], s["StreamARN"], s["StreamStatus"], s["OpenShardCount"]) == (name, arn(name), "ACTIVE", 2)

    _, listed, _ = aws("list-streams")
    assert name in listed["StreamNames"]
    _, shards, _ = aws("list-shards", "--stream-name", name)
    assert [x["ShardId"] for x in shards["Shards"]] == [shard_id(0), shard_id(1)]

    # CLI v1 sends --data as the raw bytes given (base64-encoding them on the wire).
    _, put, _ = aws("put-record", "--stream-name", name, "--partition-key", "user-1", "--data", "hello cli")
    assert put["ShardId"] == shard_id(expected_shard(md5_hash_key("user-1"), 2))
    _, it, _ = aws(
        "get-shard-iterator",
        "--stream-name", name,
        "--shard-id", put["ShardId"],
        "--shard-iterator-type", "AT_SEQUENCE_NUMBER",
        "--starting-sequence-number", put["SequenceNumber"],
    )
    _, recs, _ = aws("get-records", "--shard-iterator", it["ShardIterator"])
    assert [(base64.b64decode(r["Data"]), r["PartitionKey"], r["SequenceNumber"]) for r in recs["Records"]] == [
        (b"hello cli", "user-1", put["SequenceNumber"])
    ]
    assert "NextShardIterator" in recs and recs["MillisBehindLatest"] == 0

    aws("delete-stream", "--stream-name", name)
    aws("wait", "stream-not-exists", "--stream-name", name)


def test_cli_put_records_from_json():
    name = unique("clibatch")
    aws("create-stream", "--stream-name", name, "--shard-count", "3")
    aws("wait", "stream-exists", "--stream-name", name)
    records = '[{"PartitionKey":"a","Data":"one"},{"PartitionKey":"b","Data":"two"},{"PartitionKey":"e","Data":"three"}]'
    _, out, _ = aws("put-records", "--stream-name", name, "--records", records)
    assert out["FailedRecordCount"] == 0
    assert [r["ShardId"] for r in out["Records"]] == [shard_id(0), shard_id(1), shard_id(2)]
    aws("delete-stream", "--stream-name", name)


def test_cli_prints_the_aws_error_line_and_fails():
    name = unique("nope")
    code, _, err = aws("describe-stream", "--stream-name", name, check=False)
    assert code != 0
    line = err.strip()
    # e.g. "An error occurred (ResourceNotFoundException) when calling the DescribeStream
    # operation (reached max retries: 0): Stream … not found."
    assert line.startswith("An error occurred (ResourceNotFoundException) when calling the DescribeStream operation"), err
    assert line.endswith(f": Stream {name} under account {ACCOUNT} not found."), err


def test_cli_list_shards_paging_fails_as_against_aws():
    """The CLI's auto-paging resends --stream-name with NextToken, which AWS rejects
    (aws/aws-cli#9635); the broker must give AWS's answer. One page works."""
    name = unique("clipage")
    aws("create-stream", "--stream-name", name, "--shard-count", "5")
    aws("wait", "stream-exists", "--stream-name", name)
    code, _, err = aws("list-shards", "--stream-name", name, "--page-size", "2", check=False)
    assert code != 0
    assert "(InvalidArgumentException)" in err and err.strip().endswith(
        ": NextToken and StreamName cannot be provided together."
    ), err
    _, out, _ = aws("list-shards", "--stream-name", name)
    assert [s["ShardId"] for s in out["Shards"]] == [shard_id(i) for i in range(5)]
    aws("delete-stream", "--stream-name", name)


def test_cli_honours_aws_endpoint_url_kinesis():
    name = unique("envurl")
    env = cli_env(AWS_ENDPOINT_URL_KINESIS=endpoint())
    aws("create-stream", "--stream-name", name, "--shard-count", "1", endpoint_flag=False, env=env)
    aws("wait", "stream-exists", "--stream-name", name, endpoint_flag=False, env=env)
    _, out, _ = aws("describe-stream-summary", "--stream-name", name, endpoint_flag=False, env=env)
    assert out["StreamDescriptionSummary"]["StreamARN"] == arn(name)
    aws("delete-stream", "--stream-name", name, endpoint_flag=False, env=env)
