//! TEMPORARY local stand-in (never committed): replaced by the registry branch.
use crate::broker::stream::{Stream, StreamKey};
use crate::broker::{Broker, Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStatus {
    Creating,
    Active,
    Deleting,
}
#[derive(Debug, Clone)]
pub struct ConsumerMeta {
    pub name: String,
    pub created_ms: i64,
    pub status: ConsumerStatus,
    pub tags: BTreeMap<String, String>,
}
impl Broker {
    pub fn consumer_by_arn(
        &self,
        account: &str,
        region: &str,
        arn: &str,
    ) -> Result<(Arc<Stream>, ConsumerMeta)> {
        let rest = arn.split("stream/").nth(1).ok_or(Error::InvalidIterator)?;
        let (stream, cons) = rest
            .split_once("/consumer/")
            .ok_or(Error::InvalidIterator)?;
        let (name, secs) = cons.split_once(':').ok_or(Error::InvalidIterator)?;
        let s = self.stream(&StreamKey {
            account: account.into(),
            region: region.into(),
            name: stream.into(),
        })?;
        Ok((
            s,
            ConsumerMeta {
                name: name.into(),
                created_ms: secs.parse::<i64>().unwrap_or(0) * 1000,
                status: ConsumerStatus::Active,
                tags: Default::default(),
            },
        ))
    }
}
