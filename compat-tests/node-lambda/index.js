// An unmodified Lambda handler for a Kinesis event source: appends each record's
// partitionKey, sequenceNumber and data (base64, as in the event) to the file named by ESM_OUT,
// one tab-separated line per record; sleeps ESM_DELAY_MS first when set (to keep a batch in
// flight); ESM_STARTED, when set, gets `<count> <first sequence number>` as each batch
// arrives, before the sleep. The same lines as the Rust handler's `record` mode.
const fs = require("fs");

exports.handler = async (event) => {
  if (process.env.ESM_STARTED) {
    const first = event.Records.length ? event.Records[0].kinesis.sequenceNumber : "";
    fs.appendFileSync(process.env.ESM_STARTED, `${event.Records.length} ${first}\n`);
  }
  const delay = Number(process.env.ESM_DELAY_MS || 0);
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  const lines = event.Records.map(
    (r) => `${r.kinesis.partitionKey}\t${r.kinesis.sequenceNumber}\t${r.kinesis.data}\n`
  );
  fs.appendFileSync(process.env.ESM_OUT, lines.join(""));
  return { count: event.Records.length };
};
