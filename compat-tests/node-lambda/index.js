// An unmodified Lambda handler for a Kinesis event source: appends each record's
// partitionKey, sequenceNumber and data (base64, as in the event) to the file named by ESM_OUT,
// one tab-separated line per record; sleeps ESM_DELAY_MS first when set (to keep a batch in
// flight). The same lines as the Rust handler's `record` mode.
const fs = require("fs");

exports.handler = async (event) => {
  const delay = Number(process.env.ESM_DELAY_MS || 0);
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  const lines = event.Records.map(
    (r) => `${r.kinesis.partitionKey}\t${r.kinesis.sequenceNumber}\t${r.kinesis.data}\n`
  );
  fs.appendFileSync(process.env.ESM_OUT, lines.join(""));
  return { count: event.Records.length };
};
