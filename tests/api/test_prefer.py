"""The ``Prefer`` header (RFC 7240) as inferq reads it: what it applies, and that nothing malformed
is ever refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.queue.prefer import Preferences, applied, hand_back_after_s, parse, preferences


@pytest.mark.parametrize(("headers", "expected"), [
    (["respond-async, wait=10"], Preferences(True, 10)),
    (["respond-async"], Preferences(True, None)),
    (["wait=5"], Preferences(False, 5)),
    (["RESPOND-ASYNC, Wait = 7"], Preferences(True, 7)),  # names are case-insensitive; BWS around "="
    (["respond-async; foo=bar ;baz, wait=3;x"], Preferences(True, 3)),  # parameters are ignored
    (["wait=3, wait=9, respond-async"], Preferences(True, 3)),  # only the first of a name counts
    (["respond-async", "wait=4"], Preferences(True, 4)),  # several headers are one list
    (['wait="8", respond-async'], Preferences(True, 8)),  # a quoted word
    (['return="minimal, please", respond-async'], Preferences(True, None)),  # a comma inside quotes
    (["respond-async, wait="], Preferences(True, None)),  # empty is no value
    (["respond-async, wait=-1"], Preferences(True, None)),
    (["respond-async, wait=1.5"], Preferences(True, None)),  # delta-seconds: digits only
    (["respond-async, wait=\u0661\u0662"], Preferences(True, None)),  # digits, but not ASCII ones
    (["respond-async, wait=soon"], Preferences(True, None)),
    ([",,, respond-async ,, ,"], Preferences(True, None)),  # empty list elements
    (["@@@, respond-async, ="], Preferences(True, None)),  # a malformed element is skipped, not the rest
    (["respond_async, wait=10"], Preferences(False, 10)),  # another preference altogether
    ([], Preferences(False, None)),
    ([""], Preferences(False, None)),
])
def test_preferences_as_rfc_7240_spells_them(headers, expected):
    assert preferences(headers) == expected


def test_unquoting_and_names():
    assert parse(['A=1, b="x\\"y", c']) == {"a": "1", "b": 'x"y', "c": ""}


@pytest.mark.parametrize(("headers", "after"), [
    (["respond-async, wait=10"], 10),
    (["respond-async, wait=999"], 60),  # capped
    (["respond-async"], 0),  # no wait: handed back at once
    (["respond-async, wait=0"], 0),
    (["wait=10"], None),  # no respond-async: the request is answered as if there were no header
    ([], None),
])
def test_how_long_a_request_waits_before_its_job_is_handed_back(headers, after):
    assert hand_back_after_s(headers, 60) == after


def test_the_preference_applied_names_the_wait_honoured():
    assert applied(10) == "respond-async, wait=10"
    assert applied(60.0) == "respond-async, wait=60"
    assert applied(0) == "respond-async"


@given(st.lists(st.text(), max_size=3))
def test_any_header_at_all_is_read_without_error(headers):
    found = preferences(headers)
    assert found.wait_s is None or found.wait_s >= 0
    after = hand_back_after_s(headers, 30)
    assert after is None or 0 <= after <= 30


@given(st.integers(0, 10**6), st.sampled_from(["", " ", "\t"]), st.booleans())
def test_a_well_formed_wait_is_read_wherever_it_stands(seconds, space, first):
    elements = [f"wait{space}={space}{seconds}", "respond-async"]
    header = f",{space}".join(elements if first else elements[::-1])
    assert preferences([header]) == Preferences(True, seconds)


def test_a_header_of_many_parameters_and_spaces_is_read_in_one_pass():
    # A pattern whose parts could each take the same spaces backtracked exponentially on this one.
    assert parse(["respond-async" + ";  " * 5000 + "  @"]) == {"respond-async": ""}
    assert parse(["wait=1" + "; x=1  " * 5000 + '"']) == {"wait": "1"}
