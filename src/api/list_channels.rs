//! ListChannels: the caller's channels in its region, by name, optionally only those on
//! given streams (`StreamFilter`, with `StreamCreationTimestamp` telling a stream from an
//! earlier one of the same name), paged with `NextToken`. "The default value is 100. If
//! you specify a value greater than 100, at most 100 results are returned."

use std::sync::Arc;

use crate::api::channels::summary;
use crate::api::generated::{ListChannelsInput, ListChannelsOutput};
use crate::api::pagination::{NamePages, StreamFilter};
use crate::api::{ApiError, RequestContext};
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
    let limit = input.max_results.map_or(MAX_CHANNEL_PAGE, |m| {
        (m.max(1) as usize).min(MAX_CHANNEL_PAGE)
    });
    let channels: Vec<_> = broker
        .channels()
        .list(&ctx.account_id, &ctx.region)
        .into_iter()
        .filter(|c| {
            pages.is_after_previous(&c.name)
                && filter.admits(&c.stream_key().arn(), c.stream_created_ms)
        })
        .collect();
    let (page, next_token) = pages.page(channels, limit, |c| &c.name);
    Ok(ListChannelsOutput {
        channel_summaries: page.iter().map(summary).collect(),
        next_token,
    })
}
