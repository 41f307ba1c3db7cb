"""boto3 against the broker: the control plane of issue 5 (tags, retention, limits), including
bad input with AWS's exact error codes and messages.

Sources of the messages: kinesalite's tests, recorded against AWS (test/addTagsToStream.js,
test/increaseStreamRetentionPeriod.js, test/createStream.js), and compat-tests/AWS_BEHAVIOUR.md
(sections 2 and 4). Cases whose wording no source pins assert the error code only.
"""

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (
    ACCOUNT,
    REGION,
    arn,
    aws,
    cli_env,
    assert_error,
    endpoint,
    make_client,
    unique,
    wait_active,
    wait_deleted,
)

INVALID_TAG_CHARS = (
    "Some tags contain invalid characters. Valid characters: "
    "Unicode letters, digits, white space, _ . / = + - % @."
)


def percent_message(name):
    return (
        f"Failed to add tags to stream {name} under account {ACCOUNT} because some tags contained "
        "illegal characters. The allowed characters are Unicode letters, white-spaces, "
        "'_',',','/','=','+','-','@'."
    )


def limit_message(account, current, additional, limit=500):
    return (
        f"This request would exceed the shard limit for the account {account} in {REGION}. "
        f"Current shard count for the account: {current}. Limit: {limit}. "
        f"Number of additional shards that would have resulted from this request: {additional}. "
        "Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) "
        "for current limits and how to request higher limits."
    )


def validation(value, member, constraint):
    return f"1 validation error detected: Value {value} at '{member}' failed to satisfy constraint: {constraint}"


def no_retry_client(access_key):
    """botocore's standard retry mode treats LimitExceededException as throttling and retries
    it with back-off (about a minute for 10 attempts); the limit test wants the first answer."""
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint(),
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key="dummy-secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60),
    )


def pairs(tags):
    return [(t["Key"], t["Value"]) for t in tags]


# ---- tags ------------------------------------------------------------------------------


def test_tags_are_added_listed_in_pages_and_removed(kinesis, make_stream):
    name = make_stream(1)
    kinesis.add_tags_to_stream(StreamName=name, Tags={"b": "2", "a": "1", "ü0 _.": "x", "/=+-@:": "", "c": "3"})
    out = kinesis.list_tags_for_stream(StreamName=name)
    assert pairs(out["Tags"]) == [("/=+-@:", ""), ("a", "1"), ("b", "2"), ("c", "3"), ("ü0 _.", "x")]
    assert out["HasMoreTags"] is False

    page = kinesis.list_tags_for_stream(StreamName=name, Limit=2)
    assert pairs(page["Tags"]) == [("/=+-@:", ""), ("a", "1")]
    assert page["HasMoreTags"] is True
    page = kinesis.list_tags_for_stream(StreamName=name, ExclusiveStartTagKey="a", Limit=3)
    assert pairs(page["Tags"]) == [("b", "2"), ("c", "3"), ("ü0 _.", "x")]
    assert page["HasMoreTags"] is False

    kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "one"})
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["b", "ü0 _.", "never-there"])
    out = kinesis.list_tags_for_stream(StreamARN=arn(name))
    assert pairs(out["Tags"]) == [("/=+-@:", ""), ("a", "one"), ("c", "3")]


def test_tags_by_resource_arn_and_at_create_stream(kinesis):
    name = unique("born-tagged")
    kinesis.create_stream(StreamName=name, ShardCount=1, Tags={"team": "data", "env": "test"})
    try:
        wait_active(kinesis, name)
        res = arn(name)
        assert pairs(kinesis.list_tags_for_resource(ResourceARN=res)["Tags"]) == [("env", "test"), ("team", "data")]
        kinesis.tag_resource(ResourceARN=res, Tags={"cost": "42"})
        kinesis.untag_resource(ResourceARN=res, TagKeys=["env"])
        assert pairs(kinesis.list_tags_for_resource(ResourceARN=res)["Tags"]) == [("cost", "42"), ("team", "data")]
        assert pairs(kinesis.list_tags_for_stream(StreamName=name)["Tags"]) == [("cost", "42"), ("team", "data")]
    finally:
        kinesis.delete_stream(StreamName=name)


@pytest.mark.parametrize(
    "tags",
    [{"abc;def": "1"}, {"abc\tdef": "1"}, {"abc,def": "1"}, {"a": "abc;def"}, {"a": "abc\ndef"}],
    ids=["semicolon-key", "tab-key", "comma-key", "semicolon-value", "newline-value"],
)
def test_tags_with_invalid_characters_are_refused(kinesis, make_stream, tags):
    name = make_stream(1)
    with pytest.raises(ClientError) as e:
        kinesis.add_tags_to_stream(StreamName=name, Tags=tags)
    assert_error(e, "InvalidArgumentException", INVALID_TAG_CHARS)


@pytest.mark.parametrize("tags", [{"abc%def": "1"}, {"a": "abc%def"}], ids=["key", "value"])
def test_percent_in_tags_is_refused(kinesis, make_stream, tags):
    name = make_stream(1)
    with pytest.raises(ClientError) as e:
        kinesis.add_tags_to_stream(StreamName=name, Tags=tags)
    assert_error(e, "InvalidArgumentException", percent_message(name))


def test_more_than_fifty_tags_are_refused(kinesis, make_stream):
    name = make_stream(1)
    for chunk in range(5):
        kinesis.add_tags_to_stream(StreamName=name, Tags={f"k{chunk * 10 + i:02d}": "v" for i in range(10)})
    with pytest.raises(ClientError) as e:
        kinesis.add_tags_to_stream(StreamName=name, Tags={"k50": "v"})
    assert_error(
        e,
        "InvalidArgumentException",
        f"Failed to add tags to stream {name} under account {ACCOUNT} because a given stream cannot have "
        "more than 50 tags associated with it.",
    )
    assert len(kinesis.list_tags_for_stream(StreamName=name)["Tags"]) == 50


def test_tag_operations_on_an_unknown_stream(kinesis):
    name = unique("missing")
    for call in (
        lambda: kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "b"}),
        lambda: kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["a"]),
        lambda: kinesis.list_tags_for_stream(StreamName=name),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert_error(e, "ResourceNotFoundException", f"Stream {name} under account {ACCOUNT} not found.")
    with pytest.raises(ClientError) as e:
        kinesis.list_tags_for_resource(ResourceARN=arn(name))
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_tag_input_the_model_forbids(unvalidated, make_stream):
    """Sent past botocore's own checks, so the broker's ValidationException is what comes back
    (AWS_BEHAVIOUR.md section 2; kinesalite test/addTagsToStream.js 'long tag key')."""
    name = make_stream(1)
    with pytest.raises(ClientError) as e:
        unvalidated.list_tags_for_stream(StreamName=name, Limit=0)
    assert_error(e, "ValidationException", validation("'0'", "limit", "Member must have value greater than or equal to 1"))
    with pytest.raises(ClientError) as e:
        unvalidated.list_tags_for_stream(StreamName=name, Limit=51)
    assert_error(e, "ValidationException", validation("'51'", "limit", "Member must have value less than or equal to 50"))
    long_key = "k" * 129
    with pytest.raises(ClientError) as e:
        unvalidated.add_tags_to_stream(StreamName=name, Tags={long_key: "v"})
    assert_error(
        e,
        "ValidationException",
        validation(
            f"'{{{long_key}=v}}'",
            "tags",
            "Map keys must satisfy constraint: [Member must have length less than or equal to 128, "
            "Member must have length greater than or equal to 1]",
        ),
    )
    with pytest.raises(ClientError) as e:
        unvalidated.add_tags_to_stream(StreamName=name, Tags={})
    assert_error(e, "ValidationException", validation("'{}'", "tags", "Member must have length greater than or equal to 1"))
    with pytest.raises(ClientError) as e:
        unvalidated.remove_tags_from_stream(StreamName=name, TagKeys=[])
    assert_error(e, "ValidationException", validation("'[]'", "tagKeys", "Member must have length greater than or equal to 1"))


# ---- retention -------------------------------------------------------------------------


def retention(client, name):
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"]


def test_retention_increase_and_decrease(kinesis, make_stream):
    name = make_stream(1)
    assert retention(kinesis, name) == 24
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8760)
    assert retention(kinesis, name) == 8760
    kinesis.decrease_stream_retention_period(StreamARN=arn(name), RetentionPeriodHours=48)
    assert retention(kinesis, name) == 48
    assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["RetentionPeriodHours"] == 48
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    assert retention(kinesis, name) == 24


@pytest.mark.parametrize(
    "op,hours,message",
    [
        ("increase", 23, "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."),
        ("decrease", 1, "Minimum allowed retention period is 24 hours. Requested retention period (1 hours) is too short."),
        ("increase", 8761, "Maximum allowed retention period is 8760 hours. Requested retention period (8761 hours) is too long."),
        ("decrease", 100000, "Maximum allowed retention period is 8760 hours. Requested retention period (100000 hours) is too long."),
    ],
)
def test_retention_outside_24_to_8760_hours(kinesis, make_stream, op, hours, message):
    name = make_stream(1)
    call = kinesis.increase_stream_retention_period if op == "increase" else kinesis.decrease_stream_retention_period
    with pytest.raises(ClientError) as e:
        call(StreamName=name, RetentionPeriodHours=hours)
    assert_error(e, "InvalidArgumentException", message)
    assert retention(kinesis, name) == 24


def test_retention_changed_in_the_wrong_direction(kinesis, make_stream):
    name = make_stream(1)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    with pytest.raises(ClientError) as e:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=36)
    assert_error(
        e,
        "InvalidArgumentException",
        f"Requested retention period (36 hours) for stream {name} can not be shorter than existing retention "
        "period (48 hours). Use DecreaseRetentionPeriod API.",
    )
    with pytest.raises(ClientError) as e:
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    assert_error(
        e,
        "InvalidArgumentException",
        f"Requested retention period (72 hours) for stream {name} can not be longer than existing retention "
        "period (48 hours). Use IncreaseRetentionPeriod API.",
    )
    assert retention(kinesis, name) == 48


def test_retention_of_an_unknown_stream_and_without_hours(kinesis, unvalidated):
    name = unique("missing")
    with pytest.raises(ClientError) as e:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=25)
    assert_error(e, "ResourceNotFoundException", f"Stream {name} under account {ACCOUNT} not found.")
    with pytest.raises(ClientError) as e:
        unvalidated.decrease_stream_retention_period(StreamName=name)
    assert_error(e, "ValidationException", validation("null", "retentionPeriodHours", "Member must not be null"))


# ---- limits ----------------------------------------------------------------------------


def test_describe_limits_and_the_shard_limit_in_a_fresh_account(kinesis):
    """A 12-digit access key is its own account (AWS_BEHAVIOUR.md section 3), so the counts do
    not depend on the streams other suites create."""
    import uuid

    account = str(100000000000 + uuid.uuid4().int % 800000000000)
    client = no_retry_client(account)
    # DescribeLimits allows 1 call per second per account (AWS's documented rate); this
    # client retries throttling as the SDK does by default.
    retrying = make_client(access_key=account)
    limits = retrying.describe_limits()
    assert (
        limits["ShardLimit"],
        limits["OpenShardCount"],
        limits["OnDemandStreamCount"],
        limits["OnDemandStreamCountLimit"],
    ) == (500, 0, 0, 50)

    name = unique("counted")
    client.create_stream(StreamName=name, ShardCount=3)
    wait_active(client, name)
    od = unique("od")
    client.create_stream(StreamName=od, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(client, od)
    limits = retrying.describe_limits()
    assert (limits["OpenShardCount"], limits["OnDemandStreamCount"]) == (7, 1)

    # AWS_BEHAVIOUR.md section 4 (kinesalite test/createStream.js 'should return
    # LimitExceededException for large ShardCount').
    with pytest.raises(ClientError) as e:
        client.create_stream(StreamName=unique("huge"), ShardCount=494)
    assert_error(e, "LimitExceededException", limit_message(account, 7, 494))
    with pytest.raises(ClientError) as e:
        client.create_stream(StreamName=unique("huge"), ShardCount=100000)
    assert_error(e, "LimitExceededException", limit_message(account, 7, 100000))

    client.delete_stream(StreamName=name)
    client.delete_stream(StreamName=od)
    wait_deleted(client, name)
    wait_deleted(client, od)
    limits = retrying.describe_limits()
    assert (limits["OpenShardCount"], limits["OnDemandStreamCount"]) == (0, 0)


# ---- the AWS CLI -----------------------------------------------------------------------


def test_cli_tags_retention_and_their_errors():
    name = unique("clitags")
    aws("create-stream", "--stream-name", name, "--shard-count", "1")
    aws("wait", "stream-exists", "--stream-name", name)
    try:
        aws("add-tags-to-stream", "--stream-name", name, "--tags", "team=data,env=test")
        _, out, _ = aws("list-tags-for-stream", "--stream-name", name)
        assert pairs(out["Tags"]) == [("env", "test"), ("team", "data")]
        aws("remove-tags-from-stream", "--stream-name", name, "--tag-keys", "env")
        _, out, _ = aws("list-tags-for-stream", "--stream-name", name)
        assert pairs(out["Tags"]) == [("team", "data")]

        code, _, err = aws("add-tags-to-stream", "--stream-name", name, "--tags", '{"a,b": "1"}', check=False)
        assert code != 0
        assert "(InvalidArgumentException)" in err and err.strip().endswith(": " + INVALID_TAG_CHARS), err

        aws("increase-stream-retention-period", "--stream-name", name, "--retention-period-hours", "48")
        _, out, _ = aws("describe-stream-summary", "--stream-name", name)
        assert out["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
        code, _, err = aws(
            "decrease-stream-retention-period", "--stream-name", name, "--retention-period-hours", "23", check=False
        )
        assert code != 0
        assert "(InvalidArgumentException)" in err and err.strip().endswith(
            ": Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."
        ), err
        # In an account of its own: DescribeLimits allows one call per second per account,
        # and the CLI here does not retry.
        _, limits, _ = aws("describe-limits", env=cli_env(AWS_ACCESS_KEY_ID="210987654321"))
        assert (limits["ShardLimit"], limits["OpenShardCount"]) == (500, 0)
    finally:
        aws("delete-stream", "--stream-name", name)
