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
pub mod event_stream;
pub mod generated;
pub mod lambda;
pub mod pagination;

mod account_settings;
mod acknowledge_dead_letter_queue_records;
mod acknowledge_queue_records;
pub mod admin;
pub mod channels;
mod create_channel;
mod create_queue;
mod create_stream;
mod delete_channel;
mod delete_queue;
mod delete_stream;
mod deregister_stream_consumer;
mod describe_channel;
mod describe_limits;
mod describe_queue;
mod describe_stream;
mod describe_stream_consumer;
mod describe_stream_summary;
mod encryption;
mod get_records;
mod get_shard_iterator;
mod list_channels;
mod list_queues;
mod list_shards;
mod list_stream_consumers;
mod list_streams;
mod monitoring;
mod put_record;
mod put_records;
pub mod queues;
mod receive_dead_letter_queue_records;
mod receive_queue_records;
mod register_stream_consumer;
mod resharding;
mod resource_policy;
mod restore_dead_letter_queue_records;
mod retention;
mod subscribe_to_shard;
mod tags;
mod update_channel;
mod update_dead_letter_queue_records_visibility;
mod update_max_record_size;
mod update_queue;
mod update_queue_records_visibility;
mod update_stream_record_distribution_strategy;
mod warm_throughput;

use std::sync::Arc;

pub use blob::{Blob, Timestamp};
pub use codec::Codec;
pub use context::RequestContext;
pub use error::ApiError;
pub use event_stream::EventStream;
pub use generated::ErrorCode;
use generated::*;
pub use generated::{Kinesis, Operation, dispatch};

use crate::broker::Broker;
use crate::broker::catalog::{StreamMode as DomainMode, StreamStatus as DomainStatus};
use crate::broker::fanout::registry::ConsumerStatus as DomainConsumerStatus;

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

impl Service {
    /// AWS's per-account rate of control-plane operations (data-plane operations have
    /// per-shard limits instead, enforced by the broker).
    ///
    /// `name` and `arn` name the stream (for AWS's message and per-stream limits).
    fn admit(
        &self,
        ctx: &RequestContext,
        operation: &str,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<(), ApiError> {
        let from_arn = arn.and_then(common::parse_stream_arn).map(|k| k.name);
        let stream = name.or(from_arn.as_deref());
        Ok(self
            .broker
            .admit_control(&ctx.account_id, &ctx.region, operation, stream)?)
    }
    /// The single authorization check: every operation that names a resource by ARN (or,
    /// for GetRecords, by iterator) passes each one here with its IAM action before it
    /// touches the resource, so resources of another account are reached only through
    /// their resource policy. Names always resolve in the caller's own account.
    fn authorize(
        &self,
        ctx: &RequestContext,
        action: &str,
        arns: &[Option<&str>],
    ) -> Result<(), ApiError> {
        for arn in arns.iter().flatten() {
            resource_policy::authorize(&self.broker, ctx, action, arn)?;
        }
        Ok(())
    }
}

impl Kinesis for Service {
    // Channels (issue 22).

    async fn create_channel(
        &self,
        ctx: &RequestContext,
        input: CreateChannelInput,
    ) -> Result<CreateChannelOutput, ApiError> {
        let streams: Vec<Option<&str>> = input
            .stream_configuration_list
            .iter()
            .flatten()
            .map(|c| c.stream_arn.as_deref())
            .collect();
        self.authorize(ctx, "CreateChannel", &streams)?;
        create_channel::handle(&self.broker, ctx, input).await
    }

    async fn describe_channel(
        &self,
        ctx: &RequestContext,
        input: DescribeChannelInput,
    ) -> Result<DescribeChannelOutput, ApiError> {
        self.authorize(ctx, "DescribeChannel", &[input.channel_arn.as_deref()])?;
        describe_channel::handle(&self.broker, ctx, input).await
    }

    async fn list_channels(
        &self,
        ctx: &RequestContext,
        input: ListChannelsInput,
    ) -> Result<ListChannelsOutput, ApiError> {
        list_channels::handle(&self.broker, ctx, input).await
    }

    async fn update_channel(
        &self,
        ctx: &RequestContext,
        input: UpdateChannelInput,
    ) -> Result<UpdateChannelOutput, ApiError> {
        self.authorize(ctx, "UpdateChannel", &[input.channel_arn.as_deref()])?;
        update_channel::handle(&self.broker, ctx, input).await
    }

    async fn delete_channel(
        &self,
        ctx: &RequestContext,
        input: DeleteChannelInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "DeleteChannel", &[input.channel_arn.as_deref()])?;
        delete_channel::handle(&self.broker, ctx, input).await
    }

    // Queues (issue 18).

    async fn create_queue(
        &self,
        ctx: &RequestContext,
        input: CreateQueueInput,
    ) -> Result<CreateQueueOutput, ApiError> {
        let streams: Vec<Option<&str>> = input
            .stream_configuration_list
            .iter()
            .flatten()
            .map(|c| c.stream_arn.as_deref())
            .collect();
        self.authorize(ctx, "CreateQueue", &streams)?;
        create_queue::handle(&self.broker, ctx, input).await
    }

    async fn describe_queue(
        &self,
        ctx: &RequestContext,
        input: DescribeQueueInput,
    ) -> Result<DescribeQueueOutput, ApiError> {
        self.authorize(ctx, "DescribeQueue", &[input.queue_arn.as_deref()])?;
        describe_queue::handle(&self.broker, ctx, input).await
    }

    async fn list_queues(
        &self,
        ctx: &RequestContext,
        input: ListQueuesInput,
    ) -> Result<ListQueuesOutput, ApiError> {
        list_queues::handle(&self.broker, ctx, input).await
    }

    async fn update_queue(
        &self,
        ctx: &RequestContext,
        input: UpdateQueueInput,
    ) -> Result<UpdateQueueOutput, ApiError> {
        self.authorize(ctx, "UpdateQueue", &[input.queue_arn.as_deref()])?;
        update_queue::handle(&self.broker, ctx, input).await
    }

    async fn delete_queue(
        &self,
        ctx: &RequestContext,
        input: DeleteQueueInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "DeleteQueue", &[input.queue_arn.as_deref()])?;
        delete_queue::handle(&self.broker, ctx, input).await
    }

    async fn receive_queue_records(
        &self,
        ctx: &RequestContext,
        input: ReceiveQueueRecordsInput,
    ) -> Result<ReceiveQueueRecordsOutput, ApiError> {
        self.authorize(ctx, "ReceiveQueueRecords", &[input.queue_arn.as_deref()])?;
        receive_queue_records::handle(&self.broker, ctx, input).await
    }

    async fn acknowledge_queue_records(
        &self,
        ctx: &RequestContext,
        input: AcknowledgeQueueRecordsInput,
    ) -> Result<AcknowledgeQueueRecordsOutput, ApiError> {
        self.authorize(
            ctx,
            "AcknowledgeQueueRecords",
            &[input.queue_arn.as_deref()],
        )?;
        acknowledge_queue_records::handle(&self.broker, ctx, input).await
    }

    async fn update_queue_records_visibility(
        &self,
        ctx: &RequestContext,
        input: UpdateQueueRecordsVisibilityInput,
    ) -> Result<UpdateQueueRecordsVisibilityOutput, ApiError> {
        self.authorize(
            ctx,
            "UpdateQueueRecordsVisibility",
            &[input.queue_arn.as_deref()],
        )?;
        update_queue_records_visibility::handle(&self.broker, ctx, input).await
    }

    async fn receive_dead_letter_queue_records(
        &self,
        ctx: &RequestContext,
        input: ReceiveDeadLetterQueueRecordsInput,
    ) -> Result<ReceiveDeadLetterQueueRecordsOutput, ApiError> {
        self.authorize(
            ctx,
            "ReceiveDeadLetterQueueRecords",
            &[input.queue_arn.as_deref()],
        )?;
        receive_dead_letter_queue_records::handle(&self.broker, ctx, input).await
    }

    async fn acknowledge_dead_letter_queue_records(
        &self,
        ctx: &RequestContext,
        input: AcknowledgeDeadLetterQueueRecordsInput,
    ) -> Result<AcknowledgeDeadLetterQueueRecordsOutput, ApiError> {
        self.authorize(
            ctx,
            "AcknowledgeDeadLetterQueueRecords",
            &[input.queue_arn.as_deref()],
        )?;
        acknowledge_dead_letter_queue_records::handle(&self.broker, ctx, input).await
    }

    async fn update_dead_letter_queue_records_visibility(
        &self,
        ctx: &RequestContext,
        input: UpdateDeadLetterQueueRecordsVisibilityInput,
    ) -> Result<UpdateDeadLetterQueueRecordsVisibilityOutput, ApiError> {
        self.authorize(
            ctx,
            "UpdateDeadLetterQueueRecordsVisibility",
            &[input.queue_arn.as_deref()],
        )?;
        update_dead_letter_queue_records_visibility::handle(&self.broker, ctx, input).await
    }

    async fn restore_dead_letter_queue_records(
        &self,
        ctx: &RequestContext,
        input: RestoreDeadLetterQueueRecordsInput,
    ) -> Result<RestoreDeadLetterQueueRecordsOutput, ApiError> {
        self.authorize(
            ctx,
            "RestoreDeadLetterQueueRecords",
            &[input.queue_arn.as_deref()],
        )?;
        restore_dead_letter_queue_records::handle(&self.broker, ctx, input).await
    }
    async fn create_stream(
        &self,
        ctx: &RequestContext,
        input: CreateStreamInput,
    ) -> Result<(), ApiError> {
        self.admit(ctx, "CreateStream", input.stream_name.as_deref(), None)?;
        create_stream::handle(&self.broker, ctx, input).await
    }

    async fn delete_stream(
        &self,
        ctx: &RequestContext,
        input: DeleteStreamInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "DeleteStream", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "DeleteStream",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        delete_stream::handle(&self.broker, ctx, input).await
    }

    async fn describe_stream(
        &self,
        ctx: &RequestContext,
        input: DescribeStreamInput,
    ) -> Result<DescribeStreamOutput, ApiError> {
        self.authorize(ctx, "DescribeStream", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "DescribeStream",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        describe_stream::handle(&self.broker, ctx, input).await
    }

    async fn describe_stream_summary(
        &self,
        ctx: &RequestContext,
        input: DescribeStreamSummaryInput,
    ) -> Result<DescribeStreamSummaryOutput, ApiError> {
        self.authorize(ctx, "DescribeStreamSummary", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "DescribeStreamSummary",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        describe_stream_summary::handle(&self.broker, ctx, input).await
    }

    async fn list_streams(
        &self,
        ctx: &RequestContext,
        input: ListStreamsInput,
    ) -> Result<ListStreamsOutput, ApiError> {
        self.admit(ctx, "ListStreams", None, None)?;
        list_streams::handle(&self.broker, ctx, input).await
    }

    async fn list_shards(
        &self,
        ctx: &RequestContext,
        input: ListShardsInput,
    ) -> Result<ListShardsOutput, ApiError> {
        self.authorize(ctx, "ListShards", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "ListShards",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        list_shards::handle(&self.broker, ctx, input).await
    }

    async fn put_record(
        &self,
        ctx: &RequestContext,
        input: PutRecordInput,
    ) -> Result<PutRecordOutput, ApiError> {
        self.authorize(ctx, "PutRecord", &[input.stream_arn.as_deref()])?;
        put_record::handle(&self.broker, ctx, input).await
    }

    async fn put_records(
        &self,
        ctx: &RequestContext,
        input: PutRecordsInput,
    ) -> Result<PutRecordsOutput, ApiError> {
        self.authorize(ctx, "PutRecords", &[input.stream_arn.as_deref()])?;
        put_records::handle(&self.broker, ctx, input).await
    }

    async fn get_shard_iterator(
        &self,
        ctx: &RequestContext,
        input: GetShardIteratorInput,
    ) -> Result<GetShardIteratorOutput, ApiError> {
        self.authorize(ctx, "GetShardIterator", &[input.stream_arn.as_deref()])?;
        get_shard_iterator::handle(&self.broker, ctx, input).await
    }

    async fn get_records(
        &self,
        ctx: &RequestContext,
        input: GetRecordsInput,
    ) -> Result<GetRecordsOutput, ApiError> {
        self.authorize(ctx, "GetRecords", &[input.stream_arn.as_deref()])?;
        if let Some(token) = input.shard_iterator.as_deref() {
            resource_policy::authorize_iterator(&self.broker, ctx, token)?;
        }
        get_records::handle(&self.broker, ctx, input).await
    }

    async fn subscribe_to_shard(
        &self,
        ctx: &RequestContext,
        input: SubscribeToShardInput,
    ) -> Result<SubscribeToShardOutput, ApiError> {
        self.authorize(ctx, "SubscribeToShard", &[input.consumer_arn.as_deref()])?;
        subscribe_to_shard::handle(&self.broker, ctx, input).await
    }

    async fn increase_stream_retention_period(
        &self,
        ctx: &RequestContext,
        input: IncreaseStreamRetentionPeriodInput,
    ) -> Result<(), ApiError> {
        self.authorize(
            ctx,
            "IncreaseStreamRetentionPeriod",
            &[input.stream_arn.as_deref()],
        )?;
        self.admit(
            ctx,
            "IncreaseStreamRetentionPeriod",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        retention::increase(&self.broker, ctx, input).await
    }

    async fn decrease_stream_retention_period(
        &self,
        ctx: &RequestContext,
        input: DecreaseStreamRetentionPeriodInput,
    ) -> Result<(), ApiError> {
        self.authorize(
            ctx,
            "DecreaseStreamRetentionPeriod",
            &[input.stream_arn.as_deref()],
        )?;
        self.admit(
            ctx,
            "DecreaseStreamRetentionPeriod",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        retention::decrease(&self.broker, ctx, input).await
    }

    async fn add_tags_to_stream(
        &self,
        ctx: &RequestContext,
        input: AddTagsToStreamInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "AddTagsToStream", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "AddTagsToStream",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        tags::add_tags_to_stream(&self.broker, ctx, input).await
    }

    async fn remove_tags_from_stream(
        &self,
        ctx: &RequestContext,
        input: RemoveTagsFromStreamInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "RemoveTagsFromStream", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "RemoveTagsFromStream",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        tags::remove_tags_from_stream(&self.broker, ctx, input).await
    }

    async fn list_tags_for_stream(
        &self,
        ctx: &RequestContext,
        input: ListTagsForStreamInput,
    ) -> Result<ListTagsForStreamOutput, ApiError> {
        self.authorize(ctx, "ListTagsForStream", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "ListTagsForStream",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        tags::list_tags_for_stream(&self.broker, ctx, input).await
    }

    async fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: TagResourceInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "TagResource", &[input.resource_arn.as_deref()])?;
        self.admit(ctx, "TagResource", None, None)?;
        tags::tag_resource(&self.broker, ctx, input).await
    }

    async fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: UntagResourceInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "UntagResource", &[input.resource_arn.as_deref()])?;
        self.admit(ctx, "UntagResource", None, None)?;
        tags::untag_resource(&self.broker, ctx, input).await
    }

    async fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: ListTagsForResourceInput,
    ) -> Result<ListTagsForResourceOutput, ApiError> {
        self.authorize(ctx, "ListTagsForResource", &[input.resource_arn.as_deref()])?;
        self.admit(ctx, "ListTagsForResource", None, None)?;
        tags::list_tags_for_resource(&self.broker, ctx, input).await
    }

    async fn describe_limits(
        &self,
        ctx: &RequestContext,
        input: DescribeLimitsInput,
    ) -> Result<DescribeLimitsOutput, ApiError> {
        self.admit(ctx, "DescribeLimits", None, None)?;
        describe_limits::handle(&self.broker, ctx, input).await
    }

    async fn enable_enhanced_monitoring(
        &self,
        ctx: &RequestContext,
        input: EnableEnhancedMonitoringInput,
    ) -> Result<EnhancedMonitoringOutput, ApiError> {
        self.authorize(
            ctx,
            "EnableEnhancedMonitoring",
            &[input.stream_arn.as_deref()],
        )?;
        self.admit(
            ctx,
            "EnableEnhancedMonitoring",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        monitoring::enable(&self.broker, ctx, input).await
    }

    async fn disable_enhanced_monitoring(
        &self,
        ctx: &RequestContext,
        input: DisableEnhancedMonitoringInput,
    ) -> Result<EnhancedMonitoringOutput, ApiError> {
        self.authorize(
            ctx,
            "DisableEnhancedMonitoring",
            &[input.stream_arn.as_deref()],
        )?;
        self.admit(
            ctx,
            "DisableEnhancedMonitoring",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        monitoring::disable(&self.broker, ctx, input).await
    }

    async fn start_stream_encryption(
        &self,
        ctx: &RequestContext,
        input: StartStreamEncryptionInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "StartStreamEncryption", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "StartStreamEncryption",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        encryption::start(&self.broker, ctx, input).await
    }

    async fn stop_stream_encryption(
        &self,
        ctx: &RequestContext,
        input: StopStreamEncryptionInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "StopStreamEncryption", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "StopStreamEncryption",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        encryption::stop(&self.broker, ctx, input).await
    }

    async fn put_resource_policy(
        &self,
        ctx: &RequestContext,
        input: PutResourcePolicyInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "PutResourcePolicy", &[input.resource_arn.as_deref()])?;
        self.admit(ctx, "PutResourcePolicy", None, None)?;
        resource_policy::put(&self.broker, ctx, input).await
    }

    async fn get_resource_policy(
        &self,
        ctx: &RequestContext,
        input: GetResourcePolicyInput,
    ) -> Result<GetResourcePolicyOutput, ApiError> {
        self.authorize(ctx, "GetResourcePolicy", &[input.resource_arn.as_deref()])?;
        self.admit(ctx, "GetResourcePolicy", None, None)?;
        resource_policy::get(&self.broker, ctx, input).await
    }

    async fn delete_resource_policy(
        &self,
        ctx: &RequestContext,
        input: DeleteResourcePolicyInput,
    ) -> Result<(), ApiError> {
        self.authorize(
            ctx,
            "DeleteResourcePolicy",
            &[input.resource_arn.as_deref()],
        )?;
        self.admit(ctx, "DeleteResourcePolicy", None, None)?;
        resource_policy::delete(&self.broker, ctx, input).await
    }

    async fn update_max_record_size(
        &self,
        ctx: &RequestContext,
        input: UpdateMaxRecordSizeInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "UpdateMaxRecordSize", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "UpdateMaxRecordSize",
            None,
            input.stream_arn.as_deref(),
        )?;
        update_max_record_size::handle(&self.broker, ctx, input).await
    }

    async fn split_shard(
        &self,
        ctx: &RequestContext,
        input: SplitShardInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "SplitShard", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "SplitShard",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        resharding::split_shard(&self.broker, ctx, input).await
    }

    async fn merge_shards(
        &self,
        ctx: &RequestContext,
        input: MergeShardsInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "MergeShards", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "MergeShards",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        resharding::merge_shards(&self.broker, ctx, input).await
    }

    async fn update_shard_count(
        &self,
        ctx: &RequestContext,
        input: UpdateShardCountInput,
    ) -> Result<UpdateShardCountOutput, ApiError> {
        self.authorize(ctx, "UpdateShardCount", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "UpdateShardCount",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        resharding::update_shard_count(&self.broker, ctx, input).await
    }

    async fn update_stream_record_distribution_strategy(
        &self,
        ctx: &RequestContext,
        input: UpdateStreamRecordDistributionStrategyInput,
    ) -> Result<(), ApiError> {
        self.authorize(
            ctx,
            "UpdateStreamRecordDistributionStrategy",
            &[input.stream_arn.as_deref()],
        )?;
        self.admit(
            ctx,
            "UpdateStreamRecordDistributionStrategy",
            None,
            input.stream_arn.as_deref(),
        )?;
        update_stream_record_distribution_strategy::handle(&self.broker, ctx, input).await
    }

    async fn update_stream_mode(
        &self,
        ctx: &RequestContext,
        input: UpdateStreamModeInput,
    ) -> Result<(), ApiError> {
        self.authorize(ctx, "UpdateStreamMode", &[input.stream_arn.as_deref()])?;
        self.admit(ctx, "UpdateStreamMode", None, input.stream_arn.as_deref())?;
        resharding::update_stream_mode(&self.broker, ctx, input).await
    }

    async fn describe_account_settings(
        &self,
        ctx: &RequestContext,
        input: DescribeAccountSettingsInput,
    ) -> Result<DescribeAccountSettingsOutput, ApiError> {
        self.admit(ctx, "DescribeAccountSettings", None, None)?;
        account_settings::describe_account_settings(&self.broker, ctx, input).await
    }

    async fn update_account_settings(
        &self,
        ctx: &RequestContext,
        input: UpdateAccountSettingsInput,
    ) -> Result<UpdateAccountSettingsOutput, ApiError> {
        self.admit(ctx, "UpdateAccountSettings", None, None)?;
        account_settings::update_account_settings(&self.broker, ctx, input).await
    }

    async fn register_stream_consumer(
        &self,
        ctx: &RequestContext,
        input: RegisterStreamConsumerInput,
    ) -> Result<RegisterStreamConsumerOutput, ApiError> {
        self.authorize(
            ctx,
            "RegisterStreamConsumer",
            &[input.stream_arn.as_deref()],
        )?;
        self.admit(
            ctx,
            "RegisterStreamConsumer",
            None,
            input.stream_arn.as_deref(),
        )?;
        register_stream_consumer::handle(&self.broker, ctx, input).await
    }

    async fn describe_stream_consumer(
        &self,
        ctx: &RequestContext,
        input: DescribeStreamConsumerInput,
    ) -> Result<DescribeStreamConsumerOutput, ApiError> {
        self.authorize(
            ctx,
            "DescribeStreamConsumer",
            &[input.stream_arn.as_deref(), input.consumer_arn.as_deref()],
        )?;
        let stream = common::consumer_request_stream(
            input.consumer_arn.as_deref(),
            input.stream_arn.as_deref(),
        );
        self.admit(ctx, "DescribeStreamConsumer", stream.as_deref(), None)?;
        describe_stream_consumer::handle(&self.broker, ctx, input).await
    }

    async fn list_stream_consumers(
        &self,
        ctx: &RequestContext,
        input: ListStreamConsumersInput,
    ) -> Result<ListStreamConsumersOutput, ApiError> {
        self.authorize(ctx, "ListStreamConsumers", &[input.stream_arn.as_deref()])?;
        self.admit(
            ctx,
            "ListStreamConsumers",
            None,
            input.stream_arn.as_deref(),
        )?;
        list_stream_consumers::handle(&self.broker, ctx, input).await
    }

    async fn deregister_stream_consumer(
        &self,
        ctx: &RequestContext,
        input: DeregisterStreamConsumerInput,
    ) -> Result<(), ApiError> {
        self.authorize(
            ctx,
            "DeregisterStreamConsumer",
            &[input.stream_arn.as_deref(), input.consumer_arn.as_deref()],
        )?;
        let stream = common::consumer_request_stream(
            input.consumer_arn.as_deref(),
            input.stream_arn.as_deref(),
        );
        self.admit(ctx, "DeregisterStreamConsumer", stream.as_deref(), None)?;
        deregister_stream_consumer::handle(&self.broker, ctx, input).await
    }

    async fn update_stream_warm_throughput(
        &self,
        ctx: &RequestContext,
        input: UpdateStreamWarmThroughputInput,
    ) -> Result<UpdateStreamWarmThroughputOutput, ApiError> {
        self.authorize(
            ctx,
            "UpdateStreamWarmThroughput",
            &[input.stream_arn.as_deref()],
        )?;
        self.admit(
            ctx,
            "UpdateStreamWarmThroughput",
            input.stream_name.as_deref(),
            input.stream_arn.as_deref(),
        )?;
        warm_throughput::handle(&self.broker, ctx, input).await
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

/// The wire form of a consumer status.
fn wire_consumer_status(status: DomainConsumerStatus) -> ConsumerStatus {
    match status {
        DomainConsumerStatus::Creating => ConsumerStatus::Creating,
        DomainConsumerStatus::Active => ConsumerStatus::Active,
        DomainConsumerStatus::Deleting => ConsumerStatus::Deleting,
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

#[cfg(test)]
mod authorization_tests {
    /// Operations that name no resource by ARN: they act on the caller's own account only.
    const ACCOUNT_SCOPED: &[&str] = &[
        "create_stream",
        "list_streams",
        "list_queues",
        "list_channels",
        "describe_limits",
        "describe_account_settings",
        "update_account_settings",
    ];

    /// Every operation of the `Kinesis` impl goes through `Service::authorize` before it
    /// acts, except the account-scoped ones: a new operation cannot forget the check
    /// without this test naming it.
    #[test]
    fn every_operation_naming_a_resource_is_authorized() {
        let source = include_str!("mod.rs");
        let body = source
            .split("impl Kinesis for Service {")
            .nth(1)
            .expect("the Kinesis impl");
        let body = body.split("\n}\n").next().unwrap();
        let mut seen = 0;
        for method in body.split("    async fn ").skip(1) {
            let name = method.split('(').next().unwrap();
            seen += 1;
            let authorized = method.contains("self.authorize(");
            if ACCOUNT_SCOPED.contains(&name) {
                assert!(!authorized, "{name} is listed as account-scoped");
            } else {
                assert!(authorized, "{name} does not call self.authorize");
            }
        }
        assert!(seen > 40, "only {seen} operations found");
    }
}
