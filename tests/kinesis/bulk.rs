//! 5,000 records over 4 shards, read back exactly once, each in its MD5 shard, in per-shard
//! acknowledgement order.

use std::collections::HashMap;

use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::common::*;

const RECORDS: usize = 5_000;
const SHARDS: u32 = 4;

#[tokio::test]
async fn five_thousand_records_over_four_shards_read_back_exactly_once_in_order() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "bulk", SHARDS as i32).await;

    // Acknowledged (partition key, shard, sequence number) of every record, by record index.
    let mut acked: Vec<(String, String, String)> = Vec::with_capacity(RECORDS);
    for batch in 0..RECORDS / 500 {
        let entries: Vec<_> = (0..500)
            .map(|j| {
                let i = batch * 500 + j;
                // Mix single-record and repeated keys so shards get several records per key.
                let pk = format!("customer-{}", i % 1_237);
                PutRecordsRequestEntry::builder()
                    .partition_key(pk)
                    .data(blob(format!("record-{i}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let keys: Vec<String> = entries
            .iter()
            .map(|e| e.partition_key().unwrap_or_default().to_owned())
            .collect();
        for (pk, (shard, seq)) in keys
            .into_iter()
            .zip(put_all(&client, "bulk", entries).await)
        {
            acked.push((pk, shard, seq));
        }
    }
    assert_eq!(acked.len(), RECORDS);

    let mut seen: HashMap<String, usize> = HashMap::new();
    for shard in 0..SHARDS as usize {
        let sid = shard_id(shard);
        // Page with a Limit so the test crosses GetRecords boundaries.
        let it = iterator(&client, "bulk", &sid, ShardIteratorType::TrimHorizon).await;
        let recs = read_to_tip(&client, it, Some(333)).await;

        let mut expected: Vec<(Seq, usize)> = acked
            .iter()
            .enumerate()
            .filter(|(_, (_, s, _))| *s == sid)
            .map(|(i, (_, _, q))| (seq(q), i))
            .collect();
        expected.sort();
        let got: Vec<(Seq, usize)> = recs
            .iter()
            .map(|r| {
                let text = std::str::from_utf8(data(r)).unwrap();
                let i: usize = text.strip_prefix("record-").unwrap().parse().unwrap();
                (seq(r.sequence_number()), i)
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "{sid}: record count");
        assert_eq!(
            got, expected,
            "{sid}: records, sequence numbers or order differ"
        );
        for (r, (_, i)) in recs.iter().zip(&got) {
            let (pk, _, _) = &acked[*i];
            assert_eq!(crate::common::pk(r), pk);
            assert_eq!(
                shard_id(expected_shard_for(md5_hash_key(pk), SHARDS)),
                sid,
                "record {i} with key {pk} is in the wrong shard"
            );
            *seen.entry(format!("record-{i}")).or_default() += 1;
        }
        // Within a shard the acknowledged order of a key is its read order.
        for w in got.windows(2) {
            assert!(w[0].0 < w[1].0, "{sid}: sequence numbers not increasing");
        }
    }
    assert_eq!(seen.len(), RECORDS, "some records were never read");
    assert!(
        seen.values().all(|&n| n == 1),
        "some records were read twice"
    );
}
