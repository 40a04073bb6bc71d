"""REDIS_APPENDFSYNC reaches the embedded Redis that ``make up`` starts: with "always" a 202 is on
disk before it is sent."""

from __future__ import annotations

import pytest
import redis

from inferq.settings import Settings, SettingsError
from launcher import Launcher


def appendfsync_of(launcher: Launcher) -> str:
    try:
        client = redis.Redis.from_url(launcher._redis_url())
        return client.config_get("appendfsync")["appendfsync"]
    finally:
        launcher._stop_all()


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_make_ups_redis_writes_its_append_only_file_as_redis_appendfsync_says(tmp_path, policy):
    launcher = Launcher(Settings.from_env({"RUN_DIR": str(tmp_path), "REDIS_APPENDFSYNC": policy}), {})
    assert appendfsync_of(launcher) == policy


def test_by_default_once_a_second(tmp_path):
    assert appendfsync_of(Launcher(Settings(run_dir=str(tmp_path)), {})) == "everysec"


def test_no_policy_that_leaves_writes_to_the_kernel(tmp_path):
    with pytest.raises(SettingsError, match="REDIS_APPENDFSYNC must be one of everysec, always, got 'no'"):
        Settings(redis_appendfsync="no")
