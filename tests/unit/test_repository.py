"""The model repository on disk: which models there are, and their complete versions."""

import pytest

from inferq import repository
from inferq.repository import ModelNameError, Repository, check_name


def version(model_dir, number: int | str):
    """A complete version, as far as the repository can tell: its directory with a saved_model.pb."""
    path = model_dir / str(number)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    return path


def test_each_model_with_a_complete_version_is_found_by_name(tmp_path):
    version(tmp_path / "mnist", 1)
    version(tmp_path / "mnist", 2)
    version(tmp_path / "resnet-50", 7)
    version(tmp_path / "text_v2", 1)
    assert Repository(tmp_path).models() == {
        "mnist": tmp_path / "mnist", "resnet-50": tmp_path / "resnet-50", "text_v2": tmp_path / "text_v2"}


def test_what_is_not_a_model_with_a_complete_version_is_ignored(tmp_path):
    version(tmp_path / "mnist", 1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "unfinished" / "1").mkdir(parents=True)  # no saved_model.pb: still being written
    version(tmp_path / "only-temp", ".tmp-1234")  # a trainer's staging directory
    version(tmp_path / "named", "latest")
    version(tmp_path / "negative", "-1")
    version(tmp_path / "non-ascii-digit", "\u00b2")  # "²".isdigit(), but no int
    (tmp_path / "README.md").write_text("not a model")
    (tmp_path / "file-model").mkdir()
    (tmp_path / "file-model" / "1").write_text("a file, not a directory")
    assert Repository(tmp_path).models() == {"mnist": tmp_path / "mnist"}


@pytest.mark.parametrize("name", [".tmp-mnist", "bulk", "interactive", "with space", "dotted.name", "x" * 65,
                                  "caf\u00e9"])
def test_directories_whose_name_no_model_can_have_are_ignored(tmp_path, name):
    version(tmp_path / "mnist", 1)
    version(tmp_path / name, 1)
    assert Repository(tmp_path).models() == {"mnist": tmp_path / "mnist"}


def test_versions_are_the_complete_ones_in_numeric_order(tmp_path):
    model = tmp_path / "m"
    for number in (10, 9, 2):
        version(model, number)
    (model / "11").mkdir()  # incomplete
    version(model, ".tmp-12")
    (model / "config.json").write_text("{}")
    assert repository.versions(model) == [2, 9, 10]
    assert repository.newest_version(model) == 10
    assert repository.version_dir(model, 9) == model / "9"
    assert repository.versions(tmp_path / "absent") == [] and repository.newest_version(tmp_path / "absent") is None


def test_a_root_whose_children_are_versions_is_one_model_served_by_its_single_model_name(tmp_path):
    version(tmp_path, 1)
    version(tmp_path, 3)
    (tmp_path / "config.json").write_text("{}")
    assert repository.is_single_model(tmp_path)
    assert Repository(tmp_path).models() == {"mnist": tmp_path}
    assert Repository(tmp_path, single_model_name="digits").models() == {"digits": tmp_path}
    assert Repository(tmp_path, single_model_name="digits").model_dir("digits") == tmp_path


def test_a_repository_is_not_one_model(tmp_path):
    version(tmp_path / "mnist", 1)
    assert not repository.is_single_model(tmp_path)
    assert Repository(tmp_path).model_dir("mnist") == tmp_path / "mnist"
    assert Repository(tmp_path).model_dir("resnet") == tmp_path / "resnet"  # not there yet


def test_a_root_that_is_not_there_or_empty_has_no_models(tmp_path):
    assert Repository(tmp_path / "absent").models() == {}
    assert Repository(tmp_path).models() == {}


@pytest.mark.parametrize("name", ["mnist", "resnet-50", "text_v2", "A1", "x" * 64])
def test_names_of_letters_digits_underscores_and_dashes_are_model_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "bulk", "interactive", "a.b", "a/b", "../etc", "a b", "x" * 65, "caf\u00e9",
                                  "a\n"])
def test_other_names_are_refused_saying_what_a_name_may_hold(tmp_path, name):
    with pytest.raises(ModelNameError, match="is not a model name: letters, digits, '_' and '-', up to 64"):
        check_name(name)
    with pytest.raises(ModelNameError):
        Repository(tmp_path).model_dir(name)
