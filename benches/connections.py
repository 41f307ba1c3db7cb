#!/usr/bin/env python3
"""Issue 21, measured from outside: idle keep-alive connections and slowloris clients held
open while a normal client is served, compared with the same client alone.

The same measurement as loadgen's `connections` workload, in Python (standard library only)
so that it runs without a release build of the bench targets:

1. baseline, for --baseline seconds: PutRecord at --rate requests/s over --concurrency
   keep-alive connections, and --new-clients fresh connections a second (one PutRecord
   each, connect included in its latency);
2. the crowd opens: --idle connections each make one request (GET /_broker/health) then
   sit idle, repeating it every --refresh seconds to stay under the broker's 60 s HTTP/1.1
   idle timeout; --slowloris connections trickle a request head one byte every
   --slowloris-interval seconds, reconnecting when closed;
3. held for --duration seconds while the same clients run again.

Prints one JSON line: latencies of both phases, the crowd's counts (opened, closed by the
server: evictions at --max-connections), the broker's connection series from /metrics and,
with --server-pid, its RSS and anonymous RSS before and after the crowd opened.

Everything goes to 127.0.0.1; every wait is bounded. Needs an open-files limit above the
crowd's size: it raises its own soft limit to the hard one.

    python3 benches/connections.py --port 4567 --server-pid PID --idle 10000 --slowloris 100
"""

import argparse
import asyncio
import base64
import json
import resource
import time

STREAM = "connections-bench"
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0123abcd"
)
TIMEOUT = 30.0


def request(op, body):
    body = json.dumps(body).encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"X-Amz-Target: Kinesis_20131202.{op}\r\nX-Amz-Date: 20260101T000000Z\r\n"
        f"Authorization: {AUTH}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


HEALTH = b"GET /_broker/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def read_answer(reader):
    """Status and body of one answer; raises on a close or a bad answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    body = await reader.readexactly(length) if length else b""
    return status, body


class Conn:
    """A keep-alive connection, reopened after a failure."""

    def __init__(self, port):
        self.port = port
        self.rw = None

    async def call(self, data):
        if self.rw is None:
            self.rw = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.rw
        try:
            writer.write(data)
            await writer.drain()
            return await read_answer(reader)
        except Exception:
            writer.close()
            self.rw = None
            raise

    def close(self):
        if self.rw:
            self.rw[1].close()
            self.rw = None


def percentiles(samples):
    if not samples:
        return None
    s = sorted(samples)
    pick = lambda q: round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 3)
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": round(s[-1] * 1000, 3), "n": len(s)}


def put_body(i, size):
    return request(
        "PutRecord",
        {"StreamName": STREAM, "Data": base64.b64encode(b"x" * size).decode(), "PartitionKey": f"pk-{i % 1000}"},
    )


async def normal_clients(args, seconds):
    """Writers at --rate over --concurrency connections and --new-clients fresh ones a second."""
    deadline = time.monotonic() + seconds
    writes, fresh, failures = [], [], {}

    def fail(kind):
        failures[kind] = failures.get(kind, 0) + 1

    async def writer(w):
        conn = Conn(args.port)
        period = args.concurrency / args.rate
        nxt = time.monotonic() + period * w / args.concurrency
        i = w
        while time.monotonic() < deadline:
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            nxt += period
            t = time.monotonic()
            try:
                status, body = await asyncio.wait_for(conn.call(put_body(i, args.record_size)), TIMEOUT)
                if status == 200:
                    writes.append(time.monotonic() - t)
                else:
                    fail(f"write HTTP {status} {body[:80]!r}")
            except Exception as e:
                fail(f"write {type(e).__name__}")
            i += args.concurrency
        conn.close()

    async def newcomer(i):
        t = time.monotonic()
        conn = Conn(args.port)
        try:
            status, body = await asyncio.wait_for(conn.call(put_body(i, args.record_size)), TIMEOUT)
            if status == 200:
                fresh.append(time.monotonic() - t)
            else:
                fail(f"new client HTTP {status}")
        except Exception as e:
            fail(f"new client {type(e).__name__}")
        finally:
            conn.close()

    async def newcomers():
        tasks, i = [], 0
        while time.monotonic() < deadline:
            tasks.append(asyncio.create_task(newcomer(i)))
            i += 1
            await asyncio.sleep(1.0 / args.new_clients)
        await asyncio.gather(*tasks)

    await asyncio.gather(*(writer(w) for w in range(args.concurrency)), newcomers())
    return {
        "writes_ms": percentiles(writes),
        "writes_per_s": round(len(writes) / seconds, 1),
        "new_clients_ms": percentiles(fresh),
        "failures": failures,
    }


class Crowd:
    def __init__(self):
        self.idle_open = 0
        self.idle_failed = 0
        self.idle_closed_by_server = 0
        self.slowloris_connects = 0
        self.slowloris_closed_by_server = 0
        self.stop = False


async def idle_connection(port, refresh, crowd, first_delay):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        writer.write(HEALTH)
        status, _ = await asyncio.wait_for(read_answer(reader), TIMEOUT)
        assert status == 200
    except Exception:
        crowd.idle_failed += 1
        return
    crowd.idle_open += 1

    async def refresher():
        await asyncio.sleep(first_delay)
        while True:
            writer.write(HEALTH)
            status, _ = await asyncio.wait_for(read_answer(reader), TIMEOUT)
            assert status == 200
            await asyncio.sleep(refresh)

    task = asyncio.create_task(refresher())
    try:
        # Ends when a refresh fails: the server closed the connection.
        await task
    except asyncio.CancelledError:
        task.cancel()
        raise
    except Exception:
        if not crowd.stop:
            crowd.idle_open -= 1
            crowd.idle_closed_by_server += 1
    finally:
        writer.close()


async def slowloris(port, interval, crowd):
    head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nX-Slow: "
    while not crowd.stop:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        except Exception:
            await asyncio.sleep(interval)
            continue
        crowd.slowloris_connects += 1
        sent = 0
        try:
            while not crowd.stop:
                writer.write(head[sent : sent + 1] if sent < len(head) else b"a")
                sent += 1
                try:
                    data = await asyncio.wait_for(reader.read(64), interval)
                except asyncio.TimeoutError:
                    continue
                # An answer or a close: this head is over.
                crowd.slowloris_closed_by_server += 1
                break
        except Exception:
            crowd.slowloris_closed_by_server += 1
        finally:
            writer.close()


def status_kib(pid, key):
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return None


async def scrape(port):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        raw = (await asyncio.wait_for(reader.read(-1), TIMEOUT)).decode()
        writer.close()
    except Exception as e:
        return {"error": type(e).__name__}
    out = {}
    for line in raw.splitlines():
        for name in (
            "kinesis_broker_open_connections",
            "kinesis_broker_connection_limit",
            "kinesis_broker_idle_connections_evicted_total",
        ):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


async def main(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    control = Conn(args.port)
    await control.call(request("CreateStream", {"StreamName": STREAM, "ShardCount": args.shards}))
    for _ in range(100):
        status, body = await control.call(request("DescribeStreamSummary", {"StreamName": STREAM}))
        if b'"ACTIVE"' in body:
            break
        await asyncio.sleep(0.1)
    control.close()

    report = {"params": vars(args), "client_open_files": hard}
    report["baseline"] = await normal_clients(args, args.baseline)

    mem_before = (status_kib(args.server_pid, "VmRSS:"), status_kib(args.server_pid, "RssAnon:"))
    crowd = Crowd()
    t = time.monotonic()
    tasks = [asyncio.create_task(slowloris(args.port, args.slowloris_interval, crowd)) for _ in range(args.slowloris)]
    # Opened in waves: a burst of 10,000 SYNs overflows the listen backlog.
    for start in range(0, args.idle, args.connect_concurrency):
        wave = [
            asyncio.create_task(idle_connection(args.port, args.refresh, crowd, args.refresh * ((start + k) % 997) / 997))
            for k in range(min(args.connect_concurrency, args.idle - start))
        ]
        tasks += wave
        while crowd.idle_open + crowd.idle_failed + crowd.idle_closed_by_server < start + len(wave):
            await asyncio.sleep(0.01)
    opened_s = time.monotonic() - t
    await asyncio.sleep(2)
    mem_open = (status_kib(args.server_pid, "VmRSS:"), status_kib(args.server_pid, "RssAnon:"))
    metrics_open = await scrape(args.port)
    open_now = crowd.idle_open

    report["crowd"] = await normal_clients(args, args.duration)
    mem_after = (status_kib(args.server_pid, "VmRSS:"), status_kib(args.server_pid, "RssAnon:"))
    metrics_end = await scrape(args.port)
    crowd_counts = dict(vars(crowd))
    crowd.stop = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    size = args.idle + args.slowloris
    report["crowd_connections"] = {
        "idle_opened_s": round(opened_s, 2),
        "idle_open_after_opening": open_now,
        **{k: v for k, v in crowd_counts.items() if k != "stop"},
        "server_metrics_crowd_open": metrics_open,
        "server_metrics_end": metrics_end,
    }
    if args.server_pid:
        mb = lambda kib: round(kib / 1024, 1)
        report["server_memory"] = {
            "rss_before_mb": mb(mem_before[0]),
            "rss_crowd_open_mb": mb(mem_open[0]),
            "rss_end_mb": mb(mem_after[0]),
            "anon_before_mb": mb(mem_before[1]),
            "anon_crowd_open_mb": mb(mem_open[1]),
            "anon_end_mb": mb(mem_after[1]),
            "rss_per_connection_kib": round((mem_open[0] - mem_before[0]) / size, 2),
            "anon_per_connection_kib": round((mem_open[1] - mem_before[1]) / size, 2),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=4567)
    p.add_argument("--server-pid", type=int)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--idle", type=int, default=10_000)
    p.add_argument("--slowloris", type=int, default=100)
    p.add_argument("--slowloris-interval", type=float, default=5.0)
    p.add_argument("--refresh", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--new-clients", type=float, default=5.0)
    p.add_argument("--record-size", type=int, default=100)
    p.add_argument("--baseline", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--connect-concurrency", type=int, default=200)
    asyncio.run(main(p.parse_args()))
