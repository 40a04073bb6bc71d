"""inferq.broker on its own: the start-up version check and the message layout it writes."""

from __future__ import annotations

import json

import kombu
import pytest

from inferq import broker


def test_an_untested_kombu_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(kombu, "__version__", "9.9.9")
    with pytest.raises(broker.UntestedKombu) as refused:
        broker.check_kombu()
    message = str(refused.value)
    assert "kombu 9.9.9" in message and broker.TESTED_KOMBU[0] in message and "_brpop_start" in message


def test_the_tested_kombu_passes():
    broker.check_kombu()


def test_an_envelope_is_the_json_body_with_its_routing_on_the_queue():
    envelope = broker.envelope("q1", [["x"], {}, {}], headers={"task": "t", "n": 2}, properties={"reply_to": ""})
    assert envelope.queue_key == "q1"
    message = json.loads(envelope.raw)
    assert json.loads(message["body"]) == [["x"], {}, {}]
    assert (message["content-type"], message["content-encoding"]) == ("application/json", "utf-8")
    assert message["headers"] == {"task": "t", "n": 2}
    properties = message["properties"]
    assert properties["delivery_info"] == {"exchange": "", "routing_key": "q1"}
    assert (properties["priority"], properties["body_encoding"], properties["reply_to"]) == (0, None, "")


def test_every_envelope_has_a_delivery_tag_of_its_own():
    tags = {json.loads(broker.envelope("q", [], headers={}, properties={}).raw)["properties"]["delivery_tag"]
            for _ in range(3)}
    assert len(tags) == 3


def test_an_envelopes_queued_at_is_the_first_thing_in_it_where_the_claim_reads_it():
    envelope = broker.envelope("q", [], headers={"task": "t"}, properties={}, queued_at=1765084800.25)
    assert envelope.raw.startswith(f'{{"headers":{{"{broker.QUEUED_AT_HEADER}":1765084800.25,')
    assert json.loads(envelope.raw)["headers"] == {broker.QUEUED_AT_HEADER: 1765084800.25, "task": "t"}
