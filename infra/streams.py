"""What every stream-triggered function needs besides its own code: an encrypted on-failure
queue, the event source mapping built from the function's ``StreamSettings`` (the same
object the local pollers read), and alarms on iterator age and on the queue's depth.

Construct ids are given by the caller, so each consumer keeps its own logical ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.common.streams import StreamSettings
from infra.nag import acknowledge


def event_source_mapping_options(stream: StreamSettings) -> dict[str, object]:
    """``lambda_.EventSourceMapping`` keyword arguments from the shared StreamSettings."""
    return {
        "starting_position": lambda_.StartingPosition.TRIM_HORIZON,
        "batch_size": stream.batch_size,
        "max_batching_window": Duration.seconds(stream.batching_window_s),
        "bisect_batch_on_error": stream.bisect_on_error,
        "retry_attempts": stream.max_retries,
        "report_batch_item_failures": True,
        "parallelization_factor": stream.parallelization,
        "tumbling_window": (
            Duration.seconds(stream.tumbling_window_s) if stream.tumbling_window_s else None
        ),
        "max_record_age": (
            Duration.seconds(stream.max_record_age_s) if stream.max_record_age_s else None
        ),
        "filters": [lambda_.FilterCriteria.filter(stream.filter_pattern())],
    }


@dataclass(frozen=True)
class StreamConsumer:
    failures: sqs.Queue
    mapping: lambda_.EventSourceMapping
    alarms: list[cw.Alarm]


def stream_consumer(
    scope: Construct,
    name: str,
    *,
    function: lambda_.IFunction,
    stream_arn: str,
    settings: StreamSettings,
    what: str,
    iterator_age_alarm_ms: int,
    lag_means: str,
    given_up_means: str,
    stream: str = "usage",
) -> StreamConsumer:
    """``<name>Failures`` (queue), ``<name>Mapping`` and ``<name>IteratorAge`` /
    ``<name>FailuresDepth`` (alarms) in ``scope``. ``what`` names the consumer in the
    queue's nag reason; ``lag_means`` / ``given_up_means`` end the alarm descriptions."""
    failures = sqs.Queue(
        scope,
        f"{name}Failures",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        failures,
        "AwsSolutions-SQS3",
        f"This queue is itself the on-failure (dead-letter) destination of the {what}'s "
        "event source mapping; it holds batch metadata for a replay, and its depth is "
        "alarmed. A dead-letter queue of a dead-letter queue adds nothing.",
    )
    mapping = lambda_.EventSourceMapping(
        scope,
        f"{name}Mapping",
        target=function,
        event_source_arn=stream_arn,
        on_failure=sources.SqsDlq(failures),
        **event_source_mapping_options(settings),  # type: ignore[arg-type]
    )
    minute = Duration.minutes(1)
    behind = iterator_age_alarm_ms // 60_000
    alarms = [
        cw.Alarm(
            scope,
            f"{name}IteratorAge",
            metric=function.metric("IteratorAge", statistic="Maximum", period=minute),
            threshold=iterator_age_alarm_ms,
            evaluation_periods=3,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"The {what} is {behind} minutes or more behind the {stream} "
            f"stream for 3 minutes: {lag_means}",
        ),
        cw.Alarm(
            scope,
            f"{name}FailuresDepth",
            metric=failures.metric_approximate_number_of_messages_visible(
                period=minute, statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"The {what} gave up on {stream} stream records (on-failure "
            f"queue): {given_up_means}",
        ),
    ]
    return StreamConsumer(failures, mapping, alarms)
