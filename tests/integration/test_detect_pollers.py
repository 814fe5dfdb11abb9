"""The detector fed by the local stream pollers (tollgate/local/pollers.py) from moto's real
usage stream, with the mapping settings CDK uses (DETECTOR_STREAM): the way `make local`
runs it once the detector is in ``stream_consumers()``."""

from __future__ import annotations

import time
from typing import Any

from functions.common import ddb
from functions.common.config import TableNames
from functions.detector import handler as detector
from functions.detector.stream import DETECTOR_HANDLER, DETECTOR_STREAM
from functions.keys import KeyService
from tests.detect_events import usage_item
from tollgate.local import aws
from tollgate.local.pollers import StreamSource, start_pollers


def test_usage_events_written_to_the_table_suspend_the_key_through_the_pollers(
    dynamodb: Any, moto_server: aws.MotoServer
) -> None:
    ddb.reset_client()
    detector.use_detector(None)
    svc = KeyService()
    svc.create_plan("starter", actor="test")
    svc.create_tenant("acme", plan="starter", actor="test")
    key = svc.create_key("acme", actor="test")
    source = StreamSource("spike-detector", "usage", DETECTOR_HANDLER, DETECTOR_STREAM)
    pollers = start_pollers([source], moto=moto_server, poll_interval_s=0.05)
    try:
        start = int(time.time() * 1000) // 60_000 * 60_000
        for i in range(25):  # 75,000 tokens in one minute: a surge
            item = usage_item(key["key_id"], start + 1000 + i * 100, tokens=3000)
            dynamodb.put_item(
                TableName=TableNames().usage, Item={k: ddb.to_ddb(v) for k, v in item.items()}
            )
        assert pollers.wait_idle(timeout_s=20)
        assert not pollers.dead_letters
    finally:
        pollers()
        detector.use_detector(None)
    assert svc.get_key(key["key_id"])["status"] == "suspended"
    (audit,) = [r for r in svc.audit(key_id=key["key_id"]) if r["action"] == "key.suspended"]
    assert audit["actor"] == "tollgate-detector"
