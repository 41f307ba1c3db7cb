#!/usr/bin/env python3
"""Channel throughput (issue 22): a 4-shard ON_DEMAND stream delivered to S3 as GZIP JSON
objects, beside the PutRecords rate measured in the same run.

Per S3 target (`--s3 moto`, `null` or both), with a fresh release broker pointed at it,
after `--warm-up` seconds of PutRecords that are not recorded:

  (a) PutRecords at full speed, 1 KiB JSON records (`kinesis-loadgen put-records --payload
      json`) on a 4-shard on-demand stream with no channel: the rate R;
  (c) the same producer paced at `--fraction` x R for `--duration` on another such stream,
      still with no channel: the broker's CPU for ingesting alone at that rate;
  (b) the same paced producer on a stream with a GZIP JSON channel: records/s landed (the
      channel's durable cursor, sampled every second, and at the end every object read back
      from moto and its lines counted), the delivery lag over time (records acknowledged by
      the stream minus records the channel has written), the broker's CPU and the S3
      server's CPU. The channel keeps up when everything written is delivered within
      `--catch-up` seconds of the producer stopping (a channel delivering 15% slower than
      the producer over 30 s would be 4.5 s behind at that point), except each shard's
      last, partial object: it waits for DataFreshnessInSeconds (300 s at least), so
      "delivered" means at most one object's worth of records per shard left
      (`--buffer-bytes` / 1 KiB per shard; the residue is reported).

The null S3 server is this script in another process (`--serve-null-s3 PORT`): it accepts
every PUT, reading and discarding the body, so the broker's own delivery cost shows when
moto (Python, one request at a time per thread) is the slower side.

Needs the release broker (`cargo build --release`), the load generator (`cargo bench --no-run
--bench kinesis-loadgen`), and boto3 + moto from compat-tests/.venv (`compat-tests/run`
builds it). Everything listens on 127.0.0.1; every wait is bounded. One JSON line per S3
target goes to `--out` (default benches/results-channels.jsonl) and a summary to stdout.

    compat-tests/.venv/bin/python benches/channels.py --s3 moto,null --duration 30
"""

import argparse
import glob
import gzip
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT = "000000000000"
REGION = "us-east-1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SHARDS = 4
RECORD_BYTES = 1024


# ---------------------------------------------------------------------------------------
# Null S3: accepts PUTs, keeps nothing.

class NullS3(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    objects = 0
    body_bytes = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        return length - left

    def _answer(self, status, body=b"", extra=()):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_PUT(self):
        n = self._read_body()
        if self.path.count("/") >= 2:
            with NullS3.lock:
                NullS3.objects += 1
                NullS3.body_bytes += n
        self._answer(200, extra=[("ETag", '"00000000000000000000000000000000"')])

    def do_HEAD(self):
        self._answer(200)

    def do_GET(self):
        if self.path == "/_null/stats":
            with NullS3.lock:
                body = json.dumps({"objects": NullS3.objects, "bytes": NullS3.body_bytes}).encode()
            self._answer(200, body, [("Content-Type", "application/json")])
        else:
            self._answer(404)


def serve_null_s3(port):
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    Server(("127.0.0.1", port), NullS3).serve_forever()


# ---------------------------------------------------------------------------------------
# Processes

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what}: nothing listens on {port} after {timeout} s")


def cpu_s(pid):
    """User + system CPU seconds of a process (all its threads) from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def busy_processes(seconds=2.0, threshold=10.0):
    """Processes above `threshold`% of one core over `seconds`, by name."""
    def snap():
        out = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                c = cpu_s(d)
                if c is not None:
                    out[d] = c
        return out

    a = snap()
    time.sleep(seconds)
    b = snap()
    busy = []
    for pid, c in b.items():
        used = (c - a.get(pid, c)) / seconds * 100
        if used >= threshold:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                name = "?"
            busy.append((round(used), name, int(pid)))
    return sorted(busy, reverse=True)


def loadgen_path():
    out = subprocess.run(["cargo", "bench", "--no-run", "--bench", "kinesis-loadgen"],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    m = re.search(r"\((\S*kinesis_loadgen-[0-9a-f]+)\)", out.stderr)
    if out.returncode != 0 or not m:
        raise SystemExit(f"cargo bench --no-run failed:\n{out.stderr[-3000:]}")
    path = m.group(1)
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


class Broker:
    def __init__(self, binary, data_dir, s3_url, buffer_bytes):
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(data_dir, "broker.log"), "ab")
        env = dict(os.environ)
        env.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "dummy-secret")
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", os.path.join(data_dir, "data"),
             "--create-stream-delay-ms", "0", "--delete-stream-delay-ms", "0",
             "--update-stream-delay-ms", "0", "--throughput-limits", "off",
             # The runs stay on the 4 initial shards: no autoscaler split mid-run.
             "--on-demand-scale-interval-ms", "86400000",
             "--s3-endpoint", s3_url, "--channel-buffer-bytes", str(buffer_bytes)],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_port(self.port, self.proc, "kinesis-broker")
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/ready", timeout=5).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("kinesis-broker never became ready")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.log.close()

    def incoming_records(self, stream):
        """Records the stream acknowledged, from /metrics."""
        text = urllib.request.urlopen(f"{self.url}/metrics", timeout=10).read().decode()
        total = 0.0
        for line in text.splitlines():
            name = line.split("{", 1)[0]
            if name in ("kinesis_incoming_records", "kinesis_incoming_records_total") and f'stream="{stream}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def channel_cursor(self):
        """The channel's durable state (storage::MetaStore: 12-byte header, then JSON)."""
        files = glob.glob(os.path.join(self.data_dir, "data", "channels", "*.json"))
        for _ in range(20):
            try:
                with open(files[0], "rb") as f:
                    return json.loads(f.read()[12:])["cursor"]
            except (OSError, ValueError, IndexError, KeyError):
                time.sleep(0.01)
        return None


def clients(broker_url, s3_url):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="dummy-secret",
                                    region_name=REGION)
    cfg = Config(retries={"max_attempts": 3}, read_timeout=60, connect_timeout=10)
    kinesis = session.client("kinesis", endpoint_url=broker_url, config=cfg)
    s3 = session.client("s3", endpoint_url=s3_url,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                                      read_timeout=300))
    return kinesis, s3


def on_demand_stream(kinesis, name):
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    for _ in range(600):
        d = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if d["StreamStatus"] == "ACTIVE":
            assert d["OpenShardCount"] == SHARDS, d
            return d["StreamARN"]
        time.sleep(0.05)
    raise SystemExit(f"stream {name} never ACTIVE")


def run_loadgen(loadgen, broker, stream, extra, label, out_path):
    cmd = [loadgen, "put-records", "--endpoint", broker.url, "--server-pid", str(broker.proc.pid),
           "--use-existing", "--stream", stream, "--payload", "json", "--record-size", str(RECORD_BYTES),
           "--batch-size", "500", "--concurrency", "8", "--label", label, "--out", out_path] + extra
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"loadgen failed ({' '.join(cmd)}):\n{p.stderr[-3000:]}")
    line = json.loads(p.stdout.strip().splitlines()[-1])
    line["_wall_s"] = time.time() - t0
    line["_cmd"] = " ".join(cmd)
    return line


# ---------------------------------------------------------------------------------------
# One S3 target

def run_target(args, target, loadgen, binary, out_path):
    tmp = tempfile.mkdtemp(prefix=f"chbench-{target}-")
    s3_port = free_port()
    s3_log = open(os.path.join(tmp, "s3.log"), "ab")
    if target == "moto":
        moto = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
        s3_proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(s3_port)],
                                   stdin=subprocess.DEVNULL, stdout=s3_log, stderr=s3_log)
    else:
        s3_proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-null-s3", str(s3_port)],
                                   stdin=subprocess.DEVNULL, stdout=s3_log, stderr=s3_log)
    s3_url = f"http://127.0.0.1:{s3_port}"
    broker = None
    try:
        wait_port(s3_port, s3_proc, target)
        broker = Broker(binary, tmp, s3_url, args.buffer_bytes)
        kinesis, s3 = clients(broker.url, s3_url)
        result = {"target": target, "label": args.label, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "load_before": os.getloadavg(), "busy_before": busy_processes(),
                  "duration_s": args.duration, "fraction": args.fraction,
                  "buffer_bytes": args.buffer_bytes, "warm_up_s": args.warm_up}

        # A warm-up, not recorded: the first seconds of a fresh broker and data directory
        # (page-cache growth, the allocator) measured a third lower R than the next run.
        if args.warm_up:
            on_demand_stream(kinesis, "chbench-warm-up")
            run_loadgen(loadgen, broker, "chbench-warm-up", ["--duration", f"{args.warm_up}s"],
                        f"channels-{target}-warm-up", os.devnull)
            kinesis.delete_stream(StreamName="chbench-warm-up")

        # (a) the PutRecords rate, no channel anywhere.
        on_demand_stream(kinesis, "chbench-rate")
        a = run_loadgen(loadgen, broker, "chbench-rate", ["--duration", f"{args.rate_duration}s"],
                        f"channels-{target}-putrecords", out_path)
        kinesis.delete_stream(StreamName="chbench-rate")
        rate = a["records_per_s"]
        paced = round(rate * args.fraction)
        result["put_records"] = {"records_per_s": rate, "server_cpu_s": a["server"]["cpu_s"],
                                 "server_cpu_us_per_record": a["server"]["cpu_s"] / max(a["records"], 1) * 1e6,
                                 "client_cpu_s": a["client_cpu_s"], "cmd": a["_cmd"]}
        result["producer_rate"] = paced
        print(f"[{target}] (a) PutRecords {rate:,.0f} records/s; producing at {paced:,} records/s", flush=True)

        # (c) the paced producer with no channel: ingest alone.
        on_demand_stream(kinesis, "chbench-ingest")
        c = run_loadgen(loadgen, broker, "chbench-ingest",
                        ["--duration", f"{args.duration}s", "--rate", str(paced)],
                        f"channels-{target}-ingest", out_path)
        kinesis.delete_stream(StreamName="chbench-ingest")
        result["ingest_only"] = {"records": c["records"], "records_per_s": c["records_per_s"],
                                 "server_cpu_s": c["server"]["cpu_s"],
                                 "server_cpu_us_per_record": c["server"]["cpu_s"] / max(c["records"], 1) * 1e6}
        print(f"[{target}] (c) ingest only: {c['records_per_s']:,.0f} records/s, broker CPU "
              f"{c['server']['cpu_s']:.1f} s", flush=True)

        # (b) the same producer with a GZIP JSON channel delivering.
        stream_arn = on_demand_stream(kinesis, "chbench-live")
        if target == "moto":
            s3.create_bucket(Bucket="chbench-lake")
        channel = kinesis.create_channel(
            ChannelName="chbench", ServiceExecutionRoleARN=f"arn:aws:iam::{ACCOUNT}:role/chbench",
            StreamConfigurationList=[{"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
            S3DestinationConfiguration={"StorageConfiguration": {
                "BucketARN": "arn:aws:s3:::chbench-lake", "ExpectedBucketOwner": ACCOUNT,
                "CompressionType": "GZIP"}})["ChannelDescription"]
        for _ in range(1200):
            d = kinesis.describe_channel(ChannelARN=channel["ChannelARN"])["ChannelDescription"]
            if d["ChannelStatus"] == "ACTIVE":
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"channel never ACTIVE: {d}")

        samples = []
        stop = threading.Event()

        def sample():
            t0 = time.time()
            while not stop.is_set():
                cursor = broker.channel_cursor() or {}
                samples.append({
                    "t": round(time.time() - t0, 2),
                    "written": broker.incoming_records("chbench-live"),
                    "delivered": cursor.get("records", 0),
                    "objects": cursor.get("objects", 0),
                    "broker_cpu_s": cpu_s(broker.proc.pid),
                    "s3_cpu_s": cpu_s(s3_proc.pid),
                    "machine": machine_cpu(),
                })
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        b_cpu0, s3_cpu0, m0 = cpu_s(broker.proc.pid), cpu_s(s3_proc.pid), machine_cpu()
        sampler.start()
        b = run_loadgen(loadgen, broker, "chbench-live",
                        ["--duration", f"{args.duration}s", "--rate", str(paced)],
                        f"channels-{target}-live", out_path)
        stopped = time.time()
        written = b["records"]
        caught_up_after = None
        # Each shard's partial object waits for its freshness (300 s at least): not lag.
        partial_allowance = SHARDS * -(-args.buffer_bytes // RECORD_BYTES)
        while time.time() - stopped < args.drain_timeout:
            cursor = broker.channel_cursor() or {}
            if written - cursor.get("records", 0) <= partial_allowance and not cursor.get("pending"):
                caught_up_after = time.time() - stopped
                break
            time.sleep(0.1)
        b_cpu1, s3_cpu1, m1 = cpu_s(broker.proc.pid), cpu_s(s3_proc.pid), machine_cpu()
        stop.set()
        sampler.join(timeout=10)
        cursor = broker.channel_cursor() or {}
        delivered = cursor.get("records", 0)
        produce_end = next((s for s in samples if s["t"] >= b["elapsed_s"]), samples[-1])
        start = samples[0]
        span = max(produce_end["t"] - start["t"], 1e-9)
        delivered_in_window = produce_end["delivered"] - start["delivered"]
        broker_cpu = b_cpu1 - b_cpu0
        ingest_us = result["ingest_only"]["server_cpu_us_per_record"]
        total_s = (caught_up_after or args.drain_timeout) + b["elapsed_s"]
        result["channel"] = {
            "written": written,
            "produce_records_per_s": b["records_per_s"],
            "produce_failures": b["failures"],
            "delivered": delivered,
            "dead_letters": cursor.get("dead_letters"),
            "objects": cursor.get("objects"),
            "delivered_per_s_while_producing": delivered_in_window / span,
            "delivered_per_s_to_caught_up": delivered / max(total_s, 1e-9),
            "lag_at_producer_stop": produce_end["written"] - produce_end["delivered"],
            "caught_up_after_s": caught_up_after,
            "left_in_partial_objects": written - delivered,
            "broker_cpu_s": broker_cpu,
            "broker_cpu_us_per_delivered_record": broker_cpu / max(delivered, 1) * 1e6,
            "broker_channel_cpu_us_per_record": broker_cpu / max(delivered, 1) * 1e6 - ingest_us,
            "s3_cpu_s": s3_cpu1 - s3_cpu0,
            "s3_cores": (s3_cpu1 - s3_cpu0) / max(total_s, 1e-9),
            "broker_cores": broker_cpu / max(total_s, 1e-9),
            "loadgen_cpu_s": b["client_cpu_s"],
            "machine_busy": (m1[0] - m0[0]) / max(m1[1] - m0[1], 1),
            "lag_over_time": [(s["t"], s["written"] - s["delivered"]) for s in samples],
            "cmd": b["_cmd"],
        }
        result["keeps_up"] = caught_up_after is not None and caught_up_after <= args.catch_up
        if target == "null":
            stats = json.loads(urllib.request.urlopen(f"{s3_url}/_null/stats", timeout=10).read())
            result["channel"]["s3_objects"] = stats["objects"]
            result["channel"]["s3_bytes"] = stats["bytes"]
        else:
            result["channel"]["read_back"] = read_back(s3, "chbench-lake", args.read_back_timeout)
        result["load_after"] = os.getloadavg()
        return result
    finally:
        if broker:
            broker.stop()
        s3_proc.send_signal(signal.SIGTERM)
        try:
            s3_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            s3_proc.kill()
            s3_proc.wait(timeout=30)
        s3_log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def read_back(s3, bucket, timeout):
    """Every object of the bucket, gunzipped and its lines counted (and each line parsed
    in the first object), within `timeout` seconds."""
    t0 = time.time()
    keys, lines, compressed, raw = [], 0, 0, 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    complete = True
    for i, key in enumerate(keys):
        if time.time() - t0 > timeout:
            complete = False
            break
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        compressed += len(body)
        data = gzip.decompress(body)
        raw += len(data)
        n = data.count(b"\n")
        lines += n
        if i == 0:
            for line in data.splitlines():
                json.loads(line)
    return {"objects": len(keys), "lines": lines, "complete": complete,
            "compressed_bytes": compressed, "raw_bytes": raw,
            "ratio": raw / compressed if compressed else None,
            "seconds": round(time.time() - t0, 1)}


def summary(r):
    ch = r["channel"]
    verdict = "KEEPS UP" if r["keeps_up"] else "DOES NOT KEEP UP"
    print(f"[{r['target']}] PutRecords {r['put_records']['records_per_s']:,.0f}/s; producer at "
          f"{ch['produce_records_per_s']:,.0f}/s ({r['fraction']:.0%}); delivered while producing "
          f"{ch['delivered_per_s_while_producing']:,.0f}/s; lag at stop {ch['lag_at_producer_stop']:,}; "
          f"caught up after {ch['caught_up_after_s']} s (left in partial objects "
          f"{ch['left_in_partial_objects']:,}); broker CPU "
          f"{ch['broker_cpu_us_per_delivered_record']:.2f} µs/record (channel's share "
          f"{ch['broker_channel_cpu_us_per_record']:.2f}); S3 server {ch['s3_cores']:.2f} cores; "
          f"{verdict}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--s3", default="moto,null", help="S3 targets, comma-separated: moto, null")
    ap.add_argument("--duration", type=int, default=30, help="seconds of paced producing, (b) and (c)")
    ap.add_argument("--rate-duration", type=int, default=10, help="seconds of (a)")
    ap.add_argument("--warm-up", type=int, default=5, help="seconds of unrecorded PutRecords before (a)")
    ap.add_argument("--fraction", type=float, default=0.5, help="producer rate / PutRecords rate")
    ap.add_argument("--buffer-bytes", type=int, default=5 * 1024 * 1024, help="--channel-buffer-bytes")
    ap.add_argument("--catch-up", type=float, default=5.0, help="seconds after the producer stops "
                    "within which everything must be delivered to keep up")
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--read-back-timeout", type=float, default=600.0)
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "results-channels.jsonl"))
    ap.add_argument("--broker", default=os.path.join(ROOT, "target", "release", "kinesis-broker"),
                    help="the broker binary (default: the release build)")
    ap.add_argument("--label", default="", help="a word kept in each JSON line (e.g. before/after)")
    ap.add_argument("--serve-null-s3", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_null_s3:
        serve_null_s3(args.serve_null_s3)
        return
    binary = args.broker
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no broker at {binary}: cargo build --release first")
    loadgen = loadgen_path()
    loadgen_out = os.path.join(tempfile.gettempdir(), f"chbench-loadgen-{os.getpid()}.jsonl")
    for target in args.s3.split(","):
        r = run_target(args, target.strip(), loadgen, binary, loadgen_out)
        with open(args.out, "a") as f:
            f.write(json.dumps(r) + "\n")
        summary(r)


if __name__ == "__main__":
    main()
