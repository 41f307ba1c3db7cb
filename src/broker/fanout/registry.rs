//! Registered stream consumers (RegisterStreamConsumer and friends).
//!
//! Consumers live in their stream's state, so the catalog persists them with the stream and
//! every change goes through [`Broker::update_stream`] (persisted, undone if the catalog
//! cannot be written). A consumer is identified by its name and creation time: the ARN
//! carries the creation second, so the ARN of a deregistered consumer does not name a
//! later consumer of the same name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::broker::catalog::StreamStatus;
use crate::broker::stream::{Stream, StreamKey, StreamState, valid_name};
use crate::broker::{Broker, Error, Result};

/// Consumers a stream may have registered at once: 20, AWS's limit for provisioned and
/// on-demand standard streams.
pub const MAX_CONSUMERS_PER_STREAM: usize = 20;
/// Consumers a stream may have in CREATING at once: 5, as AWS documents for
/// RegisterStreamConsumer.
pub const MAX_CREATING_CONSUMERS: usize = 5;

/// A consumer's lifecycle state, as `ConsumerStatus` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerStatus {
    /// Registered; becomes ACTIVE after the configured delay.
    Creating,
    /// Usable by SubscribeToShard.
    Active,
    /// Deregistered; gone after the configured delay.
    Deleting,
}

impl ConsumerStatus {
    /// The wire name (`ACTIVE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Active => "ACTIVE",
            ConsumerStatus::Deleting => "DELETING",
        }
    }
}

/// One registered consumer, as kept in its stream's state and in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    /// The name, unique on its stream.
    pub name: String,
    /// Registration time, ms since the epoch; its second goes into the ARN.
    pub created_ms: i64,
    /// Lifecycle state.
    pub status: ConsumerStatus,
    /// Tags (TagResource on the consumer ARN, or RegisterStreamConsumer's `Tags`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The resource policy attached by PutResourcePolicy on the consumer ARN (a JSON
    /// document); a consumer inherits nothing from its stream's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl ConsumerMeta {
    /// `STREAM_ARN/consumer/NAME:CREATION_EPOCH_SECONDS`, AWS's consumer ARN.
    pub fn arn(&self, stream_arn: &str) -> String {
        format!(
            "{stream_arn}/consumer/{}:{}",
            self.name,
            self.created_secs()
        )
    }

    /// The creation time in whole seconds, as the ARN carries it.
    pub fn created_secs(&self) -> i64 {
        self.created_ms.div_euclid(1000)
    }
}

/// A consumer ARN taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerArn {
    /// The stream part (`arn:…:stream/NAME`) exactly as written.
    pub stream_arn: String,
    /// The stream it names.
    pub stream: StreamKey,
    /// The consumer name.
    pub name: String,
    /// The creation second.
    pub created_secs: i64,
}

/// Parses `arn:aws*:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:SECONDS`.
///
/// Stream names cannot contain `/`, so the first `/consumer/` ends the stream part.
pub fn parse_consumer_arn(arn: &str) -> Option<ConsumerArn> {
    let (stream_arn, rest) = arn.split_once("/consumer/")?;
    let (name, secs) = rest.rsplit_once(':')?;
    if !valid_name(name) || secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let created_secs = secs.parse::<i64>().ok()?;
    let stream = StreamKey::from_arn(stream_arn)?;
    Some(ConsumerArn {
        stream_arn: stream_arn.to_string(),
        stream,
        name: name.to_string(),
        created_secs,
    })
}

/// The consumers of a stream reopened after a stop: the registration and deregistration
/// delays have certainly passed while the broker was down.
pub fn settle_after_restart(consumers: &[ConsumerMeta]) -> Vec<ConsumerMeta> {
    consumers
        .iter()
        .filter(|c| c.status != ConsumerStatus::Deleting)
        .map(|c| ConsumerMeta {
            status: ConsumerStatus::Active,
            ..c.clone()
        })
        .collect()
}

fn position(st: &StreamState, name: &str, created_ms: i64) -> Option<usize> {
    st.consumers
        .iter()
        .position(|c| c.name == name && c.created_ms == created_ms)
}

impl Broker {
    /// The consumer a consumer ARN names, in any status, with its stream.
    /// Err: the broker error that api maps to ResourceNotFoundException with AWS's text.
    ///
    /// The ARN names its own account and region, as StreamARNs do everywhere in the
    /// broker (AWS serves consumer ARNs across accounts); `account` is the caller's and
    /// only goes into the not-found error, `region` is not a filter.
    pub fn consumer_by_arn(
        &self,
        account: &str,
        region: &str,
        arn: &str,
    ) -> Result<(Arc<Stream>, ConsumerMeta)> {
        let _ = region;
        let not_found = || Error::ConsumerArnNotFound {
            arn: arn.to_string(),
            account: account.to_string(),
        };
        let parsed =
            parse_consumer_arn(arn).ok_or_else(|| Error::InvalidConsumerArn(arn.into()))?;
        let stream = self.stream(&parsed.stream).map_err(|_| not_found())?;
        let consumer = stream
            .state()
            .consumers
            .iter()
            .find(|c| c.name == parsed.name && c.created_secs() == parsed.created_secs)
            .cloned()
            .ok_or_else(not_found)?;
        Ok((stream, consumer))
    }

    /// The consumer registered on `stream` under `name`, in any status.
    pub fn consumer(&self, stream: &Stream, name: &str) -> Result<ConsumerMeta> {
        stream
            .state()
            .consumers
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| Error::ConsumerNotFound {
                consumer: name.to_string(),
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            })
    }

    /// Every consumer of `stream` in any status, sorted by name.
    pub fn consumers(&self, stream: &Stream) -> Vec<ConsumerMeta> {
        let mut all = stream.state().consumers.clone();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Registers a consumer: CREATING, ACTIVE after the configured delay (at once with no
    /// delay). Fails without changing anything on a stream that is not ACTIVE, a name
    /// already registered, or a stream at AWS's consumer limits.
    pub async fn register_consumer(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        name: String,
        tags: BTreeMap<String, String>,
    ) -> Result<ConsumerMeta> {
        let delay = self.settings.register_consumer_delay;
        let now = self.clock.now_ms();
        let key = stream.key.clone();
        // Queues share the stream's registered-consumer limit (issue 18).
        let queues = self.queues().count_on_stream(stream.uid);
        let consumer = self
            .update_stream(stream, move |st| {
                if st.status != StreamStatus::Active {
                    return Err(Error::StreamNotActive {
                        name: key.name,
                        account: key.account,
                        status: st.status,
                    });
                }
                if st.consumers.iter().any(|c| c.name == name) {
                    return Err(Error::ConsumerExists {
                        consumer: name,
                        name: key.name,
                        account: key.account,
                    });
                }
                if st.consumers.len() + queues >= MAX_CONSUMERS_PER_STREAM {
                    return Err(Error::TooManyConsumers {
                        name: key.name,
                        account: key.account,
                        limit: MAX_CONSUMERS_PER_STREAM,
                    });
                }
                let creating = st
                    .consumers
                    .iter()
                    .filter(|c| c.status == ConsumerStatus::Creating)
                    .count();
                if creating >= MAX_CREATING_CONSUMERS {
                    return Err(Error::TooManyCreatingConsumers {
                        name: key.name,
                        account: key.account,
                        limit: MAX_CREATING_CONSUMERS,
                    });
                }
                let consumer = ConsumerMeta {
                    name,
                    created_ms: now,
                    status: if delay.is_zero() {
                        ConsumerStatus::Active
                    } else {
                        ConsumerStatus::Creating
                    },
                    tags,
                    policy: None,
                };
                st.consumers.push(consumer.clone());
                Ok(consumer)
            })
            .await?;
        tracing::info!(stream = %stream.key.name, consumer = %consumer.name, "consumer registered");
        if !delay.is_zero() {
            let (uid, name, created_ms) = (stream.uid, consumer.name.clone(), consumer.created_ms);
            self.after(delay, move |broker| {
                broker.change_consumer_now(uid, &name, created_ms, |st, i| {
                    if st.consumers[i].status != ConsumerStatus::Creating {
                        return false;
                    }
                    st.consumers[i].status = ConsumerStatus::Active;
                    true
                })
            });
        }
        Ok(consumer)
    }

    /// Deregisters the consumer `name` created at `created_ms`: DELETING, gone after the
    /// configured delay (at once with no delay). Only an ACTIVE consumer can be deregistered.
    pub async fn deregister_consumer(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        name: String,
        created_ms: i64,
    ) -> Result<()> {
        let delay = self.settings.deregister_consumer_delay;
        let key = stream.key.clone();
        let consumer = name.clone();
        self.update_stream(stream, move |st| {
            let Some(i) = position(st, &consumer, created_ms) else {
                return Err(Error::ConsumerNotFound {
                    consumer,
                    name: key.name,
                    account: key.account,
                });
            };
            if st.consumers[i].status != ConsumerStatus::Active {
                return Err(Error::ConsumerNotActive {
                    consumer,
                    created_ms,
                    name: key.name,
                    account: key.account,
                });
            }
            if delay.is_zero() {
                st.consumers.remove(i);
            } else {
                st.consumers[i].status = ConsumerStatus::Deleting;
            }
            Ok(())
        })
        .await?;
        // Live SubscribeToShard sessions of this consumer must end now, not after the delay.
        self.fanout.consumers_changed();
        tracing::info!(stream = %stream.key.name, consumer = %name, "consumer deregistered");
        if !delay.is_zero() {
            let uid = stream.uid;
            self.after(delay, move |broker| {
                broker.change_consumer_now(uid, &name, created_ms, |st, i| {
                    st.consumers.remove(i);
                    true
                })?;
                broker.fanout.consumers_changed();
                Ok(())
            });
        }
        Ok(())
    }

    /// Applies `change` to the tags of the consumer `name` created at `created_ms` and
    /// persists them. `change` must leave the tags alone when it refuses (its result says so).
    pub async fn update_consumer_tags<T, F>(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        name: String,
        created_ms: i64,
        change: F,
    ) -> Result<T>
    where
        F: FnOnce(&mut BTreeMap<String, String>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let key = stream.key.clone();
        self.update_stream(stream, move |st| match position(st, &name, created_ms) {
            Some(i) => Ok(change(&mut st.consumers[i].tags)),
            None => Err(Error::ConsumerNotFound {
                consumer: name,
                name: key.name,
                account: key.account,
            }),
        })
        .await
    }

    /// A timer's consumer transition (blocking): applies `change` to the consumer `name`
    /// created at `created_ms` if it still exists and persists; undone if the catalog
    /// cannot be written. `change` returns false to leave everything as it is.
    fn change_consumer_now(
        &self,
        uid: u64,
        name: &str,
        created_ms: i64,
        change: impl FnOnce(&mut StreamState, usize) -> bool,
    ) -> Result<()> {
        let Some(stream) = self.registry().streams.get(&uid).cloned() else {
            return Ok(());
        };
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        let before = {
            let mut st = stream.state_mut();
            let Some(i) = position(&st, name, created_ms) else {
                return Ok(());
            };
            let before = st.clone();
            if !change(&mut st, i) {
                return Ok(());
            }
            before
        };
        if let Err(e) = self.persist_locked() {
            *stream.state_mut() = before;
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_round_trips_through_the_parser() {
        let c = ConsumerMeta {
            name: "app.v2".into(),
            created_ms: 1_700_000_123_456,
            status: ConsumerStatus::Active,
            tags: BTreeMap::new(),
            policy: None,
        };
        let stream_arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders";
        let arn = c.arn(stream_arn);
        assert_eq!(
            arn,
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/app.v2:1700000123"
        );
        let p = parse_consumer_arn(&arn).unwrap();
        assert_eq!(p.stream_arn, stream_arn);
        assert_eq!(p.stream.name, "orders");
        assert_eq!(p.stream.account, "123456789012");
        assert_eq!(p.stream.region, "eu-west-1");
        assert_eq!((p.name.as_str(), p.created_secs), ("app.v2", 1_700_000_123));
    }

    #[test]
    fn malformed_consumer_arns_are_rejected() {
        for bad in [
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/app",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/app:",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/app:12x",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/a b:1",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/:1",
            "arn:aws:kinesis:eu-west-1:1234:stream/orders/consumer/app:1",
            "arn:aws:sqs:eu-west-1:123456789012:stream/orders/consumer/app:1",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/app:99999999999999999999",
        ] {
            assert!(parse_consumer_arn(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_restart_finishes_interrupted_transitions() {
        let c = |name: &str, status| ConsumerMeta {
            name: name.into(),
            created_ms: 1,
            status,
            tags: BTreeMap::new(),
            policy: None,
        };
        let settled = settle_after_restart(&[
            c("a", ConsumerStatus::Creating),
            c("b", ConsumerStatus::Deleting),
            c("c", ConsumerStatus::Active),
        ]);
        assert_eq!(
            settled,
            [
                c("a", ConsumerStatus::Active),
                c("c", ConsumerStatus::Active)
            ]
        );
    }
}
