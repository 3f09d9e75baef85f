"""What only the SQS backend has: queues made with a redrive policy, or found as they are."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from backend.errors import QueueError
from backend.queues import make_queue
from tests.integration.queues.conftest import queue_settings
from tests.integration.queues.test_contract import (
    VISIBILITY,
    dead_letter_ids,
    message,
    receive_for,
    receive_until,
)


@pytest.fixture
def sqs(sqs_url: str) -> Iterator[Any]:
    client = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    yield client
    client.close()


def attributes(sqs: Any, name: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


async def test_created_queues_redrive_in_the_server(sqs_url: str, sqs: Any) -> None:
    queue = make_queue(queue_settings("sqs", sqs_url))
    try:
        await queue.ensure()
        main = attributes(sqs, queue.name)
        dlq = attributes(sqs, queue.dead_letter_name)
        assert main["VisibilityTimeout"] == str(VISIBILITY)
        assert json.loads(main["RedrivePolicy"]) == {
            "deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 2}

        sent = message()
        await queue.send(sent)
        await receive_until(queue)
        await receive_until(queue)
        assert sent.job_id in await dead_letter_ids(queue, {sent.job_id})
        # SQS itself moved it (the redrive policy), so it carries no reason of ours.
        [entry] = await queue.dead_letter_entries()
        assert entry.reason == ""
    finally:
        await queue.close()


async def test_changed_settings_are_applied_to_existing_queues(sqs_url: str, sqs: Any) -> None:
    first = make_queue(queue_settings("sqs", sqs_url))
    name = first.name
    second = make_queue(queue_settings("sqs", sqs_url, standard_queue_name=name,
                                       queue_max_receives=7, queue_visibility_timeout=9))
    try:
        await first.ensure()
        await second.ensure()
        main = attributes(sqs, name)
        assert main["VisibilityTimeout"] == "9"
        assert json.loads(main["RedrivePolicy"])["maxReceiveCount"] == 7
    finally:
        await first.close()
        await second.close()


async def test_missing_queue_without_create_is_a_clear_error(sqs_url: str) -> None:
    queue = make_queue(queue_settings("sqs", sqs_url, queue_create=False))
    try:
        with pytest.raises(QueueError, match=f"'{queue.dead_letter_name}' does not exist.*"
                                             "QUEUE_CREATE=true"):
            await queue.ensure()
        with pytest.raises(QueueError, match="does not exist"):
            await queue.send(message())
    finally:
        await queue.close()


async def test_queue_made_by_hand_without_redrive_still_dead_letters(
        sqs_url: str, sqs: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    sqs.create_queue(QueueName=name)
    sqs.create_queue(QueueName=f"{name}-dlq")
    queue = make_queue(queue_settings("sqs", sqs_url, standard_queue_name=name,
                                      queue_create=False))
    try:
        sent = message()
        await queue.send(sent)
        assert [d.receive_count for d in await receive_until(queue)] == [1]
        assert [d.receive_count for d in await receive_until(queue)] == [2]
        assert await receive_for(queue, VISIBILITY + 2) == []  # the third went to the DLQ
        [entry] = await queue.dead_letter_entries()
        assert entry.message is not None and entry.message.job_id == sent.job_id
        assert "received 3 times without an ack" in entry.reason
    finally:
        await queue.close()
