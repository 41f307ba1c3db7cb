//! ListStreams: the account's streams in the caller's region, sorted by name, paged.

use std::sync::Arc;

use crate::api::generated::{ListStreamsInput, ListStreamsOutput, StreamSummary};
use crate::api::pagination::PageToken;
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::broker::Broker;

/// Streams per page when `Limit` is absent, as on AWS.
const DEFAULT_STREAM_PAGE: usize = 100;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ListStreamsInput,
) -> Result<ListStreamsOutput, ApiError> {
    let limit = input
        .limit
        .map(|l| l.max(1) as usize)
        .unwrap_or(DEFAULT_STREAM_PAGE);
    let now = broker.clock().now_ms();
    let after = match input.next_token.as_deref() {
        Some(token) => Some(PageToken::decode(token, "ListStreams", ctx, broker.clock())?.after),
        None => input.exclusive_start_stream_name.clone(),
    };
    let streams: Vec<_> = broker
        .list_streams(&ctx.account_id, &ctx.region)
        .into_iter()
        .filter(|s| after.as_deref().is_none_or(|a| s.key.name.as_str() > a))
        .collect();
    let has_more = streams.len() > limit;
    let page = &streams[..streams.len().min(limit)];
    let next_token = match (has_more, page.last()) {
        (true, Some(last)) => Some(
            PageToken {
                operation: "ListStreams".into(),
                scope: String::new(),
                after: last.key.name.clone(),
                issued_ms: now,
            }
            .encode(ctx, broker.clock()),
        ),
        _ => None,
    };
    Ok(ListStreamsOutput {
        stream_names: page.iter().map(|s| s.key.name.clone()).collect(),
        has_more_streams: has_more,
        next_token,
        stream_summaries: Some(
            page.iter()
                .map(|s| {
                    let st = s.state();
                    StreamSummary {
                        stream_name: s.key.name.clone(),
                        stream_arn: s.arn(),
                        stream_status: super::wire_status(st.status),
                        stream_mode_details: Some(super::wire_mode_details(st.mode)),
                        stream_creation_timestamp: Some(Timestamp::from_millis(s.created_ms)),
                    }
                })
                .collect(),
        ),
    })
}
