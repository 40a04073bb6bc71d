"""Publishing versions: numbers increase, a lost race takes the next one, a failed export is never seen."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from inferq import repository
from trainer import publish


def publish_one(model_dir: Path) -> tuple[Path, list[int]]:
    stamped: list[int] = []
    with publish.staging_dir(model_dir) as staged:
        (staged / repository.SAVED_MODEL_FILE).write_bytes(b"graph")
        target = publish.publish(staged, model_dir, stamped.append)
    return target, stamped


def test_versions_increase_from_one(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    first, stamped_first = publish_one(model_dir)
    second, stamped_second = publish_one(model_dir)
    assert (first, second) == (model_dir / "1", model_dir / "2")
    assert (stamped_first, stamped_second) == ([1], [2])
    assert repository.versions(model_dir) == [1, 2]
    assert sorted(entry.name for entry in model_dir.iterdir()) == ["1", "2"]


def test_a_published_version_is_readable_by_other_users(tmp_path: Path) -> None:
    target, _ = publish_one(tmp_path)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_an_incomplete_numbered_directory_still_takes_its_number(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "notes").mkdir()
    target, _ = publish_one(tmp_path)
    assert target == tmp_path / "8"


def test_losing_the_rename_race_takes_the_next_number(tmp_path: Path) -> None:
    publish_one(tmp_path)
    stamped: list[int] = []

    def rival_publishes_first(version: int) -> None:
        stamped.append(version)
        if version == 2:  # another trainer renames its version 2 into place between our listing and rename
            rival = tmp_path / "2"
            rival.mkdir()
            (rival / repository.SAVED_MODEL_FILE).write_bytes(b"rival")

    with publish.staging_dir(tmp_path) as staged:
        (staged / repository.SAVED_MODEL_FILE).write_bytes(b"ours")
        target = publish.publish(staged, tmp_path, rival_publishes_first)
    assert stamped == [2, 3]
    assert target == tmp_path / "3"
    assert (tmp_path / "2" / repository.SAVED_MODEL_FILE).read_bytes() == b"rival"
    assert (target / repository.SAVED_MODEL_FILE).read_bytes() == b"ours"


def test_a_failure_while_staging_leaves_nothing_behind(tmp_path: Path) -> None:
    publish_one(tmp_path)
    seen_while_writing: list[int] = []
    with pytest.raises(RuntimeError, match="disk full"), publish.staging_dir(tmp_path) as staged:
        (staged / repository.SAVED_MODEL_FILE).write_bytes(b"half")
        assert staged.name.startswith(publish.TMP_PREFIX) and staged.parent == tmp_path
        seen_while_writing = repository.versions(tmp_path)
        raise RuntimeError("disk full")
    assert seen_while_writing == [1]
    assert repository.versions(tmp_path) == [1]
    assert [entry.name for entry in tmp_path.iterdir()] == ["1"]
