"""docker-compose.tenants.yml, read without Docker: both API front ends get the tenants file from a
mounted directory, and the default stack has no tenants file at all."""

from __future__ import annotations

import posixpath

import yaml

from inferq.settings import Settings
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
TENANTS = yaml.safe_load((REPO / "docker-compose.tenants.yml").read_text())
FRONT_ENDS = ("api", "grpc")


def test_both_front_ends_read_the_tenants_file_from_a_read_only_directory_mount():
    assert set(TENANTS["services"]) == set(FRONT_ENDS)
    for name in FRONT_ENDS:
        service = TENANTS["services"][name]
        path = service["environment"]["TENANTS_FILE"]
        assert Settings.from_env({"TENANTS_FILE": path}).tenants_file == path
        (volume,) = service["volumes"]
        source, target, mode = volume.rsplit(":", 2)
        # The directory, so that a replaced file (a new inode) is seen; read-only.
        assert target == posixpath.dirname(path) and mode == "ro"
        assert source == "${TENANTS_DIR:-./tenants}"
        assert name in BASE["services"]


def test_the_default_stack_runs_as_one_tenant():
    for name, service in BASE["services"].items():
        environment = service.get("environment") or {}
        assert "TENANTS_FILE" not in environment, name
        assert not any("tenants" in str(volume) for volume in service.get("volumes", [])), name
