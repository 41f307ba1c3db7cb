//! Tags on streams: AddTagsToStream, RemoveTagsFromStream, ListTagsForStream, and the
//! ARN-based TagResource, UntagResource, ListTagsForResource (streams, consumers, queues,
//! channels).

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
use crate::broker::channel::Channel;
use crate::broker::fanout::registry::{ConsumerMeta, parse_consumer_arn};
use crate::broker::queue::Queue;
use crate::broker::stream::{Stream, StreamKey};

/// Most tags a stream may carry: 50, as AWS documents.
pub const MAX_TAGS_PER_STREAM: usize = 50;
/// How the tag messages name a stream.
fn stream_resource(key: &StreamKey) -> String {
    format!("stream {} under account {}", key.name, key.account)
}

/// How the tag messages name a consumer: AWS's stream wording with the consumer in front
/// (AWS's own text for consumers is NOT PINNED).
fn consumer_resource(key: &StreamKey, consumer: &str) -> String {
    format!(
        "consumer {consumer} under stream {} under account {}",
        key.name, key.account
    )
}

fn too_many_tags(verb_object: &str, kind: &str) -> ApiError {
    api_error!(
        InvalidArgumentException,
        "Failed to add tags to {verb_object} because a given {kind} cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it."
    )
}

/// Tags per ListTagsForStream page when `Limit` is absent.
const DEFAULT_TAG_PAGE: usize = 50;

/// True for a character AWS allows in tag keys and values: Unicode letters, digits, space
/// and `_ . / = + - % @` (the character class of kinesalite's `actions/addTagsToStream.js`),
/// and `:`, which AWS accepts although its messages and documentation leave it out
/// (mhart/kinesalite#107, a user's report against the live service).
fn allowed_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "_./=+-%@: ".contains(c)
        || ('\u{00C0}'..='\u{1FFF}').contains(&c)
        || ('\u{2C00}'..='\u{D7FF}').contains(&c)
}

/// Tags given at creation obey the rules of adding them later: their texts, and at most
/// [`MAX_TAGS_PER_STREAM`]. `what` names the resource in the messages, `kind` its type.
fn check_tags_to_add(
    tags: &BTreeMap<String, String>,
    what: &str,
    kind: &str,
) -> Result<(), ApiError> {
    check_tag_text(
        tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        "add tags to",
        what,
    )?;
    if tags.len() > MAX_TAGS_PER_STREAM {
        return Err(too_many_tags(what, kind));
    }
    Ok(())
}

/// Adds `tags` to `now` unless the union would exceed [`MAX_TAGS_PER_STREAM`]: then true, and
/// `now` is unchanged.
fn merge_within_limit(now: &mut BTreeMap<String, String>, tags: BTreeMap<String, String>) -> bool {
    let after = tags.keys().filter(|k| !now.contains_key(*k)).count() + now.len();
    if after > MAX_TAGS_PER_STREAM {
        return true;
    }
    now.extend(tags);
    false
}

/// AWS's two checks on tag text, in AWS's order: characters outside the allowed set, then
/// `%`, which the class admits but the service refuses.
///
/// Both texts are AWS's as kinesalite's tests recorded them against the live service
/// (`test/addTagsToStream.js`, `test/removeTagsFromStream.js`: "; in tag key", "% in tag
/// key"), odd list included (`','` in the second, no `.`). Neither names `:`: the variant
/// with `:` is only in an unmerged kinesalite pull request (#106), not from AWS, and the
/// model's documentation of `Tag.Key` still reads "Unicode letters, digits, white space,
/// _ . / = + - % @".
///
/// `resource` names what is tagged the way the message does: `stream S under account A`.
fn check_tag_text<'a>(
    texts: impl Iterator<Item = &'a str> + Clone,
    verb: &str,
    resource: &str,
) -> Result<(), ApiError> {
    if texts.clone().any(|t| !t.chars().all(allowed_tag_char)) {
        return Err(api_error!(
            InvalidArgumentException,
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."
        ));
    }
    if texts.clone().any(|t| t.contains('%')) {
        return Err(api_error!(
            InvalidArgumentException,
            "Failed to {verb} {resource} because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'."
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
        &stream_resource(&key),
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
        return Err(too_many_tags(&stream_resource(&key), "stream"));
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
        &stream_resource(&stream.key),
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

/// What a `ResourceARN` names.
enum Resource {
    Stream(Arc<Stream>),
    Consumer(Arc<Stream>, ConsumerMeta),
    Queue(Arc<Queue>),
    Channel(Arc<Channel>),
}

/// How the tag messages name a channel (AWS's text for channels is NOT PINNED).
fn channel_resource(name: &str, account: &str) -> String {
    format!("channel {name} under account {account}")
}

/// Tags given to CreateChannel obey the same rules as TagResource on the channel.
pub fn check_channel_tags(
    tags: &BTreeMap<String, String>,
    name: &str,
    account: &str,
) -> Result<(), ApiError> {
    let what = channel_resource(name, account);
    check_tags_to_add(tags, &what, "channel")
}

async fn add_to_channel(
    broker: &Arc<Broker>,
    channel: &Arc<Channel>,
    tags: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let meta = channel.meta();
    let what = channel_resource(&meta.name, &meta.account);
    check_tag_text(
        tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        "add tags to",
        &what,
    )?;
    let too_many = broker
        .update_channel_tags(channel, move |now| merge_within_limit(now, tags))
        .await
        .map_err(crate::api::channels::channel_error)?;
    if too_many {
        return Err(too_many_tags(&what, "channel"));
    }
    Ok(())
}

/// How the tag messages name a queue (AWS's text for queues is NOT PINNED).
fn queue_resource(name: &str, account: &str) -> String {
    format!("queue {name} under account {account}")
}

/// Tags given to CreateQueue obey the same rules as TagResource on the queue.
pub fn check_queue_tags(
    tags: &BTreeMap<String, String>,
    name: &str,
    account: &str,
) -> Result<(), ApiError> {
    let what = queue_resource(name, account);
    check_tags_to_add(tags, &what, "queue")
}

async fn add_to_queue(
    broker: &Arc<Broker>,
    queue: &Arc<Queue>,
    tags: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let meta = queue.meta();
    let what = queue_resource(&meta.name, &meta.account);
    check_tag_text(
        tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        "add tags to",
        &what,
    )?;
    let too_many = broker
        .update_queue_tags(queue, move |now| merge_within_limit(now, tags))
        .await
        .map_err(|e| crate::api::queues::queue_error(e, crate::api::queues::Plane::Control))?;
    if too_many {
        return Err(too_many_tags(&what, "queue"));
    }
    Ok(())
}

fn resource(broker: &Broker, ctx: &RequestContext, arn: &str) -> Result<Resource, ApiError> {
    if parse_consumer_arn(arn).is_some() {
        let (stream, consumer) = broker.consumer_by_arn(&ctx.account_id, &ctx.region, arn)?;
        return Ok(Resource::Consumer(stream, consumer));
    }
    if arn.contains(":queue/") {
        let queue = crate::api::queues::named_queue(
            broker,
            ctx,
            Some(arn),
            crate::api::queues::Plane::Control,
        )?;
        return Ok(Resource::Queue(queue));
    }
    if arn.contains(":channel/") {
        let channel = crate::api::channels::named_channel(broker, ctx, Some(arn))?;
        return Ok(Resource::Channel(channel));
    }
    let key = parse_stream_arn(arn)
        .ok_or_else(|| api_error!(ResourceNotFoundException, "Resource {arn} not found."))?;
    Ok(Resource::Stream(broker.stream(&key)?))
}

async fn add_to_consumer(
    broker: &Arc<Broker>,
    stream: &Arc<Stream>,
    consumer: ConsumerMeta,
    tags: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let what = consumer_resource(&stream.key, &consumer.name);
    check_tag_text(
        tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        "add tags to",
        &what,
    )?;
    let too_many = broker
        .update_consumer_tags(stream, consumer.name, consumer.created_ms, move |now| {
            merge_within_limit(now, tags)
        })
        .await?;
    if too_many {
        return Err(too_many_tags(&what, "consumer"));
    }
    Ok(())
}

async fn remove_from_consumer(
    broker: &Arc<Broker>,
    stream: &Arc<Stream>,
    consumer: ConsumerMeta,
    keys: Vec<String>,
) -> Result<(), ApiError> {
    check_tag_text(
        keys.iter().map(String::as_str),
        "remove tags from",
        &consumer_resource(&stream.key, &consumer.name),
    )?;
    broker
        .update_consumer_tags(stream, consumer.name, consumer.created_ms, move |now| {
            for k in &keys {
                now.remove(k);
            }
        })
        .await?;
    Ok(())
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

/// TagResource: a stream or consumer ARN.
#[tracing::instrument(skip_all)]
pub async fn tag_resource(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: TagResourceInput,
) -> Result<(), ApiError> {
    let tags = input.tags.unwrap_or_default();
    match resource(
        broker,
        ctx,
        input.resource_arn.as_deref().unwrap_or_default(),
    )? {
        Resource::Stream(stream) => add(broker, &stream, tags).await,
        Resource::Consumer(stream, consumer) => {
            add_to_consumer(broker, &stream, consumer, tags).await
        }
        Resource::Queue(queue) => add_to_queue(broker, &queue, tags).await,
        Resource::Channel(channel) => add_to_channel(broker, &channel, tags).await,
    }
}

/// UntagResource: a stream or consumer ARN.
#[tracing::instrument(skip_all)]
pub async fn untag_resource(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UntagResourceInput,
) -> Result<(), ApiError> {
    let keys = input.tag_keys.unwrap_or_default();
    match resource(
        broker,
        ctx,
        input.resource_arn.as_deref().unwrap_or_default(),
    )? {
        Resource::Stream(stream) => remove(broker, &stream, keys).await,
        Resource::Consumer(stream, consumer) => {
            remove_from_consumer(broker, &stream, consumer, keys).await
        }
        Resource::Queue(queue) => broker
            .update_queue_tags(&queue, move |now| {
                for k in &keys {
                    now.remove(k);
                }
            })
            .await
            .map_err(|e| crate::api::queues::queue_error(e, crate::api::queues::Plane::Control)),
        Resource::Channel(channel) => broker
            .update_channel_tags(&channel, move |now| {
                for k in &keys {
                    now.remove(k);
                }
            })
            .await
            .map_err(crate::api::channels::channel_error),
    }
}

/// ListTagsForResource: a stream or consumer ARN.
#[tracing::instrument(skip_all)]
pub async fn list_tags_for_resource(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, ApiError> {
    let tags = match resource(
        broker,
        ctx,
        input.resource_arn.as_deref().unwrap_or_default(),
    )? {
        Resource::Stream(stream) => tag_list(&stream.state().tags),
        Resource::Consumer(_, consumer) => tag_list(&consumer.tags),
        Resource::Queue(queue) => tag_list(&queue.meta().tags),
        Resource::Channel(channel) => tag_list(&channel.meta().tags),
    };
    Ok(ListTagsForResourceOutput { tags: Some(tags) })
}

/// Tags given to CreateStream obey the same rules as AddTagsToStream.
pub fn check_create_tags(tags: &BTreeMap<String, String>, key: &StreamKey) -> Result<(), ApiError> {
    let what = stream_resource(key);
    check_tags_to_add(tags, &what, "stream")
}

/// Tags given to RegisterStreamConsumer obey the same rules as TagResource on the consumer.
pub fn check_consumer_tags(
    tags: &BTreeMap<String, String>,
    key: &StreamKey,
    consumer: &str,
) -> Result<(), ApiError> {
    let what = consumer_resource(key, consumer);
    check_tags_to_add(tags, &what, "consumer")
}
