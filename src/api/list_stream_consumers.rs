//! ListStreamConsumers: a stream's consumers in any status, sorted by name, paged.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{Consumer, ListStreamConsumersInput, ListStreamConsumersOutput};
use crate::api::pagination::PageToken;
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::api_error;
use crate::broker::{Broker, Error};

/// Consumers per page when `MaxResults` is absent, and the most a page holds whatever
/// `MaxResults` says: 100, as AWS documents.
const MAX_CONSUMER_PAGE: usize = 100;

const OPERATION: &str = "ListStreamConsumers";

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ListStreamConsumersInput,
) -> Result<ListStreamConsumersOutput, ApiError> {
    // AWS documents that StreamCreationTimestamp cannot go with NextToken; wording as
    // ListShards' pinned "NextToken and StreamName cannot be provided together."
    if input.next_token.is_some() && input.stream_creation_timestamp.is_some() {
        return Err(api_error!(
            InvalidArgumentException,
            "NextToken and StreamCreationTimestamp cannot be provided together."
        ));
    }
    let key = stream_key(ctx, None, input.stream_arn.as_deref())?;
    let stream = broker.stream(&key)?;
    // The timestamp tells a stream from an earlier one of the same name; compared to the
    // second, as ListShards does, since clients send it as a float.
    if let Some(ts) = input.stream_creation_timestamp
        && ts.millis.div_euclid(1000) != stream.created_ms.div_euclid(1000)
    {
        return Err(Error::StreamNotFound {
            name: key.name,
            account: key.account,
        }
        .into());
    }
    // A token belongs to one stream incarnation: the uid changes when the name is reused.
    let scope = format!("{}#{}", stream.arn(), stream.uid);
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
    let limit = input.max_results.map_or(MAX_CONSUMER_PAGE, |m| {
        (m.max(1) as usize).min(MAX_CONSUMER_PAGE)
    });
    let consumers: Vec<_> = broker
        .consumers(&stream)
        .into_iter()
        .filter(|c| after.as_deref().is_none_or(|a| c.name.as_str() > a))
        .collect();
    let has_more = consumers.len() > limit;
    let page = &consumers[..consumers.len().min(limit)];
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
    let stream_arn = stream.arn();
    Ok(ListStreamConsumersOutput {
        consumers: Some(
            page.iter()
                .map(|c| Consumer {
                    consumer_name: c.name.clone(),
                    consumer_arn: c.arn(&stream_arn),
                    consumer_status: super::wire_consumer_status(c.status),
                    consumer_creation_timestamp: Timestamp::from_millis(c.created_ms),
                })
                .collect(),
        ),
        next_token,
    })
}
