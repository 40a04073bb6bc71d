"""inferq.lua: a script's KEYS and ARGV named once, for the Lua prologue and the Python call alike."""

from __future__ import annotations

import re

import fakeredis
import pytest

from inferq import broker, callbacks, catalog, jobs
from inferq.lua import Layout

ADMIT_LIKE = Layout("admit", keys=("counter", "hash"), key_list="job_keys", last_keys=("bucket", "marks"),
                    args=("max_depth", "now"), arg_list="fields", last_args=("waiting",), numbers={"max_depth"})


def test_the_prologue_names_fixed_positions_the_lists_offset_and_count_and_the_last_ones_from_the_end():
    assert ADMIT_LIKE.prologue() == (
        "-- admit: KEYS and ARGV by name, as its layout sends them (inferq.lua)\n"
        "local counter = KEYS[1]\n"
        "local hash = KEYS[2]\n"
        "local job_keys_offset, job_keys_count = 2, #KEYS - 4\n"
        "local bucket = KEYS[#KEYS - 1]\n"
        "local marks = KEYS[#KEYS]\n"
        "local max_depth = tonumber(ARGV[1])\n"
        "local now = ARGV[2]\n"
        "local fields_offset, fields_count = 2, #ARGV - 3\n"
        "local waiting = ARGV[#ARGV]\n")


def test_a_list_alone_starts_at_zero_and_is_all_of_its_array():
    assert Layout("start", key_list="jobs", args=("now",)).prologue() == (
        "-- start: KEYS and ARGV by name, as its layout sends them (inferq.lua)\n"
        "local jobs_offset, jobs_count = 0, #KEYS\n"
        "local now = ARGV[1]\n")


def test_the_script_is_the_prologue_then_the_body():
    layout = Layout("get", keys=("key",))
    assert layout.script("return redis.call('GET', key)\n") == layout.prologue() + "return redis.call('GET', key)\n"


def test_build_puts_keyword_values_in_the_layouts_order_whatever_order_they_come_in():
    keys, args = ADMIT_LIKE.build(waiting="{}", marks="m", fields=["id", 2], now=1.5, bucket="b", job_keys=["j1", "j2"],
                                  hash="h", max_depth=10, counter="c")
    assert keys == ["c", "h", "j1", "j2", "b", "m"]
    assert args == [10, 1.5, "id", 2, "{}"]


def test_an_empty_list_sends_nothing_in_its_place():
    keys, args = ADMIT_LIKE.build(counter="c", hash="h", job_keys=[], bucket="b", marks="m", max_depth=1, now=2,
                                  fields=(), waiting="{}")
    assert keys == ["c", "h", "b", "m"]
    assert args == [1, 2, "{}"]


def test_command_is_the_key_count_then_the_keys_then_the_args():
    layout = Layout("push", keys=("queue", "bell"), args=("message",))
    assert layout.command(message="m", bell="b", queue="q") == [2, "q", "b", "m"]


def test_a_missing_name_is_refused_naming_it():
    with pytest.raises(TypeError, match=r"admit: missing hash, fields$"):
        ADMIT_LIKE.build(counter="c", job_keys=[], bucket="b", marks="m", max_depth=1, now=2, waiting="{}")


def test_an_unknown_name_is_refused_naming_it():
    with pytest.raises(TypeError, match=r"admit: unknown depth$"):
        ADMIT_LIKE.build(counter="c", hash="h", job_keys=[], bucket="b", marks="m", max_depth=1, now=2, fields=[],
                         waiting="{}", depth=3)


def test_missing_and_unknown_names_are_refused_together():
    with pytest.raises(TypeError, match=r"missing max_depth; unknown max$"):
        ADMIT_LIKE.build(counter="c", hash="h", job_keys=[], bucket="b", marks="m", max=1, now=2, fields=[],
                         waiting="{}")


@pytest.mark.parametrize("value", ["j1", b"j1", 3, None])
def test_a_list_must_be_given_a_sequence_not_a_string_sent_a_character_a_key(value):
    with pytest.raises(TypeError, match="job_keys must be a sequence"):
        ADMIT_LIKE.build(counter="c", hash="h", job_keys=value, bucket="b", marks="m", max_depth=1, now=2, fields=[],
                         waiting="{}")


@pytest.mark.parametrize("layout, message", [
    (lambda: Layout("x", keys=("a",), args=("a",)), "named twice: a"),
    (lambda: Layout("x", key_list="jobs", args=("jobs_offset",)), "named twice: jobs_offset"),
    (lambda: Layout("x", keys=("end",)), "not a name a Lua local can take: end"),
    (lambda: Layout("x", args=("redis",)), "not a name a Lua local can take: redis"),
    (lambda: Layout("x", args=("job-id",)), "not a name a Lua local can take: job-id"),
    (lambda: Layout("x", last_args=("tail",)), "ARGV names last"),
    (lambda: Layout("x", keys=("key",), numbers={"key"}), "numbers names no fixed argument: key"),
])
def test_a_layout_that_cannot_be_read_by_name_is_refused_where_it_is_written(layout, message):
    with pytest.raises(ValueError, match=message):
        layout()


def test_a_script_reads_its_positions_by_name_on_redis_strings_kept_and_numbers_converted():
    client = fakeredis.FakeRedis()
    body = """
return {counter, hash, job_keys_offset, job_keys_count, KEYS[job_keys_offset + job_keys_count], bucket, marks,
        type(max_depth), type(now), now, fields_offset, fields_count, ARGV[fields_offset + 1], waiting}
"""
    script = client.register_script(ADMIT_LIKE.script(body))
    answer = ADMIT_LIKE.call(script, counter="c", hash="h", job_keys=["j1", "j2", "j3"], bucket="b", marks="m",
                             max_depth=7, now="1.50", fields=["f1", "f2"], waiting="w")
    assert answer == [b"c", b"h", 2, 3, b"j3", b"b", b"m", b"number", b"string", b"1.50", 2, 2, b"f1", b"w"]


@pytest.mark.parametrize("script", [
    jobs._ADMIT, jobs._START, jobs._PROGRESS, jobs._FINISH, jobs._TAKE_BACK, jobs._WITHDRAW, jobs._FORGET_ENDED,
    jobs._RECOUNT, jobs._RECOUNT_TENANTS, jobs._CANCEL, jobs._CANCELLED, jobs._RESERVE_KEY, jobs._SETTLE_KEY,
    jobs._PUSH_TENANT, broker._CLAIM, broker._RELEASE, broker._RECONCILE, callbacks._CLAIM, callbacks._RECORD,
    catalog._FORGET,
], ids=lambda script: script.split(":", 1)[0].removeprefix("-- "))
def test_no_script_reads_a_fixed_position_by_its_number(script):
    # Past the prologue, KEYS and ARGV are indexed only from a name (a list's offset, a count).
    prologue, _, body = script.partition("\n\n")
    assert "(inferq.lua)" in prologue
    assert not re.findall(r"(?:KEYS|ARGV)\[\s*\d|#(?:KEYS|ARGV)|ipairs\((?:KEYS|ARGV)\)", body)
