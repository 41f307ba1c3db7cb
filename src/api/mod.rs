//! Operations: one file per operation, all of the same shape — take the generated input
//! (already validated against the service model), apply the domain checks, call the
//! broker, build the generated output. No HTTP, no JSON here.
//!
//! [`Service`] implements the generated [`generated::Kinesis`] trait; an operation not
//! listed in its `impl` answers `NotImplementedException` (the trait's default), so the
//! operations that are real are exactly the ones named below.

mod blob;
mod codec;
pub mod common;
mod context;
mod error;
pub mod generated;
pub mod pagination;

mod create_stream;
mod delete_stream;
mod describe_stream;
mod describe_stream_summary;
mod get_records;
mod get_shard_iterator;
mod list_shards;
mod list_streams;
mod put_record;
mod put_records;

use std::sync::Arc;

pub use blob::{Blob, Timestamp};
pub use codec::Codec;
pub use context::RequestContext;
pub use error::ApiError;
pub use generated::ErrorCode;
use generated::*;
pub use generated::{Kinesis, Operation, dispatch};

use crate::broker::Broker;
use crate::broker::catalog::{StreamMode as DomainMode, StreamStatus as DomainStatus};

/// The Kinesis API over a broker.
#[derive(Debug, Clone)]
pub struct Service {
    broker: Arc<Broker>,
}

impl Service {
    /// The API of `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }

    /// The broker behind the API.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }
}

impl Kinesis for Service {
    async fn create_stream(
        &self,
        ctx: &RequestContext,
        input: CreateStreamInput,
    ) -> Result<(), ApiError> {
        create_stream::handle(&self.broker, ctx, input).await
    }

    async fn delete_stream(
        &self,
        ctx: &RequestContext,
        input: DeleteStreamInput,
    ) -> Result<(), ApiError> {
        delete_stream::handle(&self.broker, ctx, input).await
    }

    async fn describe_stream(
        &self,
        ctx: &RequestContext,
        input: DescribeStreamInput,
    ) -> Result<DescribeStreamOutput, ApiError> {
        describe_stream::handle(&self.broker, ctx, input).await
    }

    async fn describe_stream_summary(
        &self,
        ctx: &RequestContext,
        input: DescribeStreamSummaryInput,
    ) -> Result<DescribeStreamSummaryOutput, ApiError> {
        describe_stream_summary::handle(&self.broker, ctx, input).await
    }

    async fn list_streams(
        &self,
        ctx: &RequestContext,
        input: ListStreamsInput,
    ) -> Result<ListStreamsOutput, ApiError> {
        list_streams::handle(&self.broker, ctx, input).await
    }

    async fn list_shards(
        &self,
        ctx: &RequestContext,
        input: ListShardsInput,
    ) -> Result<ListShardsOutput, ApiError> {
        list_shards::handle(&self.broker, ctx, input).await
    }

    async fn put_record(
        &self,
        ctx: &RequestContext,
        input: PutRecordInput,
    ) -> Result<PutRecordOutput, ApiError> {
        put_record::handle(&self.broker, ctx, input).await
    }

    async fn put_records(
        &self,
        ctx: &RequestContext,
        input: PutRecordsInput,
    ) -> Result<PutRecordsOutput, ApiError> {
        put_records::handle(&self.broker, ctx, input).await
    }

    async fn get_shard_iterator(
        &self,
        ctx: &RequestContext,
        input: GetShardIteratorInput,
    ) -> Result<GetShardIteratorOutput, ApiError> {
        get_shard_iterator::handle(&self.broker, ctx, input).await
    }

    async fn get_records(
        &self,
        ctx: &RequestContext,
        input: GetRecordsInput,
    ) -> Result<GetRecordsOutput, ApiError> {
        get_records::handle(&self.broker, ctx, input).await
    }
}

/// The wire form of a stream status.
fn wire_status(status: DomainStatus) -> StreamStatus {
    match status {
        DomainStatus::Creating => StreamStatus::Creating,
        DomainStatus::Active => StreamStatus::Active,
        DomainStatus::Updating => StreamStatus::Updating,
        DomainStatus::Deleting => StreamStatus::Deleting,
    }
}

/// The wire form of a capacity mode.
fn wire_mode_details(mode: DomainMode) -> StreamModeDetails {
    StreamModeDetails {
        stream_mode: Some(match mode {
            DomainMode::Provisioned => StreamMode::Provisioned,
            DomainMode::OnDemand => StreamMode::OnDemand,
        }),
    }
}
