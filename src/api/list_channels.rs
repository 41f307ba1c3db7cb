//! ListChannels: the caller's channels in its region, by name, optionally only those on
//! given streams (`StreamFilter`, with `StreamCreationTimestamp` telling a stream from an
//! earlier one of the same name), paged with `NextToken`. "The default value is 100. If
//! you specify a value greater than 100, at most 100 results are returned."

use std::sync::Arc;

use crate::api::channels::summary;
use crate::api::generated::{ListChannelsInput, ListChannelsOutput};
use crate::api::pagination::PageToken;
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;

/// Channels per page: 100 by default and at most, as documented.
const MAX_CHANNEL_PAGE: usize = 100;

const OPERATION: &str = "ListChannels";

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ListChannelsInput,
) -> Result<ListChannelsOutput, ApiError> {
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
    let limit = input.max_results.map_or(MAX_CHANNEL_PAGE, |m| {
        (m.max(1) as usize).min(MAX_CHANNEL_PAGE)
    });
    let channels: Vec<_> = broker
        .channels()
        .list(&ctx.account_id, &ctx.region)
        .into_iter()
        .filter(|c| after.as_deref().is_none_or(|a| c.name.as_str() > a))
        .filter(|c| {
            filters.is_empty()
                || filters.iter().any(|(arn, ts)| {
                    *arn == c.stream_key().arn()
                        && ts.is_none_or(|t| t == c.stream_created_ms.div_euclid(1000))
                })
        })
        .collect();
    let has_more = channels.len() > limit;
    let page = &channels[..channels.len().min(limit)];
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
    Ok(ListChannelsOutput {
        channel_summaries: page.iter().map(summary).collect(),
        next_token,
    })
}
