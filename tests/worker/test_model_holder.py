"""One model's served versions, kept in step with its directory, its version policy and its config,
loaded by a fake ``load_version``."""

from __future__ import annotations

import json
import logging

import pytest

from inferq.model_config import ModelConfig, VersionPolicy
from tests.worker.fake_loading import add_version, remove_version
from worker import model_holder
from worker.model_holder import ModelHolder


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "mnist"
    path.mkdir()
    return path


def configure(model_dir, **config) -> None:
    (model_dir / "config.json").write_text(json.dumps(config))


def test_the_newest_version_alone_is_served_by_default(loader, model_dir):
    for version in (1, 2, 10):
        add_version(model_dir, version)
    holder = ModelHolder("mnist", model_dir, intra_op_threads=2, inter_op_threads=3)
    assert holder.refresh() is True
    assert loader.loads == [("mnist", 10)]
    assert sorted(holder.loaded) == [10]
    assert holder.model().version == 10 and holder.model(10).version == 10
    assert holder.model(2) is None
    assert holder.model().threads == {"intra_op_threads": 2, "inter_op_threads": 3}
    assert holder.model().path == str(model_dir / "10")


def test_a_refresh_with_nothing_new_loads_nothing(loader, model_dir):
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert holder.refresh() is False
    assert loader.loads == [("mnist", 1)]


def test_a_new_version_is_swapped_in_and_removing_it_rolls_back(loader, model_dir):
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    first = holder.model()
    add_version(model_dir, 2)
    assert holder.refresh() is True
    assert sorted(holder.loaded) == [2]
    remove_version(model_dir, 2)
    holder.refresh()
    assert sorted(holder.loaded) == [1] and holder.model() is not first  # loaded again
    assert loader.loads == [("mnist", 1), ("mnist", 2), ("mnist", 1)]


def test_latest_n_serves_the_n_newest_and_the_newest_answers_unpinned_work(loader, model_dir):
    configure(model_dir, version_policy={"latest": 2})
    for version in (1, 2, 3):
        add_version(model_dir, version)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert sorted(holder.loaded) == [2, 3]
    assert holder.model().version == 3 and holder.model(2).version == 2 and holder.model(1) is None
    assert [spec.version for spec in holder.specs()] == [2, 3]


def test_specific_versions_are_served_where_present(loader, model_dir):
    configure(model_dir, version_policy={"specific": [1, 3, 4]})
    for version in (1, 2, 3):
        add_version(model_dir, version)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert sorted(holder.loaded) == [1, 3]
    add_version(model_dir, 4)
    holder.refresh()
    assert sorted(holder.loaded) == [1, 3, 4]
    assert holder.model().version == 4


def test_a_change_of_policy_takes_effect_at_the_next_refresh(loader, model_dir):
    for version in (1, 2):
        add_version(model_dir, version)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert sorted(holder.loaded) == [2]
    configure(model_dir, version_policy={"specific": [1]})
    holder.refresh()
    assert sorted(holder.loaded) == [1]
    assert holder.config.version_policy == VersionPolicy(latest=None, specific=(1,))


def test_a_refused_version_keeps_the_others_serving_and_is_not_tried_again_within_its_backoff(
        loader, model_dir, caplog):
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    loader.refuse.add(("mnist", 2))
    add_version(model_dir, 2)
    with caplog.at_level(logging.ERROR, logger="worker.model_holder"):
        assert holder.refresh() is False
    assert sorted(holder.loaded) == [1] and holder.model().version == 1
    assert "model mnist: refused version 2, still serving [1]" in caplog.text
    holder.refresh()
    assert loader.loads == [("mnist", 1), ("mnist", 2)]  # not tried again yet
    add_version(model_dir, 3)
    holder.refresh()
    assert sorted(holder.loaded) == [3]


def test_a_refused_pinned_version_keeps_the_others_of_the_policy(loader, model_dir):
    configure(model_dir, version_policy={"specific": [1, 2]})
    loader.refuse.add(("mnist", 2))
    for version in (1, 2):
        add_version(model_dir, version)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert sorted(holder.loaded) == [1] and holder.model(2) is None


def test_a_model_whose_only_version_is_refused_serves_nothing(loader, model_dir):
    loader.refuse.add(("mnist", 1))
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    assert holder.refresh() is False
    assert holder.loaded == {} and holder.model() is None and holder.specs() == []


def test_a_model_whose_versions_are_all_removed_serves_nothing(loader, model_dir):
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    remove_version(model_dir, 1)
    holder.refresh()
    assert holder.loaded == {} and holder.model() is None


def test_the_config_is_read_at_each_refresh_and_loads_and_specs_carry_it(loader, model_dir):
    configure(model_dir, max_batch_size=8, labels=["a", "b"])
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert holder.max_batch_size == 8
    assert holder.model().spec.config.labels == ("a", "b")  # what load_version was given
    configure(model_dir, max_batch_size=16, labels=["x", "y"])
    assert holder.refresh() is False  # no reload for a change of config
    assert holder.max_batch_size == 16
    [spec] = holder.specs()
    assert spec.config == ModelConfig(max_batch_size=16, labels=("x", "y")) and spec.version == 1
    # The version served carries it too: its batches' calls are bounded by the new max_batch_size.
    assert holder.model().spec.config.max_batch_size == 16


def test_a_config_that_does_not_load_is_logged_once_and_the_last_good_one_kept(loader, model_dir, caplog):
    configure(model_dir, max_batch_size=8)
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    configure(model_dir, max_batch_size=0)
    with caplog.at_level(logging.ERROR, logger="worker.model_holder"):
        holder.refresh()
        holder.refresh()
    assert holder.max_batch_size == 8 and holder.model().version == 1
    [record] = [record for record in caplog.records if "config.json" in record.getMessage()]
    assert "'max_batch_size' must be a positive integer" in record.getMessage()
    assert "keeping the config it had" in record.getMessage()
    configure(model_dir, max_batch_size=4)
    holder.refresh()
    assert holder.max_batch_size == 4


def test_a_model_whose_first_config_does_not_load_is_served_with_the_defaults(loader, model_dir):
    (model_dir / "config.json").write_text("{not json")
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert holder.config == ModelConfig() and holder.model().version == 1


def test_a_version_that_fails_to_load_for_any_reason_is_refused_like_one_the_loader_refuses(
        loader, model_dir, monkeypatch, caplog):
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    add_version(model_dir, 2)
    calls = []

    def corrupt(model_dir, name, version, **options):
        calls.append(version)
        raise RuntimeError("Error parsing message with type 'tensorflow.SavedModel'")

    monkeypatch.setattr(model_holder, "load_version", corrupt)
    with caplog.at_level(logging.ERROR, logger="worker.model_holder"):
        assert holder.refresh() is False
        holder.refresh()
    assert calls == [2]  # not retried at every heartbeat: after a backoff
    assert holder.model().version == 1
    assert "refused version 2, still serving [1]: Error parsing message" in caplog.text


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_version_being_copied_under_another_name_is_not_read_until_renamed_into_place(loader, model_dir):
    add_version(model_dir, 1)
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    partial = add_version(model_dir, 9).rename(model_dir / ".2")  # `cp -r` under a name that is no version
    holder.refresh()
    assert sorted(holder.loaded) == [1] and loader.loads == [("mnist", 1)]
    partial.rename(model_dir / "2")  # then `mv` into place
    holder.refresh()
    assert sorted(holder.loaded) == [2]


def test_a_version_that_fails_to_load_is_tried_again_with_backoff_until_it_loads(loader, model_dir):
    add_version(model_dir, 1)
    clock, failures = Clock(), []
    holder = ModelHolder("mnist", model_dir, retry_first_s=1, retry_max_s=3, clock=clock,
                         on_load_failure=lambda name, version: failures.append((name, version)))
    holder.refresh()
    loader.refuse.add(("mnist", 2))  # copied in place, still half-written
    add_version(model_dir, 2)
    holder.refresh()
    holder.refresh()  # within its backoff: not tried again
    assert loader.loads == [("mnist", 1), ("mnist", 2)]
    assert holder.model().version == 1
    assert [(failure.version, failure.attempts) for failure in holder.failures.values()] == [(2, 1)]
    assert "not a model this worker can serve" in holder.failures[2].error
    for waited, attempts in ((1, 2), (2, 3), (3, 4), (3, 5)):  # 1, 2, 3, 3 s: doubling up to retry_max_s
        clock.now += waited - 0.01
        holder.refresh()
        assert holder.failures[2].attempts == attempts - 1
        clock.now += 0.01
        holder.refresh()
        assert holder.failures[2].attempts == attempts
    assert failures == [("mnist", 2)] * 5 and holder.model().version == 1
    loader.refuse.clear()  # the copy is done
    clock.now += 3
    assert holder.refresh() is True
    assert sorted(holder.loaded) == [2] and holder.failures == {}


def test_a_failure_is_forgotten_once_the_policy_would_not_serve_its_version(loader, model_dir):
    add_version(model_dir, 1)
    loader.refuse.add(("mnist", 1))
    holder = ModelHolder("mnist", model_dir)
    holder.refresh()
    assert list(holder.failures) == [1]
    add_version(model_dir, 2)
    holder.refresh()
    assert sorted(holder.loaded) == [2] and holder.failures == {}
