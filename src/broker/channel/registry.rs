//! The broker's channels and their lifecycle: CreateChannel (CREATING → ACTIVE or FAILED),
//! UpdateChannel (UPDATING → ACTIVE), DeleteChannel (DELETING → gone), each after the
//! stream lifecycle delay of the same kind, on the broker's lifecycle timers.
//!
//! A channel belongs to one stream incarnation and lives only on on-demand streams; a
//! stream with channels cannot be deleted or switched to provisioned mode (the stream
//! paths ask [`Channels::count_on_stream`] under the stream's write lock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use super::{
    ChannelChange, ChannelError, ChannelMeta, ChannelResult, ChannelStatus, DEFAULT_CHANNEL_LIMIT,
};
use crate::broker::resources::{
    self, ByArn, Owner, Resource, random_bytes, require_active_on_demand, resource_id, stored_files,
};
use crate::broker::stream::Stream;
use crate::broker::{Broker, Error, Result};

const CHANNELS_DIR: &str = "channels";

/// Why a channel that finished CREATING cannot deliver (its `ChannelStatusReason`).
pub const NO_ENDPOINT_REASON: &str = "No S3 endpoint is configured: start kinesis-broker with --s3-endpoint URL (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) to deliver channels.";

/// One channel: its settings and status, and the file that keeps them.
#[derive(Debug)]
pub struct Channel {
    meta: RwLock<ChannelMeta>,
    store: storage::MetaStore,
    path: PathBuf,
    /// Whether its delivery task runs (one at a time).
    pub(super) running: AtomicBool,
}

impl Channel {
    /// The settings and status now.
    pub fn meta(&self) -> ChannelMeta {
        self.meta_ref().clone()
    }

    fn meta_ref(&self) -> RwLockReadGuard<'_, ChannelMeta> {
        self.meta.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the settings with `change` and stores them (fsync, rename); undone when they
    /// cannot be stored. Blocking.
    pub(super) fn change_meta<T>(
        &self,
        change: impl FnOnce(&mut ChannelMeta) -> T,
    ) -> Result<(ChannelMeta, T)> {
        let mut meta = self.meta.write().unwrap_or_else(|e| e.into_inner());
        let before = meta.clone();
        let out = change(&mut meta);
        if let Err(e) = store(&self.store, &meta) {
            *meta = before;
            return Err(e);
        }
        Ok((meta.clone(), out))
    }
}

impl Resource for Channel {
    type Meta = ChannelMeta;
    const KIND: &'static str = "channel";

    fn meta_ref(&self) -> RwLockReadGuard<'_, ChannelMeta> {
        Channel::meta_ref(self)
    }

    fn change_meta<T>(
        &self,
        change: impl FnOnce(&mut ChannelMeta) -> T,
    ) -> Result<(ChannelMeta, T)> {
        Channel::change_meta(self, change)
    }

    fn owner(meta: &ChannelMeta) -> Owner<'_> {
        Owner {
            name: &meta.name,
            account: &meta.account,
            region: &meta.region,
            stream_uid: meta.stream_uid,
        }
    }

    fn arn(meta: &ChannelMeta) -> String {
        meta.arn()
    }

    fn tags_mut(meta: &mut ChannelMeta) -> &mut BTreeMap<String, String> {
        &mut meta.tags
    }

    fn is_deleting(meta: &ChannelMeta) -> bool {
        meta.status == ChannelStatus::Deleting
    }

    fn set_deleting(meta: &mut ChannelMeta) {
        meta.status = ChannelStatus::Deleting;
    }

    fn forget(broker: &Broker, arn: &str) -> Result<()> {
        broker.forget_channel(arn)
    }

    fn finish_deleting(broker: &Broker, arn: &str) -> Result<()> {
        broker.finish_channel_transition(arn, ChannelStatus::Deleting)
    }
}

fn store(store: &storage::MetaStore, meta: &ChannelMeta) -> Result<()> {
    let bytes = serde_json::to_vec(meta)
        .map_err(|e| Error::Catalog(format!("cannot encode a channel: {e}")))?;
    Ok(store.store(&bytes)?)
}

/// Every channel of the broker, by ARN.
#[derive(Debug)]
pub struct Channels {
    dir: PathBuf,
    by_arn: ByArn<Channel>,
    /// Serialises creations, so the name and limit checks and the insert they guard are
    /// atomic.
    create_lock: Mutex<()>,
    /// Channels an account may have in a region.
    limit: u32,
    /// Where objects go; none without `--s3-endpoint`.
    pub(super) sink: Option<Arc<super::s3::S3Sink>>,
    /// `--channel-buffer-bytes`.
    pub(super) buffer_bytes: u64,
}

impl Channels {
    /// Loads the channels kept in `data_dir`, finishing the transitions a stop interrupted:
    /// CREATING ends as it would have, UPDATING is over, DELETING channels are gone.
    pub fn open(data_dir: &Path, s3_endpoint: Option<&str>, buffer_bytes: u64) -> Result<Channels> {
        let sink = s3_endpoint.map(|e| Arc::new(super::s3::S3Sink::new(e)));
        let dir = data_dir.join(CHANNELS_DIR);
        let mut by_arn = BTreeMap::new();
        for path in stored_files(&dir, "json")? {
            let store = storage::MetaStore::open(&path)?;
            let Some(bytes) = store.load()? else {
                continue;
            };
            let mut meta: ChannelMeta = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Catalog(format!(
                    "channel file {} does not decode: {e}",
                    path.display()
                ))
            })?;
            match meta.status {
                ChannelStatus::Deleting => {
                    remove_file(&path)?;
                    continue;
                }
                ChannelStatus::Creating => {
                    finish_creating(&mut meta, sink.is_some());
                    self::store(&store, &meta)?;
                }
                ChannelStatus::Updating => {
                    meta.status = ChannelStatus::Active;
                    if let Some(change) = meta.pending.take() {
                        meta.apply(change);
                    }
                    self::store(&store, &meta)?;
                }
                ChannelStatus::Active | ChannelStatus::Failed => {}
            }
            by_arn.insert(
                meta.arn(),
                Arc::new(Channel {
                    meta: RwLock::new(meta),
                    store,
                    path,
                    running: AtomicBool::new(false),
                }),
            );
        }
        Ok(Channels {
            dir,
            by_arn: ByArn::new(by_arn),
            create_lock: Mutex::new(()),
            limit: DEFAULT_CHANNEL_LIMIT,
            sink,
            buffer_bytes,
        })
    }

    /// Channels (any status) on stream incarnation `stream_uid`.
    pub fn count_on_stream(&self, stream_uid: u64) -> usize {
        self.by_arn.count_on_stream(stream_uid)
    }

    /// Channels (any status) of an account in a region.
    pub fn count_in_account(&self, account: &str, region: &str) -> usize {
        self.by_arn.count_in_account(account, region)
    }

    /// `ChannelCountLimit`.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Every channel, in any status.
    pub fn all(&self) -> Vec<Arc<Channel>> {
        self.by_arn.all()
    }

    /// The channel with this ARN.
    pub fn get(&self, arn: &str) -> Option<Arc<Channel>> {
        self.by_arn.get(arn)
    }

    /// Every channel of an account and region, sorted by name.
    pub fn list(&self, account: &str, region: &str) -> Vec<ChannelMeta> {
        self.by_arn.list(account, region)
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Catalog(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

/// The end of CREATING: ACTIVE, or FAILED with the reason when there is nowhere to deliver.
fn finish_creating(meta: &mut ChannelMeta, can_deliver: bool) {
    if can_deliver {
        meta.status = ChannelStatus::Active;
    } else {
        meta.status = ChannelStatus::Failed;
        meta.status_reason = Some(NO_ENDPOINT_REASON.to_string());
    }
}

/// What CreateChannel asks for, validated by `api`.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// `ChannelName`.
    pub name: String,
    /// The source stream.
    pub stream: crate::broker::stream::StreamKey,
    /// Everything else, as stored (identity, status and stream fields are filled here).
    pub meta: ChannelMeta,
}

/// A new random `ChannelId`: 20 lowercase letters and digits.
fn new_id() -> Result<String> {
    Ok(resource_id(&random_bytes("channel")?))
}

impl Broker {
    /// The broker's channels.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The channel an ARN names, in any status.
    pub fn channel(&self, account: &str, arn: &str) -> ChannelResult<Arc<Channel>> {
        self.channels
            .get(arn)
            .ok_or_else(|| ChannelError::NotFound {
                arn: arn.to_string(),
                account: account.to_string(),
            })
    }

    /// CreateChannel: checks the stream and the limit, stores the channel and answers
    /// CREATING (its end at once when the creation delay is zero).
    pub async fn create_channel(self: &Arc<Self>, new: NewChannel) -> ChannelResult<ChannelMeta> {
        let stream = self.stream(&new.stream)?;
        let delay = self.settings.create_delay;
        let me = self.clone();
        let meta = resources::blocking("channel creation", move || {
            me.create_channel_now(&stream, new, delay)
        })
        .await??;
        if delay.is_zero() {
            self.start_if_active(&meta.arn());
        } else {
            let arn = meta.arn();
            self.after(delay, move |broker| {
                broker.finish_channel_transition(&arn, ChannelStatus::Creating)?;
                broker.start_if_active(&arn);
                Ok(())
            });
        }
        tracing::info!(channel = %meta.name, stream = %meta.stream_name, "channel created");
        Ok(meta)
    }

    fn create_channel_now(
        &self,
        stream: &Arc<Stream>,
        new: NewChannel,
        delay: std::time::Duration,
    ) -> ChannelResult<ChannelMeta> {
        let _one_at_a_time = self
            .channels
            .create_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = &stream.key;
        refuse_unless_on_demand(stream)?;
        let arn = super::channel_arn(&key.region, &key.account, &new.name);
        if self.channels.get(&arn).is_some() {
            return Err(ChannelError::Exists {
                name: new.name,
                account: key.account.clone(),
            });
        }
        if self.channels.count_in_account(&key.account, &key.region) >= self.channels.limit as usize
        {
            return Err(ChannelError::TooMany {
                account: key.account.clone(),
                limit: self.channels.limit,
            });
        }
        let mut meta = new.meta;
        meta.id = new_id()?;
        // The documented default log group names the channel's id, known only now.
        if meta.logging.enabled && meta.logging.group.is_none() {
            meta.logging.group = Some(format!("/aws/kinesis/{}/{}", new.name, meta.id));
        }
        meta.name = new.name;
        meta.account = key.account.clone();
        meta.region = key.region.clone();
        meta.stream_name = key.name.clone();
        meta.stream_uid = stream.uid;
        meta.stream_created_ms = stream.created_ms;
        meta.created_ms = self.clock.now_ms();
        meta.status = ChannelStatus::Creating;
        meta.status_reason = None;
        meta.pending = None;
        // Delivery starts at the stream's tip when the channel is created (as Firehose reads
        // a Kinesis source from LATEST); shards created later start at their beginning.
        meta.cursor = Default::default();
        for shard in stream.state().shards.iter() {
            if shard.closed().is_some() {
                meta.cursor.finished.insert(shard.index);
            } else {
                meta.cursor
                    .next
                    .insert(shard.index, Broker::shard_end(shard));
            }
        }
        if delay.is_zero() {
            finish_creating(&mut meta, self.channels.sink.is_some());
        }
        let path = self.channels.dir.join(format!("{}.json", meta.id));
        let file = storage::MetaStore::open(&path).map_err(Error::from)?;
        store(&file, &meta)?;
        self.channels.by_arn.insert(
            arn.clone(),
            Arc::new(Channel {
                meta: RwLock::new(meta.clone()),
                store: file,
                path: path.clone(),
                running: AtomicBool::new(false),
            }),
        );
        // DeleteStream and the switch to PROVISIONED count channels under the stream's
        // write lock; a channel registered after such a count sees the change here and is
        // undone, so no channel outlives its stream's refusal.
        if let Err(refusal) = refuse_unless_on_demand(stream) {
            self.channels.by_arn.remove(&arn);
            let _ = remove_file(&path);
            return Err(refusal);
        }
        Ok(meta)
    }

    /// Starts the delivery of a channel that has just become ACTIVE.
    fn start_if_active(self: &Arc<Self>, arn: &str) {
        if let Some(channel) = self.channels.get(arn) {
            self.start_channel(channel);
        }
    }

    /// A lifecycle timer of a channel: CREATING → ACTIVE or FAILED, UPDATING → ACTIVE (the
    /// pending change applies from now), DELETING → gone; nothing unless the channel is
    /// still in state `from`. Blocking.
    fn finish_channel_transition(&self, arn: &str, from: ChannelStatus) -> Result<()> {
        let Some(channel) = self.channels.get(arn) else {
            return Ok(());
        };
        if channel.meta_ref().status != from {
            return Ok(());
        }
        match from {
            ChannelStatus::Creating => {
                let can_deliver = self.channels.sink.is_some();
                channel.change_meta(|m| finish_creating(m, can_deliver))?;
            }
            ChannelStatus::Updating => {
                channel.change_meta(|m| {
                    m.status = ChannelStatus::Active;
                    if let Some(change) = m.pending.take() {
                        m.apply(change);
                    }
                })?;
            }
            ChannelStatus::Deleting => self.forget_channel(arn)?,
            ChannelStatus::Active | ChannelStatus::Failed => {}
        }
        Ok(())
    }

    fn forget_channel(&self, arn: &str) -> Result<()> {
        if let Some(c) = self.channels.by_arn.remove(arn) {
            c.meta.write().unwrap_or_else(|e| e.into_inner()).status = ChannelStatus::Deleting;
            remove_file(&c.path)?;
            tracing::info!(channel = %c.meta_ref().name, "channel deleted");
        }
        Ok(())
    }

    /// UpdateChannel: UPDATING for the update delay (the change applies when it ends),
    /// at once without one. Only an ACTIVE channel can be updated.
    pub async fn update_channel(
        self: &Arc<Self>,
        channel: &Arc<Channel>,
        change: ChannelChange,
    ) -> ChannelResult<ChannelMeta> {
        let delay = self.settings.update_delay;
        let c = channel.clone();
        let meta = resources::blocking("channel update", move || -> ChannelResult<ChannelMeta> {
            let (meta, refused) = c.change_meta(|m| {
                if m.status != ChannelStatus::Active {
                    return Some(m.status);
                }
                if delay.is_zero() {
                    m.apply(change);
                } else {
                    m.status = ChannelStatus::Updating;
                    m.pending = Some(change);
                }
                None
            })?;
            match refused {
                Some(status) => Err(ChannelError::NotActive {
                    arn: meta.arn(),
                    status,
                }),
                None => Ok(meta),
            }
        })
        .await??;
        if !delay.is_zero() {
            let arn = meta.arn();
            self.after(delay, move |broker| {
                broker.finish_channel_transition(&arn, ChannelStatus::Updating)
            });
        }
        Ok(meta)
    }

    /// Applies `change` to a channel's tags and stores them (TagResource, UntagResource).
    /// `change` must leave the tags alone when it refuses (its result says so).
    pub async fn update_channel_tags<T: Send + 'static>(
        self: &Arc<Self>,
        channel: &Arc<Channel>,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> T + Send + 'static,
    ) -> ChannelResult<T> {
        Ok(resources::update_tags(channel, change).await?)
    }

    /// DeleteChannel: DELETING at once (nothing more is delivered), gone after the deletion
    /// delay. Deleting a channel already DELETING changes nothing.
    pub async fn delete_channel(self: &Arc<Self>, channel: &Arc<Channel>) -> ChannelResult<()> {
        self.delete_resource(channel).await?;
        Ok(())
    }
}

/// Channels need an ACTIVE on-demand stream.
fn refuse_unless_on_demand(stream: &Stream) -> ChannelResult<()> {
    require_active_on_demand(&stream.key, &stream.state(), |name, account| {
        ChannelError::NotOnDemand { name, account }
    })
}
