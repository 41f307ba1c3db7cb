"""A channel's broker CPU per record, without the release load generator (issue 22).

    compat-tests/.venv/bin/python benches/channels_cpu.py TARGET BROKER N LABEL
    (TARGET: moto or null; BROKER: the broker binary; N: records per phase)

One broker (`--s3-endpoint` to moto's server or to benches/channels.py's null S3):
N 1 KiB JSON records written with boto3 (4 threads, PutRecords of 500) to an ON_DEMAND
stream with no channel (the broker's CPU for ingesting them), then the same to a stream
with a GZIP JSON channel (created before the writes: channels read from LATEST). The
channel's CPU per record = (broker CPU from the channel's creation until only the partial
last object of each shard is left, which waits for DataFreshnessInSeconds) minus the
ingest CPU, over the records delivered. A fallback for benches/channels.py when the
machine cannot build the load generator in time: boto3 is a slow producer, so this gives
CPU per record (and the channel's pace under the machine's load), not the throughput race.
Appends a JSON line to /tmp/chbench-drain/results.jsonl."""
import sys, os, time, json, subprocess, tempfile, random, threading, shutil
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.makedirs('/tmp/chbench-drain', exist_ok=True)
import channels as c
target, binary, n, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
tmp = tempfile.mkdtemp(prefix='chdrain-')
port = c.free_port()
log = open(os.path.join(tmp, 's3.log'), 'ab')
if target == 'moto':
    s3p = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'moto_server'), '-H', '127.0.0.1', '-p', str(port)], stdout=log, stderr=log)
else:
    s3p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'channels.py'), '--serve-null-s3', str(port)], stdout=log, stderr=log)
c.wait_port(port, s3p, target)
url = f'http://127.0.0.1:{port}'
b = c.Broker(binary, tmp, url, 5 * 1024 * 1024)
W = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu order click checkout session payment error".split()
def rec(rng):
    s = '{"id":%d,"ts":%d,"user":"user-%06d","event":"%s","amount":%d.%02d,"text":"' % (rng.getrandbits(52), 1700000000000 + rng.getrandbits(24), rng.randrange(10**6), rng.choice(["view","click","purchase","signup"]), rng.randrange(10000), rng.randrange(100))
    while len(s) < 1022: s += rng.choice(W) + ' '
    return (s[:1022] + '"}').encode()
try:
    k, s3 = c.clients(b.url, url)
    def produce(stream, seed, count):
        rng = random.Random(seed)
        batches = [[{"Data": rec(rng), "PartitionKey": str(rng.random())} for _ in range(500)] for _ in range(4)]
        kk, _ = c.clients(b.url, url)
        for i in range(count // 500):
            out = kk.put_records(StreamName=stream, Records=batches[i % 4])
            assert out['FailedRecordCount'] == 0
    def produce_all(stream):
        ths = [threading.Thread(target=produce, args=(stream, s, n // 4)) for s in range(4)]
        [t.start() for t in ths]; [t.join() for t in ths]
    # ingest only
    c.on_demand_stream(k, 'ingest')
    cpu0, t0 = c.cpu_s(b.proc.pid), time.time()
    produce_all('ingest')
    ingest_cpu, ingest_s = c.cpu_s(b.proc.pid) - cpu0, time.time() - t0
    k.delete_stream(StreamName='ingest')
    print(f'ingest only: {n} records in {ingest_s:.1f}s, broker cpu {ingest_cpu:.2f}s', flush=True)
    arn = c.on_demand_stream(k, 'drain')
    if target == 'moto':
        s3.create_bucket(Bucket='lake')
    ch = k.create_channel(ChannelName='drain', ServiceExecutionRoleARN='arn:aws:iam::000000000000:role/x',
        StreamConfigurationList=[{"StreamARN": arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
        S3DestinationConfiguration={"StorageConfiguration": {"BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": "000000000000", "CompressionType": "GZIP"}})
    for _ in range(600):
        if k.describe_channel(ChannelARN=ch['ChannelDescription']['ChannelARN'])['ChannelDescription']['ChannelStatus'] == 'ACTIVE':
            break
        time.sleep(0.1)
    cpu0, s30, m0, t0 = c.cpu_s(b.proc.pid), c.cpu_s(s3p.pid), c.machine_cpu(), time.time()
    produce_all('drain')
    produce_s = time.time() - t0
    written = b.incoming_records('drain')
    lag = []
    while time.time() - t0 < 600:
        cur = b.channel_cursor() or {}
        lag.append((round(time.time() - t0, 1), written - cur.get('records', 0)))
        print(lag[-1], cur.get('objects'), flush=True)
        # the last partial object per shard waits for its freshness (300 s): stop once only those are left
        if cur.get('records', 0) >= written or (len(lag) > 3 and lag[-1][1] == lag[-3][1] and lag[-1][1] < 4 * 5200):
            break
        time.sleep(1)
    took = time.time() - t0
    cur = b.channel_cursor()
    cpu1, s31, m1 = c.cpu_s(b.proc.pid), c.cpu_s(s3p.pid), c.machine_cpu()
    d = cur['records']
    busy = c.busy_processes(1.0, 20)
    res = dict(ingest_cpu_s=round(ingest_cpu,2), ingest_s=round(ingest_s,1), produce_s=round(produce_s,1), channel_cpu_us_per_record=round((cpu1 - cpu0 - ingest_cpu) / d * 1e6, 2), label=label, target=target, written=written, delivered=d, objects=cur['objects'], seconds=round(took, 2),
               delivered_per_s=round(d / took), broker_cpu_s=round(cpu1 - cpu0, 2), broker_cpu_us_per_record=round((cpu1 - cpu0) / d * 1e6, 2),
               s3_cpu_s=round(s31 - s30, 2), machine_busy=round((m1[0] - m0[0]) / (m1[1] - m0[1]), 2), load=os.getloadavg(), lag=lag[::4])
    if target == 'null':
        import urllib.request
        res['null_s3'] = json.loads(urllib.request.urlopen(url + '/_null/stats').read())
    else:
        res['read_back'] = c.read_back(s3, 'lake', 120)
    print(json.dumps(res), flush=True)
    with open('/tmp/chbench-drain/results.jsonl', 'a') as f:
        f.write(json.dumps(res) + '\n')
finally:
    b.stop(); s3p.kill(); shutil.rmtree(tmp, ignore_errors=True)
