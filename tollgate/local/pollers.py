"""Local stream pollers: moto's DynamoDB streams feed the real stream handlers, as Lambda does.

Each :class:`StreamSource` is one event source mapping of the deployed stack: a table, a
handler, and the mapping's :class:`~functions.common.streams.StreamSettings` (the same
object CDK builds the mapping from: batch size, batching window, filter, retries,
bisection, tumbling window). :func:`start_pollers` runs one thread per source that reads
the table's stream through moto's endpoint (boto3 ``dynamodbstreams``), per shard and in
order, and invokes the handler with Lambda-shaped events:

* records get ``eventSourceARN``, ``eventSource`` ``aws:dynamodb``, ``awsRegion`` and an
  epoch-seconds ``ApproximateCreationDateTime`` (moto gives none / a datetime);
* the filter drops records before batching, as the mapping's filter criteria do;
* a batch is invoked when ``batch_size`` records wait or the oldest has waited
  ``batching_window_s``;
* with a tumbling window, the event also carries ``shardId``, ``window``, ``state`` and
  ``isFinalInvokeForWindow``, and an answer without ``state`` is a failure (as in Lambda);
* ``batchItemFailures``: the records before the lowest reported sequence number are done,
  the rest is delivered again; an unknown identifier or an exception fails the whole batch;
  an exception with bisection on halves the next batch (down to one record);
* a failed delivery counts an attempt (progress resets the count); after ``max_retries``
  the records of the failed delivery become **dead letters**: logged at ERROR
  (``stream records dead-lettered``), kept in :attr:`Pollers.dead_letters`, and sent to a
  moto SQS queue ``tollgate-<source>-dlq`` in the shape Lambda's on-failure destination
  gets (``DDBStreamBatchInfo`` ...), plus the records themselves.
  ``tollgate --local usage dead-letters`` lists them.

Memory: moto keeps every stream record (and every shard iterator it ever handed out).
When given the :class:`~tollgate.local.aws.MotoServer`, the pollers trim, under moto's
request lock, the records every poller of a table has read (read records a poller has not
processed yet sit in its own buffer, so nothing is lost) and the iterators they used. This
assumes the pollers are the stream's only readers (true in the local stack).

Wiring (the local stack)::

    pollers = start_pollers(moto=server)   # the deployed stack's stream consumers
    ...
    pollers()                               # stop
"""

from __future__ import annotations

import importlib
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from functions.common.config import TableNames
from functions.common.observability import logger
from functions.common.streams import StreamSettings, matches

Handler = Callable[[dict[str, Any], Any], Any]
READ_LIMIT: Final = 1000  # GetRecords' maximum
REGION: Final = "us-east-1"


@dataclass(frozen=True)
class StreamSource:
    """One stream consumer: the table kind it reads, its handler, its mapping's settings."""

    name: str
    table: str  # a table kind of functions.common.config (e.g. "usage")
    handler: str | Handler  # a dotted path (imported at start) or the function itself
    settings: StreamSettings

    def load(self) -> Handler:
        if callable(self.handler):
            return self.handler
        module, _, attr = self.handler.rpartition(".")
        loaded: Handler = getattr(importlib.import_module(module), attr)
        return loaded


def stream_consumers() -> list[StreamSource]:
    """The stream functions the deployed stack runs (infra/), as the local stack runs them.

    Add a consumer here with the same handler and StreamSettings its CDK mapping uses.
    """
    from functions.detector.stream import DETECTOR_HANDLER, DETECTOR_STREAM
    from functions.notices.stream import DELIVERY_HANDLER, DELIVERY_STREAM
    from functions.usage.stream import AGGREGATOR_HANDLER, AGGREGATOR_STREAM

    return [
        StreamSource("usage-aggregator", "usage", AGGREGATOR_HANDLER, AGGREGATOR_STREAM),
        StreamSource("spike-detector", "usage", DETECTOR_HANDLER, DETECTOR_STREAM),
        # threshold notices (issue 14): delivery of usage.threshold webhooks
        StreamSource("notice-delivery", "notices", DELIVERY_HANDLER, DELIVERY_STREAM),
    ]


@dataclass
class DeadLetter:
    source: str
    shard_id: str
    stream_arn: str
    first_sequence_number: str
    last_sequence_number: str
    count: int
    reason: str
    at: float
    records: list[dict[str, Any]] = field(repr=False)

    def message(self, function_name: str, attempts: int) -> dict[str, Any]:
        """The on-failure destination record Lambda writes, plus the records themselves."""
        arrival = [r["dynamodb"].get("ApproximateCreationDateTime") for r in self.records]

        def iso(epoch: Any) -> str | None:
            if not isinstance(epoch, int | float):
                return None
            return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"statusCode": 200, "functionError": self.reason[:256]},
            "version": "1.0",
            "timestamp": iso(self.at),
            "DDBStreamBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": self.first_sequence_number,
                "endSequenceNumber": self.last_sequence_number,
                "approximateArrivalOfFirstRecord": iso(arrival[0]) if arrival else None,
                "approximateArrivalOfLastRecord": iso(arrival[-1]) if arrival else None,
                "batchSize": self.count,
                "streamArn": self.stream_arn,
            },
            "records": self.records,  # local only: Lambda sends metadata, not records
        }


class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def dead_letter_queue_name(source: str) -> str:
    return f"tollgate-{source}-dlq"


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A moto stream record as Lambda delivers it."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    elif created is None:
        stream["ApproximateCreationDateTime"] = int(time.time())
    return {
        **record,
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or REGION,
        "eventSourceARN": stream_arn,
        "dynamodb": stream,
    }


def failed_from(batch: Sequence[dict[str, Any]], response: Any, settings: StreamSettings) -> int:
    """How many records of ``batch`` succeeded, from the handler's answer (Lambda's rules)."""
    if settings.tumbling_window_s and not (isinstance(response, dict) and "state" in response):
        return 0  # with a tumbling window, an answer without state is a failed invocation
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return len(batch)
    seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
    lowest = len(batch)
    for failure in response["batchItemFailures"]:
        ident = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if ident not in seqs:
            return 0  # an identifier Lambda cannot place: the whole batch failed
        lowest = min(lowest, seqs.index(ident))
    return lowest


class _Trimmer:
    """Drops, from moto's memory, the stream records every poller of a table has read."""

    def __init__(self, moto: Any, interval_s: float = 1.0) -> None:
        self._moto = moto
        self._interval = interval_s
        self._read: dict[str, dict[str, int]] = {}  # table -> poller -> last read seq
        self._last_trim: dict[str, float] = {}
        self._lock = threading.Lock()
        self.trimmed = 0

    def register(self, table: str, poller: str) -> None:
        with self._lock:
            self._read.setdefault(table, {})[poller] = -1

    def _moto_lock(self) -> AbstractContextManager[Any]:
        lock = getattr(self._moto, "lock", None)  # tollgate.local.aws serialises with it
        return lock if lock is not None else nullcontext()

    def read(self, table: str, poller: str, seq: int, account: str, iterator: str | None) -> None:
        """``poller`` has read ``table``'s stream up to ``seq`` and is done with ``iterator``."""
        with self._lock:
            self._read[table][poller] = max(self._read[table][poller], seq)
            upto = min(self._read[table].values())
            due = time.monotonic() - self._last_trim.get(table, 0.0) >= self._interval
            if due:
                self._last_trim[table] = time.monotonic()
        with self._moto_lock():
            if iterator is not None:
                self._forget_iterator(account, iterator)
            if due and upto >= 0:
                self._trim(table, account, upto)

    @staticmethod
    def _forget_iterator(account: str, iterator: str) -> None:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        dynamodbstreams_backends[account][REGION].shard_iterators.pop(iterator, None)

    def _trim(self, table: str, account: str, upto: int) -> None:
        from moto.dynamodb.models import dynamodb_backends

        shard = dynamodb_backends[account][REGION].get_table(table).stream_shard
        if shard is None:
            return
        # moto numbers records start + index: drop a prefix, move the start by as much.
        drop = min(upto + 1 - shard.starting_sequence_number, len(shard.items))
        if drop > 0:
            del shard.items[:drop]
            shard.starting_sequence_number += drop
            self.trimmed += drop


class _Poller:
    def __init__(self, owner: Pollers, source: StreamSource, table_name: str) -> None:
        self.owner = owner
        self.source = source
        self.settings = source.settings
        self.table_name = table_name
        self.handler = source.load()
        self.pattern = source.settings.filter_pattern()
        self.buffer: deque[dict[str, Any]] = deque()
        self.first_waiting: float | None = None
        self.limit = self.settings.batch_size
        self.attempts = 0
        self.invocations = 0
        self.delivered = 0
        self.last_quiet_read = 0.0  # monotonic start of the last read that found nothing
        self.read_upto: str | None = None  # sequence number of the last record read
        self.thread = threading.Thread(target=self._run, name=f"poller-{source.name}", daemon=True)

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self.owner.stopping.is_set():
            try:
                self._poll_stream()
            except Exception as exc:  # moto gone (stopping) or a bug: say so, try again
                if self.owner.stopping.is_set():
                    return
                logger.exception("stream poller failed; restarting", extra={"error": str(exc)})
                self.owner.stopping.wait(1.0)

    def _poll_stream(self) -> None:
        clients = self.owner.clients()
        table = clients["dynamodb"].describe_table(TableName=self.table_name)["Table"]
        stream_arn = table["LatestStreamArn"]
        account = stream_arn.split(":")[4]
        streams = clients["dynamodbstreams"]
        shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:  # moto has one shard per table; DynamoDB: parents first
            self._poll_shard(streams, stream_arn, account, shard["ShardId"])
            if self.owner.stopping.is_set():
                return

    def _poll_shard(self, streams: Any, stream_arn: str, account: str, shard_id: str) -> None:
        # After a restart, resume after what this poller has read (its unprocessed records
        # are still in its buffer), never from the trim horizon again.
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.read_upto}
            if self.read_upto is not None
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator: str | None = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, **position
        )["ShardIterator"]
        while not self.owner.stopping.is_set():
            got = 0
            if iterator is not None and len(self.buffer) < self.settings.batch_size:
                started = time.monotonic()
                response = streams.get_records(ShardIterator=iterator, Limit=READ_LIMIT)
                records = response.get("Records", [])
                got = len(records)
                used, iterator = iterator, response.get("NextShardIterator")
                last = int(records[-1]["dynamodb"]["SequenceNumber"]) if records else -1
                if records:
                    self.read_upto = records[-1]["dynamodb"]["SequenceNumber"]
                if self.owner.trimmer is not None:
                    self.owner.trimmer.read(self.table_name, self.source.name, last, account, used)
                for record in records:
                    shaped = lambda_record(record, stream_arn)
                    if matches(self.pattern, shaped):
                        self.buffer.append(shaped)
                if self.buffer and self.first_waiting is None:
                    self.first_waiting = time.monotonic()
                if not got and not self.buffer:
                    self.last_quiet_read = started
            if self._due():
                self._deliver(shard_id, stream_arn)
            elif not got:
                self.owner.stopping.wait(self.owner.poll_interval_s)
            if iterator is None and not self.buffer:
                return  # the shard is closed and done

    def _due(self) -> bool:
        if not self.buffer:
            return False
        if len(self.buffer) >= self.limit or self.settings.batching_window_s == 0:
            return True
        waited = time.monotonic() - (self.first_waiting or time.monotonic())
        return waited >= self.settings.batching_window_s

    # -- one invocation ----------------------------------------------------------------
    def _event(self, batch: list[dict[str, Any]], shard_id: str, arn: str) -> dict[str, Any]:
        event: dict[str, Any] = {"Records": batch}
        window = self.settings.tumbling_window_s
        if window:
            created = int(batch[0]["dynamodb"]["ApproximateCreationDateTime"])
            start = created - created % window

            def iso(t: int) -> str:
                return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

            event.update(
                shardId=shard_id,
                eventSourceARN=arn,
                window={"start": iso(start), "end": iso(start + window)},
                state={},
                isFinalInvokeForWindow=False,
                isWindowTerminatedEarly=False,
            )
        return event

    def _deliver(self, shard_id: str, stream_arn: str) -> None:
        batch = [self.buffer[i] for i in range(min(self.limit, len(self.buffer)))]
        error = ""
        raised = False
        self.invocations += 1
        try:
            response = self.handler(
                json.loads(json.dumps(self._event(batch, shard_id, stream_arn))),
                LambdaContext(self.source.name),
            )
            done = failed_from(batch, response, self.settings)
            if done < len(batch):
                error = "batchItemFailures" if isinstance(response, dict) else "bad response"
        except Exception as exc:
            raised, done, error = True, 0, f"{type(exc).__name__}: {exc}"
        if done < len(batch):
            logger.warning(
                "stream batch failed; the rest is delivered again",
                extra={"source": self.source.name, "records": len(batch), "done": done,
                       "attempt": self.attempts + 1, "error": error[:300]},
            )  # fmt: skip
        for _ in range(done):
            self.buffer.popleft()
        self.delivered += done
        if done == len(batch):
            self.attempts = 0
            self.limit = self.settings.batch_size
            self.first_waiting = time.monotonic() if self.buffer else None
            return
        if done:
            self.attempts = 0  # the checkpoint moved
        if raised and self.settings.bisect_on_error and len(batch) > 1:
            self.limit = math.ceil(len(batch) / 2)  # bisect; not counted as a retry
            return
        self.attempts += 1
        if self.attempts > self.settings.max_retries:
            self._dead_letter(batch[done:], shard_id, stream_arn, error)
            return
        self.owner.stopping.wait(min(2.0, 0.05 * 2**self.attempts))

    def _dead_letter(
        self, records: list[dict[str, Any]], shard_id: str, stream_arn: str, reason: str
    ) -> None:
        for _ in records:
            self.buffer.popleft()
        letter = DeadLetter(
            source=self.source.name,
            shard_id=shard_id,
            stream_arn=stream_arn,
            first_sequence_number=records[0]["dynamodb"]["SequenceNumber"],
            last_sequence_number=records[-1]["dynamodb"]["SequenceNumber"],
            count=len(records),
            reason=reason,
            at=time.time(),
            records=records,
        )
        attempts = self.attempts
        self.attempts = 0
        self.limit = self.settings.batch_size
        self.first_waiting = time.monotonic() if self.buffer else None
        self.owner.add_dead_letter(letter, attempts)


class Pollers:
    """Running pollers; call the object (or :meth:`stop`) to stop them."""

    def __init__(
        self,
        sources: Iterable[StreamSource],
        endpoint: str,
        *,
        tables: TableNames | None = None,
        moto: Any = None,
        poll_interval_s: float = 0.25,
        dead_letter_queues: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.poll_interval_s = poll_interval_s
        self.stopping = threading.Event()
        self.trimmer = _Trimmer(moto) if moto is not None else None
        self.dead_letters: list[DeadLetter] = []
        self._dlq = dead_letter_queues
        self._local = threading.local()
        self._lock = threading.Lock()
        names = tables or TableNames.from_env()
        self.pollers = [_Poller(self, s, getattr(names, s.table)) for s in sources]
        for p in self.pollers:
            if self.trimmer is not None:
                self.trimmer.register(p.table_name, p.source.name)

    def clients(self) -> dict[str, Any]:
        """boto3 clients of the calling thread (clients are built per thread)."""
        cached: dict[str, Any] | None = getattr(self._local, "clients", None)
        if cached is None:
            import boto3

            cached = {
                name: boto3.client(name, endpoint_url=self.endpoint, region_name=REGION)
                for name in ("dynamodb", "dynamodbstreams", "sqs")
            }
            self._local.clients = cached
        return cached

    def start(self) -> Pollers:
        if self._dlq:
            sqs = self.clients()["sqs"]
            for p in self.pollers:
                sqs.create_queue(QueueName=dead_letter_queue_name(p.source.name))
        for p in self.pollers:
            p.thread.start()
        return self

    def add_dead_letter(self, letter: DeadLetter, attempts: int) -> None:
        with self._lock:
            self.dead_letters.append(letter)
        logger.error(
            "stream records dead-lettered",
            extra={
                "source": letter.source,
                "shard_id": letter.shard_id,
                "first_sequence_number": letter.first_sequence_number,
                "last_sequence_number": letter.last_sequence_number,
                "count": letter.count,
                "reason": letter.reason,
                "queue": dead_letter_queue_name(letter.source) if self._dlq else None,
            },
        )
        if self._dlq:
            try:
                sqs = self.clients()["sqs"]
                url = sqs.get_queue_url(QueueName=dead_letter_queue_name(letter.source))
                sqs.send_message(
                    QueueUrl=url["QueueUrl"],
                    MessageBody=json.dumps(letter.message(letter.source, attempts)),
                )
            except Exception as exc:  # the log line above is the record of last resort
                logger.error("dead letter not queued", extra={"error": str(exc)})

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every poller has, since this call, found its stream empty with
        nothing left to deliver (everything written before the call is processed)."""
        since = time.monotonic()
        deadline = since + timeout_s
        while time.monotonic() < deadline:
            if all(p.last_quiet_read > since and not p.buffer for p in self.pollers):
                return True
            time.sleep(0.02)
        return False

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "invocations": {p.source.name: p.invocations for p in self.pollers},
            "delivered": {p.source.name: p.delivered for p in self.pollers},
            "dead_letters": len(self.dead_letters),
            "trimmed": self.trimmer.trimmed if self.trimmer else 0,
        }

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        for p in self.pollers:
            if p.thread.is_alive():
                p.thread.join(timeout_s)

    def __call__(self) -> None:
        self.stop()


def start_pollers(
    sources: Iterable[StreamSource] | None = None,
    *,
    moto: Any = None,
    endpoint: str | None = None,
    tables: TableNames | None = None,
    poll_interval_s: float = 0.25,
    dead_letter_queues: bool = True,
) -> Pollers:
    """Start a poller per source (default: :func:`stream_consumers`) on moto's endpoint.

    ``moto``: the :class:`~tollgate.local.aws.MotoServer` (its endpoint, and trimming of
    what has been read); or ``endpoint`` alone (no trimming). Returns the running
    :class:`Pollers`; calling it stops them.
    """
    if endpoint is None:
        if moto is None:
            raise ValueError("start_pollers needs moto= or endpoint=")
        endpoint = str(moto.endpoint)
    return Pollers(
        stream_consumers() if sources is None else sources,
        endpoint,
        tables=tables,
        moto=moto,
        poll_interval_s=poll_interval_s,
        dead_letter_queues=dead_letter_queues,
    ).start()


SWEEP_EVERY_ENV: Final = "TOLLGATE_SWEEP_EVERY_S"


class Schedule:
    """A scheduled function of the deployed stack, run locally by a timer thread: the same
    handler, with an EventBridge-shaped event, every ``every_s`` seconds (the first run one
    period after the start). A failing run is logged; the next one runs on time."""

    def __init__(self, name: str, handler: str, every_s: float) -> None:
        self.name, self.handler, self.every_s = name, handler, every_s
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"schedule-{name}", daemon=True)

    def start(self) -> Schedule:
        self._thread.start()
        return self

    def run_once(self) -> Any:
        module, _, attr = self.handler.rpartition(".")
        handler: Handler = getattr(importlib.import_module(module), attr)
        event = {
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "detail": {},
        }
        self.runs += 1
        return handler(event, LambdaContext(self.name))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception as exc:  # a run fails; the schedule keeps going (as in AWS)
                logger.error("scheduled run failed", extra={"name": self.name, "error": str(exc)})

    def __call__(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def start_sweep(every_s: float | None = None) -> Schedule:
    """The reservation sweep (``infra/usage.py``: every 5 minutes in AWS; locally every
    ``TOLLGATE_SWEEP_EVERY_S`` seconds, default 300)."""
    import os

    every = every_s if every_s is not None else float(os.environ.get(SWEEP_EVERY_ENV) or 300)
    return Schedule("ReservationSweep", "functions.sweep.handler.handler", every).start()
