"""The models a worker process serves, kept in step with the repository, loaded by a fake ``load_version``."""

from __future__ import annotations

import shutil
import threading

import pytest

from inferq.repository import models_to_serve
from inferq.settings import Settings
from tests.worker.fake_loading import add_version
from worker.loaded_models import LoadedModels


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "models"
    add_version(root / "mnist", 1)
    add_version(root / "mnist", 2)
    add_version(root / "resnet", 5)
    return root


def served_from(repo, **settings) -> LoadedModels:
    return LoadedModels(Settings(model_repository=str(repo), tf_intra_op_threads=2, **settings))


def test_every_model_of_the_repository_is_served_at_its_newest_version(loader, repo):
    served = served_from(repo)
    served.refresh()
    assert sorted(served.holders) == ["mnist", "resnet"]
    assert served.model("mnist", None).version == 2 and served.model("resnet", None).version == 5
    assert served.model("mnist", 2).threads == {"intra_op_threads": 2, "inter_op_threads": 1}
    assert sorted((spec.name, spec.version) for spec in served.specs()) == [("mnist", 2), ("resnet", 5)]
    assert served.any_loaded
    assert sorted(loader.loads) == [("mnist", 2), ("resnet", 5)]


def test_worker_models_limits_what_is_served(loader, repo):
    assert sorted(models_to_serve(Settings(model_repository=str(repo), worker_models="resnet,absent"))) == ["resnet"]
    served = served_from(repo, worker_models="resnet")
    served.refresh()
    assert sorted(served.holders) == ["resnet"]
    assert served.model("mnist", None) is None
    assert loader.loads == [("resnet", 5)]


def test_model_dir_is_served_as_one_model_named_model_name(loader, tmp_path):
    add_version(tmp_path / "digits", 3)
    served = LoadedModels(Settings(model_dir=str(tmp_path / "digits"), model_name="digits"))
    served.refresh()
    assert served.model("digits", None).version == 3
    assert served.model("digits", None).path == str(tmp_path / "digits" / "3")


def test_a_repository_laid_out_as_one_model_is_served_as_model_name(loader, tmp_path):
    add_version(tmp_path / "models", 1)
    served = served_from(tmp_path / "models")
    served.refresh()
    assert sorted(served.holders) == ["mnist"]


def test_a_model_added_to_the_repository_is_served_at_the_next_refresh(loader, repo):
    served = served_from(repo)
    served.refresh()
    add_version(repo / "bert", 1)
    served.refresh()
    assert served.model("bert", None).version == 1
    assert loader.loads.count(("mnist", 2)) == 1  # the others are not loaded again


def test_work_for_a_model_not_loaded_yet_loads_it_on_the_spot(loader, repo):
    served = served_from(repo)
    served.refresh()
    add_version(repo / "bert", 4)
    assert served.model("bert", None).version == 4
    add_version(repo / "mnist", 3)
    assert served.model("mnist", 3).version == 3  # a version asked for and not served yet: a refresh too


def test_a_model_or_version_not_in_the_repository_is_none(loader, repo):
    served = served_from(repo)
    served.refresh()
    assert served.model("absent", None) is None
    assert served.model("mnist", 9) is None
    assert served.model("mnist", 1) is None  # present, but not what the policy serves


def test_a_removed_model_is_dropped_and_reported_gone_once(loader, repo):
    served = served_from(repo)
    served.refresh()
    assert served.take_gone() == []
    shutil.rmtree(repo / "resnet")
    served.refresh()
    assert sorted(served.holders) == ["mnist"]
    assert served.model("resnet", None) is None
    assert served.take_gone() == ["resnet"]
    assert served.take_gone() == []
    assert [spec.name for spec in served.specs()] == ["mnist"]


def test_a_model_removed_and_back_before_it_was_reported_is_not_gone(loader, repo):
    served = served_from(repo)
    served.refresh()
    shutil.rmtree(repo / "resnet")
    served.refresh()
    add_version(repo / "resnet", 6)
    served.refresh()
    assert served.take_gone() == []
    assert served.model("resnet", None).version == 6


def test_a_model_whose_versions_are_all_refused_is_held_but_serves_nothing(loader, repo):
    loader.refuse.add(("resnet", 5))
    served = served_from(repo)
    served.refresh()
    assert served.model("resnet", None) is None
    assert served.model("mnist", None).version == 2
    assert [spec.name for spec in served.specs()] == ["mnist"]
    assert loader.loads.count(("resnet", 5)) == 1  # refused once, not retried by the lookups


def test_nothing_loaded_while_the_repository_is_empty(loader, tmp_path):
    served = served_from(tmp_path / "empty")
    served.refresh()
    assert not served.any_loaded and served.specs() == []


def test_a_lookup_during_a_refresh_waits_for_it_instead_of_loading_the_same_version_again(loader, repo):
    """The heartbeat thread refreshes while a batch may look up a model it does not hold yet."""
    served = served_from(repo)
    served.refresh()
    add_version(repo / "bert", 1)
    release = loader.hold = threading.Event()
    loader.loading.clear()
    heartbeat = threading.Thread(target=served.refresh)
    heartbeat.start()
    assert loader.loading.wait(5)  # the heartbeat's refresh is inside bert's load
    found: list = []
    batch = threading.Thread(target=lambda: found.append(served.model("bert", None)))
    batch.start()
    batch.join(0.3)
    release.set()
    heartbeat.join(5)
    batch.join(5)
    assert found and found[0].version == 1
    assert loader.loads.count(("bert", 1)) == 1
