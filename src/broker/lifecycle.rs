//! Stream lifecycle: look-up, account quotas, creation (CREATING → ACTIVE), background
//! updates (UPDATING → ACTIVE) and deletion (DELETING → gone), each after its configured
//! delay, on timers that stop at shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::catalog::{StreamExtras, StreamMode, StreamStatus};
use super::stream::{self, Shard, Stream, StreamKey, StreamState};
use super::{
    Broker, DEFAULT_MAX_RECORD_SIZE_KIB, DEFAULT_RETENTION_HOURS, Error, Result, hash,
    make_stream_id,
};

impl Broker {
    /// Applies `change` to an ACTIVE stream as AWS's asynchronous operations do
    /// (encryption, resharding, mode changes): the stream is UPDATING for the configured
    /// delay, then ACTIVE again. A stream in another state gives [`Error::StreamNotActive`].
    pub async fn update_stream_in_background<T, F>(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        change: F,
    ) -> Result<T>
    where
        F: FnOnce(&mut StreamState) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let delay = self.settings.update_delay;
        let key = stream.key.clone();
        let out = self
            .update_stream(stream, move |st| {
                if st.status != StreamStatus::Active {
                    return Err(Error::StreamNotActive {
                        name: key.name,
                        account: key.account,
                        status: st.status,
                    });
                }
                let out = change(st)?;
                if !delay.is_zero() {
                    st.status = StreamStatus::Updating;
                }
                Ok(out)
            })
            .await?;
        if !delay.is_zero() {
            let uid = stream.uid;
            self.after(delay, move |broker| broker.finish_update(uid));
        }
        Ok(out)
    }

    pub(super) fn finish_update(&self, uid: u64) -> Result<()> {
        let Some(stream) = self.registry().streams.get(&uid).cloned() else {
            return Ok(());
        };
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut st = stream.state_mut();
            if st.status != StreamStatus::Updating {
                return Ok(());
            }
            st.status = StreamStatus::Active;
        }
        self.persist_locked()
    }

    /// The account's open shards and on-demand streams in a region, for DescribeLimits.
    pub fn usage(&self, account: &str, region: &str) -> (usize, usize) {
        let streams = self.list_streams(account, region);
        let open = streams.iter().map(|s| s.state().open.len()).sum();
        let on_demand = streams
            .iter()
            .filter(|s| s.state().mode == StreamMode::OnDemand)
            .count();
        (open, on_demand)
    }

    /// The account's shard limit per region.
    pub fn shard_limit(&self) -> u32 {
        self.settings.shard_limit
    }

    /// The account's on-demand stream limit per region.
    pub fn on_demand_stream_limit(&self) -> u32 {
        self.settings.on_demand_stream_limit
    }

    /// The stream with this key, in any state.
    pub fn stream(&self, key: &StreamKey) -> Result<Arc<Stream>> {
        let reg = self.registry();
        reg.by_key
            .get(key)
            .and_then(|uid| reg.streams.get(uid))
            .cloned()
            .ok_or_else(|| Error::StreamNotFound {
                name: key.name.clone(),
                account: key.account.clone(),
            })
    }

    /// Every stream of an account and region, sorted by name.
    pub fn list_streams(&self, account: &str, region: &str) -> Vec<Arc<Stream>> {
        let reg = self.registry();
        reg.by_key
            .iter()
            .filter(|(k, _)| k.account == account && k.region == region)
            .filter_map(|(_, uid)| reg.streams.get(uid).cloned())
            .collect()
    }

    /// Fails with [`Error::LimitExceeded`] when creating `additional` shards would take the
    /// account past its shard limit in the stream's region.
    pub fn check_shard_limit(&self, key: &StreamKey, additional: u32) -> Result<()> {
        let (current, _) = self.usage(&key.account, &key.region);
        let limit = self.settings.shard_limit as usize;
        if current + additional as usize > limit {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {current}. Limit: {limit}. Number of additional shards that would have resulted from this request: {additional}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                key.account, key.region
            )));
        }
        Ok(())
    }

    /// Fails with [`Error::LimitExceeded`] when the account already has as many on-demand
    /// streams in the region as its limit allows.
    pub fn check_on_demand_limit(&self, key: &StreamKey) -> Result<()> {
        let (_, on_demand) = self.usage(&key.account, &key.region);
        let limit = self.settings.on_demand_stream_limit as usize;
        if on_demand >= limit {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the on-demand stream count limit for the account {} in {}. Current on-demand stream count for the account: {on_demand}. Limit: {limit}.",
                key.account, key.region
            )));
        }
        Ok(())
    }

    /// Creates a stream in CREATING; it turns ACTIVE after the configured delay.
    pub async fn create_stream(
        self: &Arc<Self>,
        key: StreamKey,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        self.create_stream_with(key, shard_count, mode, tags, StreamExtras::default())
            .await
    }

    /// [`Broker::create_stream`] with settings CreateStream can give at creation (such as
    /// the record distribution strategy), stored with the stream in the same catalog write.
    pub async fn create_stream_with(
        self: &Arc<Self>,
        key: StreamKey,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
        extras: StreamExtras,
    ) -> Result<()> {
        let delay = self.settings.create_delay;
        let me = self.clone();
        let uid = tokio::task::spawn_blocking(move || {
            let status = if delay.is_zero() {
                StreamStatus::Active
            } else {
                StreamStatus::Creating
            };
            // The limits are checked again under the creation lock, so concurrent creates
            // cannot together pass the account's quotas.
            let _one_at_a_time = me.create_lock.lock().unwrap_or_else(|e| e.into_inner());
            me.check_shard_limit(&key, shard_count)?;
            if mode == StreamMode::OnDemand {
                me.check_on_demand_limit(&key)?;
            }
            me.insert_stream(key, shard_count, mode, tags, status, extras)
        })
        .await
        .map_err(|e| Error::Catalog(format!("stream creation failed: {e}")))??;
        if !delay.is_zero() {
            self.after(delay, move |broker| broker.finish_create(uid));
        }
        Ok(())
    }

    /// Creates an ACTIVE stream right away (start-up streams).
    pub(super) fn create_stream_now(
        &self,
        key: StreamKey,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
    ) -> Result<u64> {
        self.insert_stream(
            key,
            shard_count,
            mode,
            tags,
            StreamStatus::Active,
            StreamExtras::default(),
        )
    }

    /// Opens the shard logs of a new stream and records it (blocking).
    pub(super) fn insert_stream(
        &self,
        key: StreamKey,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
        status: StreamStatus,
        extras: StreamExtras,
    ) -> Result<u64> {
        let now = self.clock.now_ms();
        // Reserve the name and a uid first, so two concurrent creates cannot both win.
        let uid = {
            let mut reg = self.registry_mut();
            if reg.by_key.contains_key(&key) {
                return Err(Error::StreamExists {
                    name: key.name,
                    account: key.account,
                });
            }
            let uid = reg.next_uid;
            reg.next_uid += 1;
            reg.by_key.insert(key.clone(), uid);
            uid
        };
        let build = || -> Result<Arc<Stream>> {
            let mut shards = Vec::with_capacity(shard_count as usize);
            for (i, range) in hash::even_split(shard_count).into_iter().enumerate() {
                let index = i as u32;
                let log = storage::Log::open(
                    self.shard_dir(uid, index),
                    self.settings.log_options.clone(),
                )
                .map_err(|e| {
                    disk_full_as_limit(e, || format!("create stream {}", key.name), index)
                })?;
                shards.push(Arc::new(Shard {
                    index,
                    id: stream::shard_id(index),
                    range,
                    parent: None,
                    adjacent_parent: None,
                    created_ms: now,
                    closed: RwLock::new(None),
                    log: Arc::new(log),
                    throttle: Default::default(),
                    demand: Default::default(),
                    tail: Default::default(),
                    metrics: Default::default(),
                }));
            }
            let mut state = StreamState {
                status,
                mode,
                retention_hours: DEFAULT_RETENTION_HOURS,
                max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
                tags,
                shards,
                open: Vec::new(),
                extras,
                consumers: Vec::new(),
            };
            state.reindex();
            Ok(Arc::new(Stream::new(
                uid,
                key.clone(),
                make_stream_id(uid, now),
                now,
                state,
            )))
        };
        match build() {
            Ok(stream) => {
                self.registry_mut().streams.insert(uid, stream);
                if let Err(e) = self.persist() {
                    self.forget_stream(uid);
                    return Err(e);
                }
                tracing::info!(stream = %key.name, account = %key.account, shards = shard_count, "stream created");
                Ok(uid)
            }
            Err(e) => {
                self.forget_stream(uid);
                Err(e)
            }
        }
    }

    /// Removes a stream from the registry and deletes its files.
    pub(super) fn forget_stream(&self, uid: u64) {
        let removed = {
            let mut reg = self.registry_mut();
            let removed = reg.streams.remove(&uid);
            reg.by_key.retain(|_, v| *v != uid);
            if let Some(s) = &removed {
                reg.deleted.insert(uid, s.key.clone());
            }
            removed
        };
        drop(removed);
        self.fanout.consumers_changed();
        let dir = self.stream_dir(uid);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted stream's files");
        }
    }

    /// Runs `action` after `delay` unless the broker shuts down first. Lifecycle
    /// transitions interrupted by a shutdown are completed by [`Broker::open`].
    pub(super) fn after(
        self: &Arc<Self>,
        delay: Duration,
        action: impl FnOnce(&Arc<Broker>) -> Result<()> + Send + 'static,
    ) {
        let weak = Arc::downgrade(self);
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
            if let Some(broker) = weak.upgrade() {
                let result = tokio::task::spawn_blocking(move || action(&broker)).await;
                match result {
                    Ok(Err(e)) => tracing::error!(error = %e, "stream lifecycle transition failed"),
                    Err(e) => tracing::error!(error = %e, "stream lifecycle task panicked"),
                    Ok(Ok(())) => {}
                }
            }
        });
    }

    pub(super) fn finish_create(&self, uid: u64) -> Result<()> {
        let Some(stream) = self.registry().streams.get(&uid).cloned() else {
            return Ok(());
        };
        {
            let mut st = stream.state_mut();
            if st.status != StreamStatus::Creating {
                return Ok(());
            }
            st.status = StreamStatus::Active;
        }
        self.persist()
    }

    pub(super) fn finish_delete(&self, uid: u64) -> Result<()> {
        self.forget_stream(uid);
        self.persist()
    }

    /// Deletes a stream with its consumers: DELETING now, gone after the configured delay.
    pub async fn delete_stream(self: &Arc<Self>, stream: &Arc<Stream>) -> Result<()> {
        self.delete_stream_checked(stream, true).await
    }

    /// Deletes a stream: DELETING now, gone after the configured delay. A stream with
    /// registered consumers is refused unless `enforce_consumer_deletion` (AWS's
    /// `EnforceConsumerDeletion`); with it, the consumers turn DELETING and go with the stream.
    pub async fn delete_stream_checked(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        enforce_consumer_deletion: bool,
    ) -> Result<()> {
        let had_consumers = {
            // Checked and changed under one write lock, so a consumer or queue created
            // concurrently is either seen here or refused for a stream no longer ACTIVE (a
            // queue is registered before its creator looks at the stream again).
            let mut st = stream.state_mut();
            if self.queues.count_on_stream(stream.uid) > 0 {
                return Err(Error::StreamHasQueues {
                    name: stream.key.name.clone(),
                    account: stream.key.account.clone(),
                    action: "delete",
                });
            }
            if self.channels.count_on_stream(stream.uid) > 0 {
                return Err(Error::StreamHasChannels {
                    name: stream.key.name.clone(),
                    account: stream.key.account.clone(),
                    action: "delete",
                });
            }
            // AWS lets a stream be deleted while CREATING, not while UPDATING or DELETING.
            if !matches!(st.status, StreamStatus::Active | StreamStatus::Creating) {
                return Err(Error::StreamNotActive {
                    name: stream.key.name.clone(),
                    account: stream.key.account.clone(),
                    status: st.status,
                });
            }
            if !enforce_consumer_deletion && !st.consumers.is_empty() {
                return Err(Error::StreamHasConsumers {
                    name: stream.key.name.clone(),
                    account: stream.key.account.clone(),
                });
            }
            for consumer in &mut st.consumers {
                consumer.status = super::fanout::registry::ConsumerStatus::Deleting;
            }
            st.status = StreamStatus::Deleting;
            !st.consumers.is_empty()
        };
        if had_consumers {
            self.fanout.consumers_changed();
        }
        // Event-source mappings stop reading a stream that is going away.
        self.event_source_deleted(&stream.key).await;
        let uid = stream.uid;
        let delay = self.settings.delete_delay;
        if delay.is_zero() {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.finish_delete(uid))
                .await
                .map_err(|e| Error::Catalog(format!("stream deletion failed: {e}")))??;
        } else {
            self.persist_async().await?;
            self.after(delay, move |broker| broker.finish_delete(uid));
        }
        Ok(())
    }
}

/// A shard log that cannot be created for lack of disk space is refused as the broker's own
/// limit (LimitExceededException, with the reason), not as an internal failure: the caller
/// creates nothing (the shard's files are removed, the catalog is not written), and the request
/// can succeed once space is freed. Other storage errors stay what they are.
pub(super) fn disk_full_as_limit(
    e: storage::Error,
    action: impl FnOnce() -> String,
    shard_index: u32,
) -> Error {
    if !super::write::is_disk_full(&e) {
        return e.into();
    }
    tracing::warn!(error = %e, "no disk space for a new shard");
    Error::LimitExceeded(format!(
        "Not enough disk space to {}: the broker could not reserve disk space for {} in its data directory. Free disk space and retry.",
        action(),
        stream::shard_id(shard_index)
    ))
}
