//! Tags on streams: AddTagsToStream, RemoveTagsFromStream, ListTagsForStream, and the
//! ARN-based TagResource, UntagResource, ListTagsForResource.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::common::{parse_stream_arn, stream_key};
use crate::api::generated::{
    AddTagsToStreamInput, ListTagsForResourceInput, ListTagsForResourceOutput,
    ListTagsForStreamInput, ListTagsForStreamOutput, RemoveTagsFromStreamInput, Tag,
    TagResourceInput, UntagResourceInput,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::stream::{Stream, StreamKey};

/// Most tags a stream may carry: 50, as AWS documents.
pub const MAX_TAGS_PER_STREAM: usize = 50;
/// Tags per ListTagsForStream page when `Limit` is absent.
const DEFAULT_TAG_PAGE: usize = 50;

/// True for a character AWS allows in tag keys and values: Unicode letters, digits, white
/// space and `_ . / = + - % @ :` (the character class kinesalite copies from AWS's checks).
fn allowed_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "_./=+-%@: ".contains(c)
        || ('\u{00C0}'..='\u{1FFF}').contains(&c)
        || ('\u{2C00}'..='\u{D7FF}').contains(&c)
}

/// AWS's two checks on tag text, in AWS's order: characters outside the allowed set, then
/// `%`, which the class admits but the service refuses.
fn check_tag_text<'a>(
    texts: impl Iterator<Item = &'a str> + Clone,
    verb: &str,
    key: &StreamKey,
) -> Result<(), ApiError> {
    if texts.clone().any(|t| !t.chars().all(allowed_tag_char)) {
        return Err(api_error!(
            InvalidArgumentException,
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @ :."
        ));
    }
    if texts.clone().any(|t| t.contains('%')) {
        return Err(api_error!(
            InvalidArgumentException,
            "Failed to {verb} stream {} under account {} because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@',':'.",
            key.name,
            key.account
        ));
    }
    Ok(())
}

async fn add(
    broker: &Arc<Broker>,
    stream: &Arc<Stream>,
    tags: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    super::common::require_active(stream)?;
    let key = stream.key.clone();
    check_tag_text(
        tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        "add tags to",
        &key,
    )?;
    let too_many = broker
        .update_stream(stream, move |st| {
            let after = tags.keys().filter(|k| !st.tags.contains_key(*k)).count() + st.tags.len();
            if after > MAX_TAGS_PER_STREAM {
                return Ok(true);
            }
            st.tags.extend(tags);
            Ok(false)
        })
        .await?;
    if too_many {
        return Err(api_error!(
            InvalidArgumentException,
            "Failed to add tags to stream {} under account {} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it.",
            key.name,
            key.account
        ));
    }
    Ok(())
}

async fn remove(
    broker: &Arc<Broker>,
    stream: &Arc<Stream>,
    keys: Vec<String>,
) -> Result<(), ApiError> {
    super::common::require_active(stream)?;
    check_tag_text(
        keys.iter().map(String::as_str),
        "remove tags from",
        &stream.key,
    )?;
    broker
        .update_stream(stream, move |st| {
            for k in &keys {
                st.tags.remove(k);
            }
            Ok(())
        })
        .await?;
    Ok(())
}

fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: Some(v.clone()),
        })
        .collect()
}

/// The stream a `ResourceARN` names. Consumers, channels and queues have no tags here
/// yet (enhanced fan-out is a later issue; channels and queues are not emulated).
fn resource_stream(broker: &Broker, arn: &str) -> Result<Arc<Stream>, ApiError> {
    let key = parse_stream_arn(arn)
        .ok_or_else(|| api_error!(ResourceNotFoundException, "Resource {arn} not found."))?;
    Ok(broker.stream(&key)?)
}

/// AddTagsToStream.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn add_tags_to_stream(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: AddTagsToStreamInput,
) -> Result<(), ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    add(broker, &stream, input.tags.unwrap_or_default()).await
}

/// RemoveTagsFromStream.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn remove_tags_from_stream(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: RemoveTagsFromStreamInput,
) -> Result<(), ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    remove(broker, &stream, input.tag_keys.unwrap_or_default()).await
}

/// ListTagsForStream: tags sorted by key, paged by `ExclusiveStartTagKey` and `Limit`.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn list_tags_for_stream(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    let limit = input
        .limit
        .map(|l| l.max(1) as usize)
        .unwrap_or(DEFAULT_TAG_PAGE);
    let st = stream.state();
    let after: Vec<(&String, &String)> = st
        .tags
        .iter()
        .filter(|(k, _)| {
            input
                .exclusive_start_tag_key
                .as_ref()
                .is_none_or(|start| *k > start)
        })
        .collect();
    Ok(ListTagsForStreamOutput {
        has_more_tags: after.len() > limit,
        tags: after
            .into_iter()
            .take(limit)
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: Some(v.clone()),
            })
            .collect(),
    })
}

/// TagResource.
#[tracing::instrument(skip_all)]
pub async fn tag_resource(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: TagResourceInput,
) -> Result<(), ApiError> {
    let stream = resource_stream(broker, input.resource_arn.as_deref().unwrap_or_default())?;
    add(broker, &stream, input.tags.unwrap_or_default()).await
}

/// UntagResource.
#[tracing::instrument(skip_all)]
pub async fn untag_resource(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: UntagResourceInput,
) -> Result<(), ApiError> {
    let stream = resource_stream(broker, input.resource_arn.as_deref().unwrap_or_default())?;
    remove(broker, &stream, input.tag_keys.unwrap_or_default()).await
}

/// ListTagsForResource.
#[tracing::instrument(skip_all)]
pub async fn list_tags_for_resource(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, ApiError> {
    let stream = resource_stream(broker, input.resource_arn.as_deref().unwrap_or_default())?;
    let tags = tag_list(&stream.state().tags);
    Ok(ListTagsForResourceOutput { tags: Some(tags) })
}

/// Tags given to CreateStream obey the same rules as AddTagsToStream.
pub fn check_create_tags(tags: &BTreeMap<String, String>, key: &StreamKey) -> Result<(), ApiError> {
    check_tag_text(
        tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        "add tags to",
        key,
    )?;
    if tags.len() > MAX_TAGS_PER_STREAM {
        return Err(api_error!(
            InvalidArgumentException,
            "Failed to add tags to stream {} under account {} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it.",
            key.name,
            key.account
        ));
    }
    Ok(())
}
