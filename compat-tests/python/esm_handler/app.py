"""An unmodified Lambda handler for a Kinesis event source: appends each record's data to
the file named by ESM_OUT, one line per record."""

import base64
import os


def handler(event, context):
    with open(os.environ["ESM_OUT"], "a") as out:
        for record in event["Records"]:
            out.write(base64.b64decode(record["kinesis"]["data"]).decode() + "\n")
    return {"count": len(event["Records"])}
