"""Unmodified Lambda handlers for the delivery-semantics suite (test_esm_semantics.py).
Each appends what it processed to the file named by ESM_OUT, one line per record, with a
single write so that several runtime processes can share the file."""

import base64
import json
import os
import time


def _data(record):
    return base64.b64decode(record["kinesis"]["data"]).decode()


def _append(lines):
    if not lines:
        return
    fd = os.open(os.environ["ESM_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode())
    finally:
        os.close(fd)


def poison(event, context):
    """Fails the whole batch when it holds the record "poison"."""
    values = [_data(r) for r in event["Records"]]
    if "poison" in values:
        raise ValueError("poison record")
    _append(values)
    return None


def partial(event, context):
    """The first time it sees the record "fail-here", processes the records before it and
    reports it as the first failure (and a later record too); afterwards processes all."""
    marker = os.environ["ESM_OUT"] + ".failed-once"
    done, failures = [], []
    for r in event["Records"]:
        value = _data(r)
        if value == "fail-here" and not os.path.exists(marker):
            open(marker, "w").close()
            later = event["Records"][-1]["kinesis"]["sequenceNumber"]
            failures = [{"itemIdentifier": later}, {"itemIdentifier": r["kinesis"]["sequenceNumber"]}]
            break
        done.append(value)
    _append(done)
    return {"batchItemFailures": failures}


def window_sum(event, context):
    """Sums the integers of a tumbling window; writes the sum at the window's final invoke."""
    state = event.get("state") or {}
    total = int(state.get("sum", 0)) + sum(int(_data(r)) for r in event["Records"])
    if event.get("isFinalInvokeForWindow"):
        _append([f"FINAL {event['window']['start']} {total}"])
    return {"state": {"sum": total}}


def keyed(event, context):
    """Writes `partitionKey data` per record, slowly enough for batches to overlap."""
    time.sleep(0.05)
    _append([f"{r['kinesis']['partitionKey']} {_data(r)}" for r in event["Records"]])
    return {"processed": len(event["Records"])}
