//! ListQueues: the caller's queues in its region, by name, optionally only those on given
//! streams (`StreamFilter`, with `StreamCreationTimestamp` telling a stream from an earlier
//! one of the same name), paged with `NextToken`.

use std::sync::Arc;

use crate::api::generated::{
    ListQueuesInput, ListQueuesOutput, QueueStreamIdentifier, QueueSummary,
};
use crate::api::pagination::PageToken;
use crate::api::queues::wire_status;
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::api_error;
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
    let filters: Vec<(String, Option<i64>)> = input
        .stream_filter
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            (
                f.stream_arn.unwrap_or_default(),
                f.stream_creation_timestamp
                    .map(|t| t.millis.div_euclid(1000)),
            )
        })
        .collect();
    // A token belongs to the filter it was issued under.
    let scope = filters
        .iter()
        .map(|(arn, ts)| format!("{arn}@{}", ts.map_or(String::new(), |t| t.to_string())))
        .collect::<Vec<_>>()
        .join(",");
    let now = broker.clock().now_ms();
    let after = match input.next_token.as_deref() {
        Some(token) => {
            let page = PageToken::decode(token, OPERATION, ctx, broker.clock())?;
            if page.scope != scope {
                return Err(api_error!(InvalidArgumentException, "Invalid NextToken."));
            }
            Some(page.after)
        }
        None => None,
    };
    // The model bounds MaxResults to 1..=10000; validation ran.
    let limit = input
        .max_results
        .map_or(DEFAULT_QUEUE_PAGE, |m| m.max(1) as usize);
    let queues: Vec<_> = broker
        .queues()
        .list(&ctx.account_id, &ctx.region)
        .into_iter()
        .filter(|q| after.as_deref().is_none_or(|a| q.name.as_str() > a))
        .filter(|q| {
            filters.is_empty()
                || filters.iter().any(|(arn, ts)| {
                    *arn == q.stream_arn()
                        && ts.is_none_or(|t| t == q.stream_created_ms.div_euclid(1000))
                })
        })
        .collect();
    let has_more = queues.len() > limit;
    let page = &queues[..queues.len().min(limit)];
    let next_token = match (has_more, page.last()) {
        (true, Some(last)) => Some(
            PageToken {
                operation: OPERATION.into(),
                scope,
                after: last.name.clone(),
                issued_ms: now,
            }
            .encode(ctx, broker.clock()),
        ),
        _ => None,
    };
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
