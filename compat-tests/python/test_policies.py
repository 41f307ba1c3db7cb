"""Accounts and resource policies (issue 20) with boto3 and the AWS CLI: two accounts
(access keys 111111111111 and 222222222222) are isolated by default, a stream policy can
grant the other account reads, and an explicit Deny overrides an Allow.

Expected answers and sources: compat-tests/AWS_BEHAVIOUR.md, "Accounts and resource policies".
"""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import (
    REGION,
    aws,
    arn,
    assert_error,
    cli_env,
    make_client,
    read_to_tip,
    shard_id,
    unique,
    wait_active,
)

OWNER = "111111111111"
READER = "222222222222"


def no_policy_allows(action, resource):
    return (
        f"User: arn:aws:iam::{READER}:root is not authorized to perform: kinesis:{action} "
        f"on resource: {resource} because no resource-based policy allows the kinesis:{action} action"
    )


def explicit_deny(action, resource):
    return (
        f"User: arn:aws:iam::{READER}:root is not authorized to perform: kinesis:{action} "
        f"on resource: {resource} with an explicit deny in a resource-based policy"
    )


@pytest.fixture
def accounts():
    owner = make_client(access_key=OWNER)
    reader = make_client(access_key=READER)
    name = unique("pol")
    owner.create_stream(StreamName=name, ShardCount=1)
    wait_active(owner, name)
    owner.put_record(StreamName=name, PartitionKey="k", Data=b"shared data")
    yield owner, reader, name, arn(name, account=OWNER)
    owner.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def grant_reads(resource):
    return {
        "Sid": "reads",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{READER}:root"},
        "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStreamSummary"],
        "Resource": resource,
    }


def reader_cli(*args, check=False):
    env = cli_env(AWS_ACCESS_KEY_ID=READER)
    return aws(*args, env=env, check=check)


def test_accounts_are_isolated_by_default(accounts):
    owner, reader, name, stream_arn = accounts
    with pytest.raises(ClientError) as e:
        reader.describe_stream_summary(StreamName=name)
    assert_error(e, "ResourceNotFoundException", f"Stream {name} under account {READER} not found.")
    assert name not in reader.list_streams()["StreamNames"]
    with pytest.raises(ClientError) as e:
        reader.describe_stream_summary(StreamARN=stream_arn)
    assert_error(e, "AccessDeniedException", no_policy_allows("DescribeStreamSummary", stream_arn))
    with pytest.raises(ClientError) as e:
        reader.get_shard_iterator(StreamARN=stream_arn, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
    assert_error(e, "AccessDeniedException", no_policy_allows("GetShardIterator", stream_arn))

    code, _, err = reader_cli("describe-stream-summary", "--stream-arn", stream_arn)
    assert code != 0
    assert (
        "An error occurred (AccessDeniedException) when calling the DescribeStreamSummary operation: "
        + no_policy_allows("DescribeStreamSummary", stream_arn)
    ) in err


def test_a_policy_grants_reads_to_the_other_account(accounts):
    owner, reader, name, stream_arn = accounts
    owner.put_resource_policy(ResourceARN=stream_arn, Policy=policy(grant_reads(stream_arn)))

    summary = reader.describe_stream_summary(StreamARN=stream_arn)["StreamDescriptionSummary"]
    assert summary["StreamARN"] == stream_arn
    it = reader.get_shard_iterator(StreamARN=stream_arn, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    assert [r["Data"] for r in read_to_tip(reader, it)] == [b"shared data"]

    # The AWS CLI reads with the iterator it gets for the shared stream too.
    _, out, _ = reader_cli(
        "get-shard-iterator",
        "--stream-arn", stream_arn,
        "--shard-id", shard_id(0),
        "--shard-iterator-type", "TRIM_HORIZON",
        check=True,
    )
    _, records, _ = reader_cli("get-records", "--shard-iterator", out["ShardIterator"], check=True)
    assert len(records["Records"]) == 1

    # Writing was not granted.
    with pytest.raises(ClientError) as e:
        reader.put_record(StreamARN=stream_arn, PartitionKey="k", Data=b"x")
    assert_error(e, "AccessDeniedException", no_policy_allows("PutRecord", stream_arn))


def test_an_explicit_deny_overrides_an_allow(accounts):
    owner, reader, name, stream_arn = accounts
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": READER},
        "Action": "kinesis:Get*",
        "Resource": stream_arn,
    }
    # Put with the CLI: the owner's policy is attached the same way.
    aws(
        "put-resource-policy",
        "--resource-arn", stream_arn,
        "--policy", policy(grant_reads(stream_arn), deny),
        env=cli_env(AWS_ACCESS_KEY_ID=OWNER),
    )
    reader.describe_stream_summary(StreamARN=stream_arn)
    with pytest.raises(ClientError) as e:
        reader.get_shard_iterator(StreamARN=stream_arn, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
    assert_error(e, "AccessDeniedException", explicit_deny("GetShardIterator", stream_arn))
    code, _, err = reader_cli(
        "get-shard-iterator",
        "--stream-arn", stream_arn,
        "--shard-id", shard_id(0),
        "--shard-iterator-type", "LATEST",
    )
    assert code != 0 and "with an explicit deny in a resource-based policy" in err, err
    # The owner is not bound by its own resource policy.
    owner.get_shard_iterator(StreamARN=stream_arn, ShardId=shard_id(0), ShardIteratorType="LATEST")


def test_a_bad_policy_is_refused_and_changes_nothing(accounts):
    owner, _reader, _name, stream_arn = accounts
    good = policy(grant_reads(stream_arn))
    owner.put_resource_policy(ResourceARN=stream_arn, Policy=good)
    other = arn("someone-else", account=OWNER, region=REGION)
    for bad in ["{not json", policy(grant_reads(other))]:
        with pytest.raises(ClientError) as e:
            owner.put_resource_policy(ResourceARN=stream_arn, Policy=bad)
        err = e.value.response["Error"]
        assert err["Code"] == "InvalidArgumentException"
        assert err["Message"].startswith("Invalid resource policy document: ")
    assert owner.get_resource_policy(ResourceARN=stream_arn)["Policy"] == good
