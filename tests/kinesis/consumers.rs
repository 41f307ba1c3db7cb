//! Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer, consumer tags and DeleteStream's
//! EnforceConsumerDeletion, through the Rust SDK.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ConsumerStatus;

use crate::common::*;

/// Longer than any test runs: the state cannot change while the test looks at it.
const LONG: Duration = Duration::from_secs(600);

/// A broker with zero stream and consumer delays and no throughput limits (the limits have
/// their own test), on a fresh directory.
async fn start(
    tweak: impl FnOnce(&mut kinesis_broker::Config),
) -> (Client, Handle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |c| {
        c.register_consumer_delay = Duration::ZERO;
        c.deregister_consumer_delay = Duration::ZERO;
        c.throughput_limits = false;
        tweak(c);
    })
    .await;
    (client_for(h.local_addr()), h, dir)
}

async fn register(client: &Client, stream: &str, name: &str) -> aws_sdk_kinesis::types::Consumer {
    client
        .register_stream_consumer()
        .stream_arn(stream_arn(stream))
        .consumer_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RegisterStreamConsumer {name}: {}", describe_err(&e)))
        .consumer()
        .expect("Consumer")
        .clone()
}

async fn status_of(client: &Client, arn: &str) -> ConsumerStatus {
    client
        .describe_stream_consumer()
        .consumer_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeStreamConsumer {arn}: {}", describe_err(&e)))
        .consumer_description()
        .expect("ConsumerDescription")
        .consumer_status()
        .clone()
}

async fn list_names(client: &Client, stream: &str) -> Vec<(String, ConsumerStatus)> {
    client
        .list_stream_consumers()
        .stream_arn(stream_arn(stream))
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListStreamConsumers {stream}: {}", describe_err(&e)))
        .consumers()
        .iter()
        .map(|c| (c.consumer_name().to_owned(), c.consumer_status().clone()))
        .collect()
}

fn consumer_arn(stream: &str, name: &str, secs: i64) -> String {
    format!("{}/consumer/{name}:{secs}", stream_arn(stream))
}

#[tokio::test]
async fn a_consumer_is_registered_described_listed_and_deregistered_with_aws_arn() {
    let (client, _h, _dir) = start(|_| {}).await;
    create_stream(&client, "fan", 2).await;

    let c = register(&client, "fan", "app-1").await;
    assert_eq!(c.consumer_name(), "app-1");
    assert_eq!(c.consumer_status(), &ConsumerStatus::Active, "zero delay");
    let secs = c.consumer_creation_timestamp().secs();
    assert_eq!(c.consumer_arn(), consumer_arn("fan", "app-1", secs));

    // By ARN and by stream ARN + name: the same description.
    let by_arn = client
        .describe_stream_consumer()
        .consumer_arn(c.consumer_arn())
        .send()
        .await
        .unwrap();
    let by_name = client
        .describe_stream_consumer()
        .stream_arn(stream_arn("fan"))
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();
    let d = by_arn.consumer_description().unwrap();
    assert_eq!(Some(d), by_name.consumer_description());
    assert_eq!(d.consumer_name(), "app-1");
    assert_eq!(d.consumer_arn(), c.consumer_arn());
    assert_eq!(d.consumer_status(), &ConsumerStatus::Active);
    assert_eq!(d.stream_arn(), stream_arn("fan"));
    assert_eq!(
        d.consumer_creation_timestamp(),
        c.consumer_creation_timestamp()
    );
    // All three agreeing is allowed too.
    client
        .describe_stream_consumer()
        .consumer_arn(c.consumer_arn())
        .stream_arn(stream_arn("fan"))
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();

    assert_eq!(
        list_names(&client, "fan").await,
        [("app-1".to_owned(), ConsumerStatus::Active)]
    );

    client
        .deregister_stream_consumer()
        .consumer_arn(c.consumer_arn())
        .send()
        .await
        .unwrap();
    assert!(list_names(&client, "fan").await.is_empty());
    assert_error(
        client
            .describe_stream_consumer()
            .consumer_arn(c.consumer_arn())
            .send()
            .await,
        "ResourceNotFoundException",
        &format!(
            "Consumer {} under account {DEFAULT_ACCOUNT} not found.",
            c.consumer_arn()
        ),
    );

    // Deregistering by stream ARN + name works as well.
    register(&client, "fan", "app-2").await;
    client
        .deregister_stream_consumer()
        .stream_arn(stream_arn("fan"))
        .consumer_name("app-2")
        .send()
        .await
        .unwrap();
    assert!(list_names(&client, "fan").await.is_empty());
}

#[tokio::test]
async fn with_delays_a_consumer_is_creating_then_active_and_deleting_then_gone() {
    let delay = Duration::from_millis(300);
    let (client, _h, _dir) = start(|c| {
        c.register_consumer_delay = delay;
        c.deregister_consumer_delay = delay;
    })
    .await;
    create_stream(&client, "slow", 1).await;
    let c = register(&client, "slow", "late").await;
    assert_eq!(c.consumer_status(), &ConsumerStatus::Creating);
    assert_eq!(
        list_names(&client, "slow").await,
        [("late".to_owned(), ConsumerStatus::Creating)]
    );
    let mut active = false;
    for _ in 0..MAX_POLLS {
        if status_of(&client, c.consumer_arn()).await == ConsumerStatus::Active {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(active, "consumer never became ACTIVE");

    client
        .deregister_stream_consumer()
        .consumer_arn(c.consumer_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_of(&client, c.consumer_arn()).await,
        ConsumerStatus::Deleting
    );
    assert_eq!(
        list_names(&client, "slow").await,
        [("late".to_owned(), ConsumerStatus::Deleting)],
        "a DELETING consumer is still listed"
    );
    let mut gone = false;
    for _ in 0..MAX_POLLS {
        let r = client
            .describe_stream_consumer()
            .consumer_arn(c.consumer_arn())
            .send()
            .await;
        match code_of(&r).as_str() {
            "ResourceNotFoundException" => {
                gone = true;
                break;
            }
            "success" => tokio::time::sleep(Duration::from_millis(25)).await,
            other => panic!("DescribeStreamConsumer: {other}"),
        }
    }
    assert!(gone, "consumer never went away");
}

#[tokio::test]
async fn only_an_active_consumer_on_an_active_stream_changes_state() {
    let (client, _h, _dir) = start(|c| {
        c.create_stream_delay = LONG;
        c.register_consumer_delay = LONG;
    })
    .await;
    client
        .create_stream()
        .stream_name("young")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    assert_error(
        client
            .register_stream_consumer()
            .stream_arn(stream_arn("young"))
            .consumer_name("c")
            .send()
            .await,
        "ResourceInUseException",
        &format!(
            "Stream young under account {DEFAULT_ACCOUNT} not ACTIVE, instead in state CREATING"
        ),
    );
    assert!(list_names(&client, "young").await.is_empty());

    // Start-up streams are ACTIVE at once, whatever the creation delay.
    let (client, _h2, _dir2) = start(|c| {
        c.register_consumer_delay = LONG;
        c.create_streams = vec!["ready:1".parse().unwrap()];
    })
    .await;
    let c = register(&client, "ready", "pending").await;
    assert_eq!(c.consumer_status(), &ConsumerStatus::Creating);
    let secs = c.consumer_creation_timestamp().secs();
    assert_error(
        client
            .deregister_stream_consumer()
            .consumer_arn(c.consumer_arn())
            .send()
            .await,
        "ResourceInUseException",
        &format!(
            "Consumer pending with creation timestamp {secs} under stream ready and account {DEFAULT_ACCOUNT} is not in ACTIVE status."
        ),
    );
    assert_eq!(
        status_of(&client, c.consumer_arn()).await,
        ConsumerStatus::Creating,
        "a refused deregistration changes nothing"
    );
}

#[tokio::test]
async fn duplicate_names_and_unknown_streams_consumers_and_arns_answer_as_aws() {
    let (client, _h, _dir) = start(|_| {}).await;
    create_stream(&client, "s", 1).await;
    create_stream(&client, "t", 1).await;
    let c = register(&client, "s", "dup").await;
    assert_error(
        client
            .register_stream_consumer()
            .stream_arn(stream_arn("s"))
            .consumer_name("dup")
            .send()
            .await,
        "ResourceInUseException",
        &format!("Consumer dup under stream s under account {DEFAULT_ACCOUNT} already exists."),
    );
    // The same name on another stream is fine.
    register(&client, "t", "dup").await;
    assert_eq!(list_names(&client, "s").await.len(), 1);

    assert_error(
        client
            .register_stream_consumer()
            .stream_arn(stream_arn("nope"))
            .consumer_name("c")
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Stream nope under account {DEFAULT_ACCOUNT} not found."),
    );
    assert_error(
        client
            .list_stream_consumers()
            .stream_arn(stream_arn("nope"))
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Stream nope under account {DEFAULT_ACCOUNT} not found."),
    );
    assert_error(
        client
            .describe_stream_consumer()
            .stream_arn(stream_arn("s"))
            .consumer_name("ghost")
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Consumer ghost under stream s under account {DEFAULT_ACCOUNT} not found."),
    );
    assert_error(
        client
            .deregister_stream_consumer()
            .stream_arn(stream_arn("s"))
            .consumer_name("ghost")
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Consumer ghost under stream s under account {DEFAULT_ACCOUNT} not found."),
    );
    // An ARN with another creation second names no consumer.
    let secs = c.consumer_creation_timestamp().secs();
    let stale = consumer_arn("s", "dup", secs - 1);
    assert_error(
        client
            .describe_stream_consumer()
            .consumer_arn(&stale)
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Consumer {stale} under account {DEFAULT_ACCOUNT} not found."),
    );
    let other_stream = consumer_arn("nope", "dup", secs);
    assert_error(
        client
            .deregister_stream_consumer()
            .consumer_arn(&other_stream)
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Consumer {other_stream} under account {DEFAULT_ACCOUNT} not found."),
    );

    let required = "ConsumerArn or both ConsumerName and StreamARN are required for this request.";
    assert_error(
        client.describe_stream_consumer().send().await,
        "InvalidArgumentException",
        required,
    );
    assert_error(
        client
            .describe_stream_consumer()
            .consumer_name("dup")
            .send()
            .await,
        "InvalidArgumentException",
        required,
    );
    assert_error(
        client
            .deregister_stream_consumer()
            .stream_arn(stream_arn("s"))
            .send()
            .await,
        "InvalidArgumentException",
        required,
    );
    assert_error(
        client
            .describe_stream_consumer()
            .consumer_arn(c.consumer_arn())
            .consumer_name("other")
            .send()
            .await,
        "InvalidArgumentException",
        &format!(
            "ConsumerARN {} does not name consumer other.",
            c.consumer_arn()
        ),
    );
    assert_error(
        client
            .deregister_stream_consumer()
            .consumer_arn(c.consumer_arn())
            .stream_arn(stream_arn("t"))
            .send()
            .await,
        "InvalidArgumentException",
        &format!(
            "ConsumerARN {} does not belong to stream {}.",
            c.consumer_arn(),
            stream_arn("t")
        ),
    );
    // Matches the model's pattern, but its stream part is not a stream ARN.
    let odd = format!("arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:mystream/s/consumer/dup:{secs}");
    assert_error(
        client
            .describe_stream_consumer()
            .consumer_arn(&odd)
            .send()
            .await,
        "InvalidArgumentException",
        &format!("Invalid ConsumerARN: {odd}."),
    );
    // The model's constraints come from the generated validation.
    assert_error_prefix(
        client
            .register_stream_consumer()
            .stream_arn(stream_arn("s"))
            .consumer_name("bad name")
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value 'bad name' at 'consumerName' failed to satisfy constraint",
    );
    // Nothing above changed the registrations.
    assert_eq!(
        list_names(&client, "s").await,
        [("dup".to_owned(), ConsumerStatus::Active)]
    );
    assert_eq!(
        status_of(&client, c.consumer_arn()).await,
        ConsumerStatus::Active
    );
}

#[tokio::test]
async fn twenty_consumers_per_stream_and_five_creating_at_once() {
    let (client, h, _dir) = start(|_| {}).await;
    let strict = client_no_retry(h.local_addr());
    create_stream(&client, "many", 1).await;
    for i in 0..20 {
        register(&client, "many", &format!("c{i:02}")).await;
    }
    assert_error(
        strict
            .register_stream_consumer()
            .stream_arn(stream_arn("many"))
            .consumer_name("c20")
            .send()
            .await,
        "LimitExceededException",
        &format!(
            "Stream many under account {DEFAULT_ACCOUNT} already has 20 registered consumers, the most a stream can have."
        ),
    );
    assert_eq!(list_names(&client, "many").await.len(), 20);
    // A slot frees up when one is deregistered.
    client
        .deregister_stream_consumer()
        .stream_arn(stream_arn("many"))
        .consumer_name("c00")
        .send()
        .await
        .unwrap();
    register(&client, "many", "c20").await;

    let (client, h, _dir) = start(|c| c.register_consumer_delay = LONG).await;
    let strict = client_no_retry(h.local_addr());
    create_stream(&client, "busy", 1).await;
    for i in 0..5 {
        let c = register(&client, "busy", &format!("n{i}")).await;
        assert_eq!(c.consumer_status(), &ConsumerStatus::Creating);
    }
    assert_error(
        strict
            .register_stream_consumer()
            .stream_arn(stream_arn("busy"))
            .consumer_name("n5")
            .send()
            .await,
        "LimitExceededException",
        &format!(
            "Stream busy under account {DEFAULT_ACCOUNT} already has 5 consumers in CREATING status; only 5 consumers can be created at the same time."
        ),
    );
    assert_eq!(list_names(&client, "busy").await.len(), 5);
    // The limit is per stream.
    create_stream(&client, "calm", 1).await;
    register(&client, "calm", "n5").await;
}

#[tokio::test]
async fn control_plane_rates_apply_to_consumer_operations() {
    let (client, h, _dir) = start(|c| c.throughput_limits = true).await;
    let strict = client_no_retry(h.local_addr());
    create_stream(&client, "rated", 1).await;
    // RegisterStreamConsumer: 5 per second per account, with one second of burst.
    let mut codes = Vec::new();
    for i in 0..8 {
        let r = strict
            .register_stream_consumer()
            .stream_arn(stream_arn("rated"))
            .consumer_name(format!("r{i}"))
            .send()
            .await;
        codes.push(code_of(&r));
    }
    assert!(
        codes.iter().filter(|c| *c == "success").count() <= 5
            && codes.iter().any(|c| c == "LimitExceededException"),
        "{codes:?}"
    );
    // ListStreamConsumers: 5 per second per stream.
    let mut codes = Vec::new();
    for _ in 0..8 {
        let r = strict
            .list_stream_consumers()
            .stream_arn(stream_arn("rated"))
            .send()
            .await;
        codes.push(code_of(&r));
    }
    assert!(
        codes.iter().filter(|c| *c == "success").count() <= 5
            && codes.iter().any(|c| c == "LimitExceededException"),
        "{codes:?}"
    );
}

#[tokio::test]
async fn list_stream_consumers_pages_by_name_and_checks_the_creation_timestamp() {
    let (client, _h, _dir) = start(|_| {}).await;
    create_stream(&client, "paged", 1).await;
    create_stream(&client, "other", 1).await;
    let names = ["g", "b", "e", "a", "f", "c", "d"];
    for n in names {
        register(&client, "paged", n).await;
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_stream_consumers()
            .stream_arn(stream_arn("paged"))
            .max_results(3)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.consumers().len() <= 3);
        seen.extend(out.consumers().iter().map(|c| c.consumer_name().to_owned()));
        match out.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["a", "b", "c", "d", "e", "f", "g"]);
    // Without MaxResults: one page of everything, no token.
    let all = client
        .list_stream_consumers()
        .stream_arn(stream_arn("paged"))
        .send()
        .await
        .unwrap();
    assert_eq!(all.consumers().len(), 7);
    assert_eq!(all.next_token(), None);

    let first = client
        .list_stream_consumers()
        .stream_arn(stream_arn("paged"))
        .max_results(2)
        .send()
        .await
        .unwrap();
    let token = first.next_token().expect("more to come").to_owned();
    assert_error(
        client
            .list_stream_consumers()
            .stream_arn(stream_arn("other"))
            .next_token(&token)
            .send()
            .await,
        "InvalidArgumentException",
        "Invalid NextToken.",
    );
    let created = client
        .describe_stream_summary()
        .stream_name("paged")
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_creation_timestamp()
        .to_owned();
    assert_error(
        client
            .list_stream_consumers()
            .stream_arn(stream_arn("paged"))
            .next_token(&token)
            .stream_creation_timestamp(created)
            .send()
            .await,
        "InvalidArgumentException",
        "NextToken and StreamCreationTimestamp cannot be provided together.",
    );
    let ok = client
        .list_stream_consumers()
        .stream_arn(stream_arn("paged"))
        .stream_creation_timestamp(created)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.consumers().len(), 7);
    let earlier = DateTime::from_secs(created.secs() - 3600);
    assert_error(
        client
            .list_stream_consumers()
            .stream_arn(stream_arn("paged"))
            .stream_creation_timestamp(earlier)
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Stream paged under account {DEFAULT_ACCOUNT} not found."),
    );
}

#[tokio::test]
async fn consumers_carry_tags_by_arn_with_aws_limits() {
    let (client, _h, _dir) = start(|_| {}).await;
    create_stream(&client, "tagged", 1).await;
    let c = client
        .register_stream_consumer()
        .stream_arn(stream_arn("tagged"))
        .consumer_name("t")
        .tags("team", "data")
        .send()
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .clone();
    let arn = c.consumer_arn().to_owned();
    let tags =
        |out: aws_sdk_kinesis::operation::list_tags_for_resource::ListTagsForResourceOutput| {
            out.tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
                .collect::<Vec<_>>()
        };
    let got = tags(
        client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(got, [("team".to_owned(), "data".to_owned())]);

    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("env", "test")
        .send()
        .await
        .unwrap();
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let got = tags(
        client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(got, [("env".to_owned(), "test".to_owned())]);
    // The stream's own tags are separate.
    assert!(
        client
            .list_tags_for_resource()
            .resource_arn(stream_arn("tagged"))
            .send()
            .await
            .unwrap()
            .tags()
            .is_empty()
    );

    // 50 tags at most: 49 more fit, the 51st does not, and a refused call adds nothing.
    let mut req = client.tag_resource().resource_arn(&arn);
    for i in 0..49 {
        req = req.tags(format!("k{i:02}"), "v");
    }
    req.send().await.unwrap();
    let too_many = format!(
        "Failed to add tags to consumer t under stream tagged under account {DEFAULT_ACCOUNT} because a given consumer cannot have more than 50 tags associated with it."
    );
    assert_error(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags("one-more", "v")
            .send()
            .await,
        "InvalidArgumentException",
        &too_many,
    );
    let count = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags()
        .len();
    assert_eq!(count, 50);
    assert_error(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags("pct", "50%")
            .send()
            .await,
        "InvalidArgumentException",
        &format!(
            "Failed to add tags to consumer t under stream tagged under account {DEFAULT_ACCOUNT} because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'."
        ),
    );
    // RegisterStreamConsumer's Tags obey the same limit, and a refusal registers nothing.
    let mut req = client
        .register_stream_consumer()
        .stream_arn(stream_arn("tagged"))
        .consumer_name("crowded");
    for i in 0..51 {
        req = req.tags(format!("k{i:02}"), "v");
    }
    assert_error(
        req.send().await,
        "InvalidArgumentException",
        &format!(
            "Failed to add tags to consumer crowded under stream tagged under account {DEFAULT_ACCOUNT} because a given consumer cannot have more than 50 tags associated with it."
        ),
    );
    assert_eq!(list_names(&client, "tagged").await.len(), 1);

    // Tags of an unknown consumer ARN.
    let ghost = consumer_arn("tagged", "ghost", 1);
    assert_error(
        client
            .list_tags_for_resource()
            .resource_arn(&ghost)
            .send()
            .await,
        "ResourceNotFoundException",
        &format!("Consumer {ghost} under account {DEFAULT_ACCOUNT} not found."),
    );
}

#[tokio::test]
async fn delete_stream_with_consumers_needs_enforce_consumer_deletion() {
    let (client, _h, _dir) = start(|_| {}).await;
    create_stream(&client, "held", 1).await;
    let c = register(&client, "held", "reader").await;
    let refused = format!(
        "DeleteStream can\u{2019}t delete {DEFAULT_ACCOUNT}:held because there are consumers associated with this data stream. To delete held anyway, set the EnforceConsumerDeletion parameter to true to force the deletion of all the consumers that are associated with it."
    );
    assert_error(
        client.delete_stream().stream_name("held").send().await,
        "ResourceInUseException",
        &refused,
    );
    assert_error(
        client
            .delete_stream()
            .stream_name("held")
            .enforce_consumer_deletion(false)
            .send()
            .await,
        "ResourceInUseException",
        &refused,
    );
    assert_eq!(
        status_of(&client, c.consumer_arn()).await,
        ConsumerStatus::Active
    );
    wait_active(&client, "held").await;

    client
        .delete_stream()
        .stream_name("held")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "held").await;
    // A new stream of the same name has no consumers, and the old ARN names nothing.
    create_stream(&client, "held", 1).await;
    assert!(list_names(&client, "held").await.is_empty());
    assert_eq!(
        code_of(
            &client
                .describe_stream_consumer()
                .consumer_arn(c.consumer_arn())
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    // Without consumers, DeleteStream needs no flag.
    client
        .delete_stream()
        .stream_name("held")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "held").await;
}

#[tokio::test]
async fn with_a_stream_deletion_delay_consumers_are_deleting_with_their_stream() {
    let (client, _h, _dir) = start(|c| c.delete_stream_delay = LONG).await;
    create_stream(&client, "going", 1).await;
    let c = register(&client, "going", "r").await;
    client
        .delete_stream()
        .stream_name("going")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_of(&client, c.consumer_arn()).await,
        ConsumerStatus::Deleting
    );
}

#[tokio::test]
async fn a_recreated_consumer_has_a_new_arn_and_the_old_one_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let clock = kinesis_broker::broker::Clock::system();
    let server = ClockServer::start(dir.path(), clock.clone(), |_| {}).await;
    let client = &server.client;
    create_stream(client, "again", 1).await;
    let first = register(client, "again", "same").await;
    client
        .deregister_stream_consumer()
        .consumer_arn(first.consumer_arn())
        .send()
        .await
        .unwrap();
    // The ARN carries the creation second: a later registration gets another one.
    clock.advance_ms(2_000).unwrap();
    let second = register(client, "again", "same").await;
    assert_ne!(first.consumer_arn(), second.consumer_arn());
    assert_error(
        client
            .describe_stream_consumer()
            .consumer_arn(first.consumer_arn())
            .send()
            .await,
        "ResourceNotFoundException",
        &format!(
            "Consumer {} under account {DEFAULT_ACCOUNT} not found.",
            first.consumer_arn()
        ),
    );
    assert_eq!(
        code_of(
            &client
                .deregister_stream_consumer()
                .consumer_arn(first.consumer_arn())
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        status_of(client, second.consumer_arn()).await,
        ConsumerStatus::Active
    );

    // The broker-side look-up SubscribeToShard uses agrees.
    let (stream, meta) = server
        .broker
        .consumer_by_arn(DEFAULT_ACCOUNT, REGION, second.consumer_arn())
        .unwrap();
    assert_eq!(stream.key.name, "again");
    assert_eq!(meta.name, "same");
    assert_eq!(meta.arn(&stream.arn()), second.consumer_arn());
    assert!(
        server
            .broker
            .consumer_by_arn(DEFAULT_ACCOUNT, REGION, first.consumer_arn())
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn consumers_survive_a_restart_and_interrupted_transitions_complete() {
    let dir = tempfile::tempdir().unwrap();
    let zero = |c: &mut kinesis_broker::Config| {
        c.register_consumer_delay = Duration::ZERO;
        c.deregister_consumer_delay = Duration::ZERO;
        c.throughput_limits = false;
    };
    let h = start_server_in(dir.path(), zero).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "kept", 1).await;
    let a = register(&client, "kept", "a").await;
    let b = register(&client, "kept", "b").await;
    client
        .tag_resource()
        .resource_arn(a.consumer_arn())
        .tags("k", "v")
        .send()
        .await
        .unwrap();
    h.shutdown().await.expect("clean shutdown");

    // Stopped with one consumer CREATING and one DELETING.
    let h = start_server_in(dir.path(), |c| {
        c.register_consumer_delay = LONG;
        c.deregister_consumer_delay = LONG;
        c.throughput_limits = false;
    })
    .await;
    let client = client_for(h.local_addr());
    let d = register(&client, "kept", "d").await;
    assert_eq!(d.consumer_status(), &ConsumerStatus::Creating);
    client
        .deregister_stream_consumer()
        .consumer_arn(b.consumer_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_of(&client, b.consumer_arn()).await,
        ConsumerStatus::Deleting
    );
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), zero).await;
    let client = client_for(h.local_addr());
    assert_eq!(
        list_names(&client, "kept").await,
        [
            ("a".to_owned(), ConsumerStatus::Active),
            ("d".to_owned(), ConsumerStatus::Active)
        ]
    );
    let described = client
        .describe_stream_consumer()
        .consumer_arn(a.consumer_arn())
        .send()
        .await
        .unwrap();
    let described = described.consumer_description().unwrap();
    assert_eq!(
        described.consumer_creation_timestamp(),
        a.consumer_creation_timestamp()
    );
    let tags = client
        .list_tags_for_resource()
        .resource_arn(a.consumer_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), "k");
    assert_eq!(
        status_of(&client, d.consumer_arn()).await,
        ConsumerStatus::Active
    );
    assert_eq!(
        code_of(
            &client
                .describe_stream_consumer()
                .consumer_arn(b.consumer_arn())
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    h.shutdown().await.expect("clean shutdown");
}
