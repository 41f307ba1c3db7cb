//! PutResourcePolicy, GetResourcePolicy and DeleteResourcePolicy on stream, consumer and
//! queue ARNs, and [`authorize`]: the check every operation naming a resource by ARN goes
//! through, which evaluates those policies for a request from another account.

use std::sync::Arc;

use crate::api::common::parse_stream_arn;
use crate::api::generated::{
    DeleteResourcePolicyInput, GetResourcePolicyInput, GetResourcePolicyOutput,
    PutResourcePolicyInput,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::fanout::registry::{ConsumerMeta, parse_consumer_arn};
use crate::broker::stream::Stream;
use crate::policy::{Decision, PolicyDocument, Request};

/// Operations another account may perform on a stream when the stream's policy allows
/// them (AWS's list for data streams; see compat-tests/AWS_BEHAVIOUR.md). Anything else
/// (deleting, resharding, tagging, managing policies...) stays with the owner.
const STREAM_SHARED_ACTIONS: &[&str] = &[
    "DescribeStream",
    "DescribeStreamSummary",
    "ListShards",
    "GetRecords",
    "GetShardIterator",
    "PutRecord",
    "PutRecords",
    "RegisterStreamConsumer",
    "ListStreamConsumers",
];

/// Operations another account may perform on a consumer when the consumer's own policy
/// allows them; a consumer inherits nothing from its stream's policy.
const CONSUMER_SHARED_ACTIONS: &[&str] = &["DescribeStreamConsumer", "SubscribeToShard"];

/// Operations another account may perform on a queue when the queue's policy allows them:
/// reading and settling its records (and those of its dead-letter queue). AWS's list for
/// queues is not pinned (compat-tests/AWS_BEHAVIOUR.md 13f); managing the queue (update,
/// delete, tags, policies) stays with the owner, as for streams.
const QUEUE_SHARED_ACTIONS: &[&str] = &[
    "DescribeQueue",
    "ReceiveQueueRecords",
    "AcknowledgeQueueRecords",
    "UpdateQueueRecordsVisibility",
    "ReceiveDeadLetterQueueRecords",
    "AcknowledgeDeadLetterQueueRecords",
    "UpdateDeadLetterQueueRecordsVisibility",
    "RestoreDeadLetterQueueRecords",
];

/// What a resource ARN names, for authorization.
enum Target {
    Stream,
    Consumer,
    Queue,
    /// Channels and anything else: never shared across accounts here.
    Other,
}

/// Whether an ARN has a queue's shape (`arn:PARTITION:kinesis:REGION:ACCOUNT:queue/ID`).
fn is_queue_arn(arn: &str) -> bool {
    crate::arn::Arn::parse(arn)
        .is_some_and(|a| a.service == "kinesis" && a.resource.starts_with("queue/"))
}

/// The account field of any ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`).
fn arn_account(arn: &str) -> Option<&str> {
    crate::arn::Arn::parse(arn)
        .map(|a| a.account)
        .filter(|account| !account.is_empty())
}

fn target(arn: &str) -> Target {
    if parse_consumer_arn(arn).is_some() {
        Target::Consumer
    } else if parse_stream_arn(arn).is_some() {
        Target::Stream
    } else if is_queue_arn(arn) {
        Target::Queue
    } else {
        Target::Other
    }
}

/// AWS's AccessDeniedException for a root caller refused by the resource's policy.
fn access_denied(ctx: &RequestContext, action: &str, arn: &str, decision: Decision) -> ApiError {
    let who = format!("arn:aws:iam::{}:root", ctx.account_id);
    match decision {
        Decision::ExplicitDeny => api_error!(
            AccessDeniedException,
            "User: {who} is not authorized to perform: kinesis:{action} on resource: {arn} with an explicit deny in a resource-based policy"
        ),
        _ => api_error!(
            AccessDeniedException,
            "User: {who} is not authorized to perform: kinesis:{action} on resource: {arn} because no resource-based policy allows the kinesis:{action} action"
        ),
    }
}

/// Allows `action` (an operation name, `GetRecords`) on the resource `arn` for the caller.
///
/// A resource of the caller's own account is always allowed (every key is its account's
/// root). A resource of another account is allowed only when `action` is one AWS shares
/// across accounts for that kind of resource and the resource's own policy allows it
/// (IAM's evaluation: an explicit Deny wins). A missing resource of another account is
/// refused the same way, so a caller learns nothing about another account's resources.
/// An ARN that names no account is left to the operation, which rejects it in its own words.
pub fn authorize(
    broker: &Broker,
    ctx: &RequestContext,
    action: &str,
    arn: &str,
) -> Result<(), ApiError> {
    let Some(owner) = arn_account(arn) else {
        return Ok(());
    };
    if owner == ctx.account_id {
        return Ok(());
    }
    let policy = match target(arn) {
        Target::Stream if STREAM_SHARED_ACTIONS.contains(&action) => parse_stream_arn(arn)
            .and_then(|key| broker.stream(&key).ok())
            .and_then(|s| s.state().extras.policy.clone()),
        Target::Consumer if CONSUMER_SHARED_ACTIONS.contains(&action) => broker
            .consumer_by_arn(owner, "", arn)
            .ok()
            .and_then(|(_, c)| c.policy),
        Target::Queue if QUEUE_SHARED_ACTIONS.contains(&action) => {
            broker.queue(owner, arn).ok().and_then(|q| q.meta().policy)
        }
        Target::Stream | Target::Consumer | Target::Queue | Target::Other => None,
    };
    let decision = policy
        .and_then(|text| PolicyDocument::parse(&text).ok())
        .map(|doc| {
            doc.evaluate(&Request {
                account: &ctx.account_id,
                action,
                resource: arn,
            })
        })
        .unwrap_or(Decision::ImplicitDeny);
    match decision {
        Decision::Allow => Ok(()),
        denied => Err(access_denied(ctx, action, arn, denied)),
    }
}

/// [`authorize`] for a GetRecords iterator: the resource is the stream it was issued for.
/// A token that names no live stream is left to GetRecords, which rejects it.
pub fn authorize_iterator(
    broker: &Broker,
    ctx: &RequestContext,
    token: &str,
) -> Result<(), ApiError> {
    match broker.iterator_stream(token) {
        Some(stream) => authorize(broker, ctx, "GetRecords", &stream.arn()),
        None => Ok(()),
    }
}

/// The resource a `ResourceARN` names: a stream, one of its consumers, or a queue.
enum Resource {
    Stream(Arc<Stream>),
    Consumer(Arc<Stream>, ConsumerMeta),
    Queue(Arc<crate::broker::queue::Queue>),
}

fn resource(broker: &Broker, arn: &str) -> Result<Resource, ApiError> {
    if parse_consumer_arn(arn).is_some() {
        let owner = arn_account(arn).unwrap_or_default();
        let (stream, consumer) = broker.consumer_by_arn(owner, "", arn)?;
        return Ok(Resource::Consumer(stream, consumer));
    }
    if is_queue_arn(arn) {
        let owner = arn_account(arn).unwrap_or_default();
        let queue = broker
            .queue(owner, arn)
            .map_err(|e| crate::api::queues::queue_error(e, crate::api::queues::Plane::Control))?;
        return Ok(Resource::Queue(queue));
    }
    let key = parse_stream_arn(arn)
        .ok_or_else(|| api_error!(ResourceNotFoundException, "Resource {arn} not found."))?;
    Ok(Resource::Stream(broker.stream(&key)?))
}

/// Sets (or, with `None`, removes) the policy of a resource; returns whether one was set.
async fn replace_policy(
    broker: &Arc<Broker>,
    resource: Resource,
    policy: Option<String>,
) -> Result<bool, ApiError> {
    Ok(match resource {
        Resource::Stream(stream) => {
            broker
                .update_stream(&stream, move |st| {
                    Ok(std::mem::replace(&mut st.extras.policy, policy).is_some())
                })
                .await?
        }
        Resource::Consumer(stream, consumer) => {
            broker
                .update_stream(&stream, move |st| {
                    Ok(st
                        .consumers
                        .iter_mut()
                        .find(|c| c.name == consumer.name && c.created_ms == consumer.created_ms)
                        .map(|c| std::mem::replace(&mut c.policy, policy).is_some())
                        .unwrap_or(false))
                })
                .await?
        }
        Resource::Queue(queue) => broker
            .replace_queue_policy(&queue, policy)
            .await
            .map_err(|e| crate::api::queues::queue_error(e, crate::api::queues::Plane::Control))?,
    })
}

/// PutResourcePolicy: the document must parse, stay within the size limit, and name only
/// the resource it is attached to; a refused policy changes nothing.
#[tracing::instrument(skip_all)]
pub async fn put(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: PutResourcePolicyInput,
) -> Result<(), ApiError> {
    let arn = input.resource_arn.unwrap_or_default();
    let policy = input.policy.unwrap_or_default();
    // The resource first: AWS answers ResourceNotFoundException for an unknown stream
    // whatever the document.
    let target = resource(broker, &arn)?;
    let document = PolicyDocument::parse(&policy).map_err(|e| {
        api_error!(
            InvalidArgumentException,
            "Invalid resource policy document: {e}"
        )
    })?;
    document.check_attached_to(&arn).map_err(|e| {
        api_error!(
            InvalidArgumentException,
            "Invalid resource policy document: {e}"
        )
    })?;
    replace_policy(broker, target, Some(policy)).await?;
    Ok(())
}

/// GetResourcePolicy: an empty document (`{}`) when none is attached.
#[tracing::instrument(skip_all)]
pub async fn get(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: GetResourcePolicyInput,
) -> Result<GetResourcePolicyOutput, ApiError> {
    let policy = match resource(broker, input.resource_arn.as_deref().unwrap_or_default())? {
        Resource::Stream(stream) => stream.state().extras.policy.clone(),
        Resource::Consumer(_, consumer) => consumer.policy,
        Resource::Queue(queue) => queue.meta().policy,
    };
    Ok(GetResourcePolicyOutput {
        policy: policy.unwrap_or_else(|| "{}".to_string()),
    })
}

/// DeleteResourcePolicy.
#[tracing::instrument(skip_all)]
pub async fn delete(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: DeleteResourcePolicyInput,
) -> Result<(), ApiError> {
    let arn = input.resource_arn.unwrap_or_default();
    let target = resource(broker, &arn)?;
    if !replace_policy(broker, target, None).await? {
        return Err(api_error!(
            ResourceNotFoundException,
            "No resource policy found for resource {arn}."
        ));
    }
    Ok(())
}
