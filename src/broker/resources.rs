//! What queues and channels share as resources the broker keeps beside streams: a map by
//! ARN with per-account lookups, files in a directory of their own, random ids, the
//! on-demand stream they need, tag changes and the DELETING → gone lifecycle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::catalog::{StreamMode, StreamStatus};
use super::stream::{StreamKey, StreamState};
use super::{Broker, Error, Result};

/// Who a resource belongs to, as its settings say.
pub(crate) struct Owner<'a> {
    pub name: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    /// The stream incarnation it reads.
    pub stream_uid: u64,
}

/// A resource kept by ARN whose settings are stored with every change.
pub(crate) trait Resource: Send + Sync + 'static {
    type Meta: Clone + Send + 'static;
    /// Its kind in messages: "queue", "channel".
    const KIND: &'static str;

    fn meta_ref(&self) -> RwLockReadGuard<'_, Self::Meta>;

    /// Changes the settings with `change` and stores them; undone when they cannot be
    /// stored. Blocking.
    fn change_meta<T>(&self, change: impl FnOnce(&mut Self::Meta) -> T) -> Result<(Self::Meta, T)>;

    fn owner(meta: &Self::Meta) -> Owner<'_>;
    fn arn(meta: &Self::Meta) -> String;
    fn tags_mut(meta: &mut Self::Meta) -> &mut BTreeMap<String, String>;
    fn is_deleting(meta: &Self::Meta) -> bool;
    fn set_deleting(meta: &mut Self::Meta);

    /// Removes the resource from the broker at once (the end of DELETING). Blocking.
    fn forget(broker: &Broker, arn: &str) -> Result<()>;
    /// The end of the deletion delay: [`Resource::forget`] unless the resource left
    /// DELETING meanwhile. Blocking.
    fn finish_deleting(broker: &Broker, arn: &str) -> Result<()>;
}

/// Every resource of one kind, by ARN.
#[derive(Debug)]
pub(crate) struct ByArn<R> {
    map: RwLock<BTreeMap<String, Arc<R>>>,
}

impl<R: Resource> ByArn<R> {
    pub fn new(map: BTreeMap<String, Arc<R>>) -> Self {
        ByArn {
            map: RwLock::new(map),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<R>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, arn: &str) -> Option<Arc<R>> {
        self.read().get(arn).cloned()
    }

    /// Every resource, in any status.
    pub fn all(&self) -> Vec<Arc<R>> {
        self.read().values().cloned().collect()
    }

    pub fn insert(&self, arn: String, resource: Arc<R>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(arn, resource);
    }

    pub fn remove(&self, arn: &str) -> Option<Arc<R>> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(arn)
    }

    fn count(&self, counted: impl Fn(&Owner<'_>) -> bool) -> usize {
        self.read()
            .values()
            .filter(|r| counted(&R::owner(&r.meta_ref())))
            .count()
    }

    /// Resources (any status) on stream incarnation `stream_uid`.
    pub fn count_on_stream(&self, stream_uid: u64) -> usize {
        self.count(|o| o.stream_uid == stream_uid)
    }

    /// Resources (any status) of an account in a region.
    pub fn count_in_account(&self, account: &str, region: &str) -> usize {
        self.count(|o| o.account == account && o.region == region)
    }

    /// Whether an account has one of this name in a region.
    pub fn has_named(&self, name: &str, account: &str, region: &str) -> bool {
        self.read().values().any(|r| {
            let meta = r.meta_ref();
            let o = R::owner(&meta);
            o.name == name && o.account == account && o.region == region
        })
    }

    /// Every resource of an account and region, sorted by name.
    pub fn list(&self, account: &str, region: &str) -> Vec<R::Meta> {
        let mut all: Vec<R::Meta> = self
            .read()
            .values()
            .map(|r| r.meta_ref().clone())
            .filter(|m| {
                let o = R::owner(m);
                o.account == account && o.region == region
            })
            .collect();
        all.sort_by(|a, b| R::owner(a).name.cmp(R::owner(b).name));
        all
    }
}

/// The files ending in `.{extension}` in `dir`, which is created when missing.
pub(crate) fn stored_files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Catalog(format!("cannot create {}: {e}", dir.display())))?;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Catalog(format!("cannot list {}: {e}", dir.display())))?;
    Ok(entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some(extension))
        .collect())
}

/// `N` random bytes, for the ids of a new `what`.
pub(crate) fn random_bytes<const N: usize>(what: &str) -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Catalog(format!("no randomness for a {what} id: {e}")))?;
    Ok(bytes)
}

/// An ARN's resource id: 20 lowercase letters and digits drawn from `random`.
pub(crate) fn resource_id(random: &[u8; 20]) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    random
        .iter()
        .map(|b| ALPHABET[*b as usize % 36] as char)
        .collect()
}

/// Queues and channels need an ACTIVE on-demand stream; `not_on_demand` makes the
/// resource's own error from the stream's name and account.
pub(crate) fn require_active_on_demand<E: From<Error>>(
    key: &StreamKey,
    state: &StreamState,
    not_on_demand: impl FnOnce(String, String) -> E,
) -> std::result::Result<(), E> {
    if state.status != StreamStatus::Active {
        return Err(Error::StreamNotActive {
            name: key.name.clone(),
            account: key.account.clone(),
            status: state.status,
        }
        .into());
    }
    if state.mode != StreamMode::OnDemand {
        return Err(not_on_demand(key.name.clone(), key.account.clone()));
    }
    Ok(())
}

/// Runs blocking `work` (it may fsync) off the runtime; `what` names it when it fails.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Catalog(format!("{what} failed: {e}")))
}

/// Applies `change` to a resource's tags and stores them (TagResource, UntagResource).
/// `change` must leave the tags alone when it refuses (its result says so).
pub(crate) async fn update_tags<R: Resource, T: Send + 'static>(
    resource: &Arc<R>,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> T + Send + 'static,
) -> Result<T> {
    let r = resource.clone();
    let what = format!("{} tag update", R::KIND);
    let (_, out) = blocking(&what, move || r.change_meta(|m| change(R::tags_mut(m)))).await??;
    Ok(out)
}

impl Broker {
    /// DeleteQueue, DeleteChannel: DELETING at once, gone after the deletion delay.
    /// Deleting a resource already DELETING changes nothing: the answer is false.
    pub(crate) async fn delete_resource<R: Resource>(
        self: &Arc<Self>,
        resource: &Arc<R>,
    ) -> Result<bool> {
        let delay = self.settings.delete_delay;
        let arn = R::arn(&resource.meta_ref());
        if R::is_deleting(&resource.meta_ref()) {
            return Ok(false);
        }
        let me = self.clone();
        let r = resource.clone();
        let forgotten = arn.clone();
        let what = format!("{} deletion", R::KIND);
        blocking(&what, move || -> Result<()> {
            if delay.is_zero() {
                R::forget(&me, &forgotten)
            } else {
                r.change_meta(R::set_deleting)?;
                Ok(())
            }
        })
        .await??;
        if !delay.is_zero() {
            self.after(delay, move |broker| R::finish_deleting(broker, &arn));
        }
        Ok(true)
    }
}
