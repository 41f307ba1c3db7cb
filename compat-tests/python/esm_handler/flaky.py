"""An unmodified Lambda handler that fails once: while the file named by FAIL_ONCE exists it
removes it and raises, so the mapping's retry must deliver the same batch again. Otherwise
appends each record's data to the file named by ESM_OUT, with the process id."""

import base64
import os


def handler(event, context):
    try:
        os.unlink(os.environ["FAIL_ONCE"])
    except FileNotFoundError:
        pass
    else:
        raise ValueError("failing once on purpose")
    with open(os.environ["ESM_OUT"], "a") as out:
        for record in event["Records"]:
            data = base64.b64decode(record["kinesis"]["data"]).decode()
            out.write(f"{data} {os.getpid()} {context.function_name}\n")
    return {"count": len(event["Records"])}
