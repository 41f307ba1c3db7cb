"""The web console (/console) in a real browser: headless Chromium driven through chromedriver
(Selenium), against the broker compat-tests/run started, with data put there by boto3.

Chromium and chromedriver are Debian's (`chromium`, `chromium-driver`); compat-tests/run
installs them when absent. Screenshots go to compat-tests/artifacts/console/.

The console signs its requests with SigV4 in the browser; the signer is checked here against
AWS's published SigV4 test suite and against an independent Python implementation.
"""

import datetime
import gzip
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from channel_support import Broker, s3_client
from conftest import MAX_POLLS, endpoint, free_port, make_client, unique, wait_active

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "console"
# An account of its own: the console must show its streams and no one else's.
ACCOUNT = "111122223333"
WAIT_S = 15  # bound on every wait for the page; never an assertion about speed

JSON_RECORD = {"order": 17, "items": ["a", "b"], "note": "caf\u00e9"}
BINARY_RECORD = bytes([0x00, 0x01, 0xFF, 0x41])
HOSTILE_RECORDS = [
    '<img src=x onerror="window.__xss = (window.__xss || 0) + 1">',
    "</script><script>window.__xss = (window.__xss || 0) + 1</script>",
    '<svg onload="window.__xss = (window.__xss || 0) + 1"></svg>',
]
HOSTILE_KEY = '"><img src=y onerror="window.__xss=99">'


def find_binary(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    chromium = find_binary("chromium", "chromium-browser")
    driver_path = find_binary("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromedriver are required: compat-tests/run installs them (apt-get install chromium chromium-driver)")
    # Selenium must use the drivers above and never look for others on the network.
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def client():
    return make_client(access_key=ACCOUNT)


def put(client, stream, data, key="pk"):
    return client.put_record(StreamName=stream, PartitionKey=key, Data=data)


@pytest.fixture(scope="module")
def data(client):
    """Streams in the console's account: one with text, JSON, binary and hostile records and a
    consumer, one split into two children; and one in another account, which must not show."""
    records_stream = unique("console-records")
    split_stream = unique("console-split")
    elsewhere = unique("console-elsewhere")
    other = make_client()  # the default account
    client.create_stream(StreamName=records_stream, ShardCount=1)
    client.create_stream(StreamName=split_stream, ShardCount=1)
    other.create_stream(StreamName=elsewhere, ShardCount=1)
    for c, name in ((client, records_stream), (client, split_stream), (other, elsewhere)):
        wait_active(c, name)

    payloads = [
        (b"hello console", "text"),
        (json.dumps(JSON_RECORD).encode(), "json"),
        (BINARY_RECORD, "binary"),
        *((h.encode(), HOSTILE_KEY) for h in HOSTILE_RECORDS),
    ]
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    sequences = [put(client, records_stream, payload, key)["SequenceNumber"] for payload, key in payloads]
    arn = client.describe_stream_summary(StreamName=records_stream)["StreamDescriptionSummary"]["StreamARN"]
    consumer = unique("console-consumer")
    client.register_stream_consumer(StreamARN=arn, ConsumerName=consumer)

    # A queue (on-demand streams only) and an event-source mapping (to a declared function
    # no runtime serves: the mapping exists, nothing is delivered).
    queued_stream = unique("console-queued")
    client.create_stream(StreamName=queued_stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(client, queued_stream)
    queued_arn = client.describe_stream_summary(StreamName=queued_stream)["StreamDescriptionSummary"]["StreamARN"]
    queue = unique("console-queue")
    queue_arn = client.create_queue(QueueName=queue, StreamConfigurationList=[{"StreamARN": queued_arn}])["QueueDescription"]["QueueARN"]
    function = unique("console-fn")
    admin("PUT", f"/_broker/functions/{function}", {"url": f"runtime://127.0.0.1:{free_port()}"})
    lam = lambda_client()
    mapping = lam.create_event_source_mapping(FunctionName=function, EventSourceArn=arn, StartingPosition="LATEST")["UUID"]

    shard = client.list_shards(StreamName=split_stream)["Shards"][0]
    put(client, split_stream, b"before the split")
    client.split_shard(StreamName=split_stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str(2**127))
    wait_active(client, split_stream)

    yield {
        "records_stream": records_stream,
        "records_arn": arn,
        "split_stream": split_stream,
        "split_parent": shard["ShardId"],
        "elsewhere": elsewhere,
        "payloads": payloads,
        "sequences": sequences,
        "before": before,
        "consumer": consumer,
        "queued_stream": queued_stream,
        "queue": queue,
        "mapping": mapping,
    }
    try:
        lam.delete_event_source_mapping(UUID=mapping)
        client.delete_queue(QueueARN=queue_arn)
    except ClientError:
        pass
    for c, name in ((client, records_stream), (client, split_stream), (client, queued_stream), (other, elsewhere)):
        try:
            c.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except ClientError:
            pass
    # The function goes once its mapping is gone (409 while a mapping still uses it).
    for _ in range(MAX_POLLS):
        if admin("DELETE", f"/_broker/functions/{function}", None, check=False) != 409:
            break
        time.sleep(0.05)


def admin(method, path, body, check=True):
    request = urllib.request.Request(
        endpoint() + path, method=method, data=None if body is None else json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        if check:
            raise AssertionError(f"{method} {path}: {e.code} {e.read()!r}") from e
        return e.code


def lambda_client():
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=endpoint(),
        region_name="us-east-1",
        aws_access_key_id=ACCOUNT,
        aws_secret_access_key="console-secret",
        config=Config(retries={"max_attempts": 1}),
    )


def wait_for(driver, condition, what):
    """Polls `condition(driver)` until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + WAIT_S
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
            if value:
                return value
        except Exception as e:  # the page is still being built
            last_error = e
        time.sleep(0.1)
    screenshot(driver, "timeout")
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


def screenshot(driver, name):
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def csp_violations(driver):
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def sign_in(driver, access_key, url=None):
    driver.get(f"{url or endpoint()}/console#/signin")
    wait_for(driver, lambda d: css(d, "#signin"), "the sign-in form")
    for field, value in (("accessKeyId", access_key), ("secretAccessKey", "console-secret"), ("region", "us-east-1")):
        box = css(driver, f"#signin-{field}")[0]
        box.clear()
        box.send_keys(value)
    css(driver, "#signin button[type=submit]")[0].click()
    wait_for(driver, lambda d: d.current_url.endswith("#/streams"), "the streams page")


# --- SigV4 in the browser ---------------------------------------------------------------

SUITE_CREDENTIALS = {"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
# AWS's SigV4 test suite (get-vanilla, post-vanilla, get-vanilla-query-order-key-case):
# host example.amazonaws.com, 2015-08-30T12:36:00Z, region us-east-1, service "service".
SUITE = [
    ("GET", [], "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("POST", [], "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("GET", [["Param2", "value2"], ["Param1", "value1"]], "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
]

BROWSER_SIGN = """
const [method, query, headers, body, credentials, service, when] = arguments;
return KBSigV4.sign({method, host: 'example.amazonaws.com', path: '/', query, headers, body,
                     credentials, region: 'us-east-1', service, date: new Date(when)});
"""


def python_sigv4(method, headers, body, secret, region, service, stamp):
    """SigV4 of a request to / with no query, written independently of the console's."""
    canonical_headers = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    names = sorted(canonical_headers)
    canonical = "\n".join(
        [method, "/", "", "".join(f"{n}:{canonical_headers[n]}\n" for n in names), ";".join(names), hashlib.sha256(body).hexdigest()]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_the_browser_signer_matches_aws_test_suite_and_an_independent_signer(browser):
    browser.get(f"{endpoint()}/console")
    wait_for(browser, lambda d: js(d, "return typeof KBSigV4 === 'object'"), "the signer to load")
    when = "2015-08-30T12:36:00Z"
    for method, query, want in SUITE:
        signed = js(browser, BROWSER_SIGN, method, query, {}, "", SUITE_CREDENTIALS, "service", when)
        assert signed["signature"] == want, (method, query, signed["canonicalRequest"])
        assert signed["headers"]["authorization"] == (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={want}"
        )

    # A Kinesis request with a multi-byte body (the hash covers UTF-8 bytes, not characters)
    # and a body longer than one SHA-256 block.
    body = json.dumps({"StreamName": "caf\u00e9-\u4e2d\u6587", "Data": "x" * 300}, ensure_ascii=False)
    headers = {"content-type": "application/x-amz-json-1.1", "x-amz-target": "Kinesis_20131202.PutRecord"}
    signed = js(browser, BROWSER_SIGN, "POST", [], headers, body, {"accessKeyId": ACCOUNT, "secretAccessKey": "s3cr\u00e9t"}, "kinesis", "2026-12-06T20:00:00Z")
    want = python_sigv4(
        "POST",
        {**headers, "host": "example.amazonaws.com", "x-amz-date": "20261206T200000Z"},
        body.encode(),
        "s3cr\u00e9t",
        "us-east-1",
        "kinesis",
        "20261206T200000Z",
    )
    assert signed["signature"] == want, signed["canonicalRequest"]


# --- the pages --------------------------------------------------------------------------


def stream_row(driver, name):
    rows = css(driver, f'#streams tr[data-stream="{name}"]')
    return rows[0] if rows else None


def test_stream_list_shows_the_account_of_the_credentials(browser, data):
    sign_in(browser, ACCOUNT)
    row = wait_for(browser, lambda d: stream_row(d, data["records_stream"]), "the records stream in the list")
    wait_for(browser, lambda d: stream_row(d, data["split_stream"]).find_elements("css selector", "td")[3].text == "2", "the split stream's open shards")
    cells = [td.text for td in row.find_elements("css selector", "td")]
    assert cells == [data["records_stream"], "ACTIVE", "PROVISIONED", "1", "24 h", "NONE"], cells
    assert stream_row(browser, data["elsewhere"]) is None, "a stream of another account is listed"
    assert ACCOUNT in css(browser, "#who")[0].text
    screenshot(browser, "streams")

    # Signed in with another account's key, the same console shows that account's streams.
    sign_in(browser, "AKIDEXAMPLE")
    wait_for(browser, lambda d: stream_row(d, data["elsewhere"]), "the other account's stream")
    assert stream_row(browser, data["records_stream"]) is None
    sign_in(browser, ACCOUNT)
    wait_for(browser, lambda d: stream_row(d, data["records_stream"]), "the records stream again")


def test_shard_tree_after_a_split(browser, data):
    sign_in(browser, ACCOUNT)
    wait_for(browser, lambda d: stream_row(d, data["split_stream"]), "the split stream")
    stream_row(browser, data["split_stream"]).find_element("css selector", "a").click()
    parent = data["split_parent"]
    tree = wait_for(
        browser,
        lambda d: js(
            d,
            """const parent = document.querySelector(`#shard-tree > li[data-shard="${arguments[0]}"]`);
               if (!parent) return null;
               return {state: parent.dataset.state,
                       children: [...parent.querySelectorAll(':scope > ul > li')].map(li => [li.dataset.shard, li.dataset.state, li.querySelector('.range').textContent])};""",
            parent,
        ),
        "the shard tree",
    )
    assert tree["state"] == "Closed", tree
    assert [(c[0], c[1]) for c in tree["children"]] == [("shardId-000000000001", "Open"), ("shardId-000000000002", "Open")], tree
    assert tree["children"][0][2].startswith("0% – 50%"), tree
    assert tree["children"][1][2].startswith("50% – 100%"), tree
    assert str(2**127) in tree["children"][1][2], tree
    screenshot(browser, "shard-tree")


CHART_STATE = """
const c = document.getElementById(arguments[0]);
// Pixels of the "in" series' colour (#1f77b4) below the legend: the line and its points.
const px = c.getContext('2d').getImageData(0, 24, c.width, c.height - 24).data;
let painted = 0;
for (let i = 0; i < px.length; i += 4) if (px[i] === 31 && px[i + 1] === 119 && px[i + 2] === 180) painted++;
return {points: Number(c.dataset.points || 0), total: Number(c.dataset.total || 0), painted};
"""


def test_stream_page_charts_throughput_and_lists_readers(browser, data, client):
    sign_in(browser, ACCOUNT)
    js(browser, "location.hash = arguments[0];", f"#/stream/{data['records_stream']}")
    wait_for(browser, lambda d: css(d, "#charts-note")[0].text, "the throughput figures")
    note = css(browser, "#charts-note")[0]
    assert "error" not in note.get_attribute("class"), note.text
    # The records written above, in at least two 5-second points of both series: a line.
    first = wait_for(
        browser,
        lambda d: (lambda s: s if s["points"] >= 4 and s["total"] > 0 else None)(js(d, CHART_STATE, "chart-records")),
        "two points with the records written on the records chart",
    )
    assert first["painted"] > 20, first
    bytes_chart = js(browser, CHART_STATE, "chart-bytes")
    assert bytes_chart["total"] > 0, bytes_chart

    # More writes show up at the next poll.
    for i in range(20):
        put(client, data["records_stream"], f"more {i}".encode())
    deadline = time.monotonic() + 3 * WAIT_S  # the 5 s sampler, then the 5 s poll
    while time.monotonic() < deadline:
        later = js(browser, CHART_STATE, "chart-records")
        if later["total"] > first["total"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the chart did not grow after 20 more records: {first} then {later}")

    consumer = wait_for(browser, lambda d: css(d, f'#consumers tr[data-reader="{data["consumer"]}"]'), "the consumer")[0]
    cells = [td.text for td in consumer.find_elements("css selector", "td")]
    assert cells[1] in ("CREATING", "ACTIVE"), cells
    mapping = wait_for(browser, lambda d: css(d, f'#mappings tr[data-reader="{data["mapping"]}"]'), "the event-source mapping")[0]
    cells = [td.text for td in mapping.find_elements("css selector", "td")]
    assert cells[1] in ("Creating", "Enabled"), cells
    screenshot(browser, "stream")

    js(browser, "location.hash = arguments[0];", f"#/stream/{data['queued_stream']}")
    queue = wait_for(browser, lambda d: css(d, f'#queues tr[data-reader="{data["queue"]}"]'), "the queue")[0]
    cells = [td.text for td in queue.find_elements("css selector", "td")]
    assert cells[1] in ("CREATING", "ACTIVE"), cells


@pytest.fixture(scope="module")
def channel_broker(s3_url):
    """A broker of this module's own, delivering channels to the moto S3 server: the shared
    broker has no --s3-endpoint, so its channels can only fail."""
    with tempfile.TemporaryDirectory() as d:
        broker = Broker(d, s3_url, 5 * 1024 * 1024).start()
        try:
            yield broker
        finally:
            if broker.proc.poll() is None:
                broker.kill()


def channel_cells(driver, channel):
    rows = css(driver, f'#channels tr[data-reader="{channel}"]')
    return [td.text for td in rows[0].find_elements("css selector", "td")] if rows else None


def test_stream_page_shows_a_channel_with_its_destination_and_lag(browser, channel_broker, s3_url):
    kinesis = make_client(url=channel_broker.url, access_key=ACCOUNT)
    s3 = s3_client(s3_url)
    bucket = unique("console-lake")
    s3.create_bucket(Bucket=bucket)
    stream = unique("console-delivered")
    kinesis.create_stream(StreamName=stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, stream)
    stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    channel = unique("console-channel")
    channel_arn = kinesis.create_channel(
        ChannelName=channel,
        ServiceExecutionRoleARN=f"arn:aws:iam::{ACCOUNT}:role/channel-writer",
        StreamConfigurationList=[{"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
        S3DestinationConfiguration={
            "StorageConfiguration": {"BucketARN": f"arn:aws:s3:::{bucket}", "ExpectedBucketOwner": ACCOUNT, "CompressionType": "GZIP"}
        },
    )["ChannelDescription"]["ChannelARN"]
    for _ in range(MAX_POLLS):
        if kinesis.describe_channel(ChannelARN=channel_arn)["ChannelDescription"]["ChannelStatus"] == "ACTIVE":
            break
        time.sleep(0.025)
    else:
        raise AssertionError("the channel never became ACTIVE")
    # A channel on another stream of the same broker, which this stream's page must not list.
    other_stream = unique("console-undelivered")
    kinesis.create_stream(StreamName=other_stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, other_stream)
    other_arn = kinesis.describe_stream_summary(StreamName=other_stream)["StreamDescriptionSummary"]["StreamARN"]
    other = unique("console-other-channel")
    kinesis.create_channel(
        ChannelName=other,
        ServiceExecutionRoleARN=f"arn:aws:iam::{ACCOUNT}:role/channel-writer",
        StreamConfigurationList=[{"StreamARN": other_arn, "RecordConfiguration": {"RecordFormatType": "STRING"}}],
        S3DestinationConfiguration={
            "StorageConfiguration": {"BucketARN": f"arn:aws:s3:::{bucket}", "ExpectedBucketOwner": ACCOUNT, "CompressionType": "NONE"}
        },
    )
    # Under the channel's 5 MiB and 300 s: nothing is written yet, all five records wait.
    records = [{"n": i} for i in range(5)]
    for record in records:
        kinesis.put_record(StreamName=stream, PartitionKey="one-shard", Data=json.dumps(record).encode())

    sign_in(browser, ACCOUNT, url=channel_broker.url)
    js(browser, "location.hash = arguments[0];", f"#/stream/{stream}")
    cells = wait_for(
        browser,
        lambda d: (lambda c: c if c and c[2].endswith("· 5 records") and c[6] else None)(channel_cells(d, channel)),
        "the channel with five records of lag and its destination",
    )
    name, status, lag, fmt, compression, destination, freshness, _since = cells
    assert (name, status, fmt, compression, freshness) == (channel, "ACTIVE", "JSON", "GZIP", "300 s"), cells
    assert re.fullmatch(r"\d+ ms · 5 records", lag), cells
    assert destination.startswith(f"s3://{bucket}/"), cells
    assert channel_cells(browser, other) is None, "a channel of another stream is listed"
    js(browser, "document.getElementById('channels').scrollIntoView();")
    screenshot(browser, "channel")

    # Past DataFreshnessInSeconds (the broker's clock moved on) the channel writes its
    # object; the page's next poll shows nothing left to deliver.
    channel_broker.advance_clock(301_000)
    cells = wait_for(
        browser,
        lambda d: (lambda c: c if c and c[2] == "0 ms · 0 records" else None)(channel_cells(d, channel)),
        "the channel caught up",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 1, keys
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    assert [json.loads(line) for line in body.decode().splitlines()] == records
    assert csp_violations(browser) == []


def read_page(driver, position, limit=25, sequence=None, when=None):
    from selenium.webdriver.support.ui import Select

    Select(css(driver, "#rb-position")[0]).select_by_value(position)
    js(driver, "document.getElementById('rb-limit').value = arguments[0];", str(limit))
    if sequence is not None:
        box = css(driver, "#rb-sequence")[0]
        box.clear()
        box.send_keys(sequence)
    if when is not None:
        js(driver, "document.getElementById('rb-time').value = arguments[0];", when)
    js(driver, "document.getElementById('rb-results').replaceChildren();")
    css(driver, "#rb-read")[0].click()
    return wait_rows(driver)


def wait_rows(driver):
    return wait_for(
        driver,
        lambda d: js(
            d,
            """const rows = [...document.querySelectorAll('#records tr.record')];
               return rows.length ? rows.map(r => ({seq: r.dataset.sequence,
                   key: r.querySelector('.partition-key').textContent,
                   data: r.querySelector('.record-data').textContent})) : null;""",
        ),
        "records in the browser",
    )


def choose_format(driver, name):
    css(driver, f"#rb-format-{name}")[0].click()
    return wait_rows(driver)


def test_record_browser_decodes_pages_and_keeps_hostile_data_inert(browser, data, client):
    sign_in(browser, ACCOUNT)
    browser.get(f"{endpoint()}/console#/stream/{data['records_stream']}/records")
    wait_for(browser, lambda d: css(d, "#rb-shard option"), "the shard list")
    sequences = data["sequences"]
    payloads = data["payloads"]

    # The records put by the fixture come first (the chart test may have added more after).
    rows = read_page(browser, "TRIM_HORIZON")[: len(sequences)]
    assert [r["seq"] for r in rows] == sequences
    assert rows[0]["data"] == "hello console"
    assert [r["key"] for r in rows[3:]] == [HOSTILE_KEY] * len(HOSTILE_RECORDS)
    assert [r["data"] for r in rows[3:]] == HOSTILE_RECORDS, "hostile data not shown literally"

    rows = choose_format(browser, "json")[: len(sequences)]
    assert rows[1]["data"] == json.dumps(JSON_RECORD, indent=2, ensure_ascii=False)
    assert rows[0]["data"] == "hello console"  # not JSON: shown as text, with a note
    rows = choose_format(browser, "hex")
    assert rows[2]["data"].startswith("00000000  00 01 ff 41"), rows[2]
    assert rows[0]["data"].startswith("00000000  68 65 6c 6c 6f 20"), rows[0]  # "hello "
    screenshot(browser, "records-hex")
    rows = choose_format(browser, "utf8")
    screenshot(browser, "records")

    # Nothing hostile ran or became markup, and the CSP had nothing to block.
    assert js(browser, "return window.__xss === undefined")
    assert js(browser, "return document.querySelectorAll('#records img, #records svg, #records script').length") == 0
    assert csp_violations(browser) == []

    # Paging: two records a page, forward through the shard, then back.
    first = read_page(browser, "TRIM_HORIZON", limit=2)
    assert [r["seq"] for r in first] == sequences[:2]
    css(browser, "#rb-newer")[0].click()
    wait_for(browser, lambda d: [r["seq"] for r in wait_rows(d)] == sequences[2:4], "the second page")
    css(browser, "#rb-older")[0].click()
    wait_for(browser, lambda d: [r["seq"] for r in wait_rows(d)] == sequences[:2], "the first page again")

    # Positions.
    rows = read_page(browser, "AT_SEQUENCE_NUMBER", sequence=sequences[2])
    assert [r["seq"] for r in rows][:4] == sequences[2:]
    rows = read_page(browser, "AFTER_SEQUENCE_NUMBER", sequence=sequences[2])
    assert [r["seq"] for r in rows][:3] == sequences[3:]
    js(browser, "document.getElementById('rb-results').replaceChildren();")
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "#rb-position")[0]).select_by_value("LATEST")
    css(browser, "#rb-read")[0].click()
    read_page_empty = wait_for(browser, lambda d: css(d, "#rb-results p")[0].text, "an empty page at LATEST")
    assert read_page_empty == "No records (at the tip of the shard).", read_page_empty
    local = data["before"].astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    rows = read_page(browser, "AT_TIMESTAMP", when=local)
    assert [r["seq"] for r in rows][: len(sequences)] == sequences

    # Putting a record from the console; boto3 reads it back.
    text = "from the console \u2713 <b>not bold</b>"
    key_box, data_box = css(browser, "#put-key")[0], css(browser, "#put-data")[0]
    key_box.clear()
    key_box.send_keys("console-key")
    data_box.send_keys(text)
    css(browser, "#put-send")[0].click()
    result = wait_for(browser, lambda d: js(d, "return document.getElementById('put-result').dataset.sequence || null"), "the put's sequence number")
    it = client.get_shard_iterator(
        StreamName=data["records_stream"], ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=result
    )["ShardIterator"]
    record = client.get_records(ShardIterator=it, Limit=1)["Records"][0]
    assert record["Data"] == text.encode() and record["PartitionKey"] == "console-key"
    rows = read_page(browser, "AT_SEQUENCE_NUMBER", sequence=result)
    assert rows[0]["data"] == text
    assert js(browser, "return document.querySelectorAll('#records b').length") == 0
    assert js(browser, "return window.__xss === undefined")
    screenshot(browser, "put")


def test_console_assets_are_served_with_a_strict_csp():
    with urllib.request.urlopen(f"{endpoint()}/console/", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'self';")
        assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{endpoint()}/console/nothing-here.js", timeout=10)
    assert missing.value.code == 404
