//! ListQueues: the caller's queues in its region, by name, optionally only those on given
//! streams (`StreamFilter`, with `StreamCreationTimestamp` telling a stream from an earlier
//! one of the same name), paged with `NextToken`.

use std::sync::Arc;

use crate::api::generated::{
    ListQueuesInput, ListQueuesOutput, QueueStreamIdentifier, QueueSummary,
};
use crate::api::pagination::{NamePages, StreamFilter};
use crate::api::queues::wire_status;
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::broker::Broker;

/// Queues per page when `MaxResults` is absent: 100 (NOT PINNED; ListStreamConsumers' page).
const DEFAULT_QUEUE_PAGE: usize = 100;

const OPERATION: &str = "ListQueues";

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ListQueuesInput,
) -> Result<ListQueuesOutput, ApiError> {
    let filter = StreamFilter::new(
        input
            .stream_filter
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f.stream_arn, f.stream_creation_timestamp)),
    );
    let pages = NamePages::resume(
        OPERATION,
        ctx,
        filter.scope(),
        input.next_token.as_deref(),
        broker.clock(),
    )?;
    // The model bounds MaxResults to 1..=10000; validation ran.
    let limit = input
        .max_results
        .map_or(DEFAULT_QUEUE_PAGE, |m| m.max(1) as usize);
    let queues: Vec<_> = broker
        .queues()
        .list(&ctx.account_id, &ctx.region)
        .into_iter()
        .filter(|q| {
            pages.is_after_previous(&q.name) && filter.admits(&q.stream_arn(), q.stream_created_ms)
        })
        .collect();
    let (page, next_token) = pages.page(queues, limit, |q| &q.name);
    Ok(ListQueuesOutput {
        queue_summaries: page
            .iter()
            .map(|q| QueueSummary {
                queue_name: q.name.clone(),
                queue_arn: q.arn(),
                queue_status: wire_status(q.status),
                queue_creation_timestamp: Timestamp::from_millis(q.created_ms),
                streams: vec![QueueStreamIdentifier {
                    stream_arn: q.stream_arn(),
                    stream_creation_timestamp: Timestamp::from_millis(q.stream_created_ms),
                }],
            })
            .collect(),
        next_token,
    })
}
