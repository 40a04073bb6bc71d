"""Tenants from their file: keys kept as digests, every digest compared, reloaded when it changes."""

from __future__ import annotations

import json
import os

import pytest

from inferq.tenants import DEFAULT, DEFAULT_TENANT, Tenant, TenantDirectory, TenantsFileError, key_digest, main


def digest(key: str) -> str:
    return "sha256:" + key_digest(key).hex()


def write(path, *tenants: dict) -> None:
    path.write_text(json.dumps({"tenants": list(tenants)}))


def test_a_key_finds_its_tenant_with_its_weight_and_limits(tmp_path):
    path = tmp_path / "tenants.json"
    write(path, {"name": "vision", "weight": 2, "max_queued_items": 500, "max_items_per_s": 40.5,
                 "keys": [digest("k-vision"), digest("k-vision-2")]},
          {"name": "ads", "keys": [digest("k-ads")]})
    directory = TenantDirectory(str(path))
    assert directory.tenant_for_key("k-vision") == Tenant("vision", 2.0, 500, 40.5)
    assert directory.tenant_for_key("k-vision-2").name == "vision"
    assert directory.tenant_for_authorization("Bearer k-ads") == Tenant("ads")
    for wrong in ("k-vision ", "", None, "K-ADS"):
        assert directory.tenant_for_key(wrong) is None
    assert directory.tenant_for_authorization("k-ads") is None  # not a bearer token
    assert not directory.open
    assert [tenant.name for tenant in directory.tenants()] == ["ads", DEFAULT_TENANT, "vision"]


def test_the_file_holds_no_key_in_the_clear(tmp_path):
    path = tmp_path / "tenants.json"
    write(path, {"name": "ads", "keys": ["k-ads"]})
    with pytest.raises(TenantsFileError, match="sha256"):
        TenantDirectory(str(path))


@pytest.mark.parametrize(("entry", "complaint"), [
    ({"name": "a b", "keys": ["x"]}, "name"),
    ({"name": "a", "weight": 0, "keys": [digest("k")]}, "weight"),
    ({"name": "a", "max_queued_items": 1.5, "keys": [digest("k")]}, "whole number"),
    ({"name": "a", "keys": []}, "keys"),
    ({"name": "a", "colour": "red", "keys": [digest("k")]}, "unknown"),
])
def test_a_wrong_file_says_where(tmp_path, entry, complaint):
    path = tmp_path / "tenants.json"
    write(path, entry)
    with pytest.raises(TenantsFileError, match=complaint):
        TenantDirectory(str(path))


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_tenants_before(tmp_path):
    path = tmp_path / "tenants.json"
    write(path, {"name": "ads", "keys": [digest("k-ads")]})
    loaded: list[list[str]] = []
    directory = TenantDirectory(str(path), check_every_s=0,
                                on_load=lambda tenants: loaded.append([tenant.name for tenant in tenants]))
    assert directory.tenant_for_key("k-ads").name == "ads"
    write(path, {"name": "ads", "weight": 3, "keys": [digest("k-ads-new")]})
    os.utime(path, (1, 1))  # a new modification time, however fast the test runs
    assert directory.tenant_for_key("k-ads") is None
    assert directory.tenant_for_key("k-ads-new") == Tenant("ads", 3.0)
    path.write_text("{not json")
    os.utime(path, (2, 2))
    assert directory.tenant_for_key("k-ads-new") == Tenant("ads", 3.0)
    assert loaded == [["ads", DEFAULT_TENANT], ["ads", DEFAULT_TENANT]]


def secret_version(volume, name: str, *tenants: dict):
    """A Secret volume's update as kubelet writes it: the files in a new hidden directory, then the
    ``..data`` symlink swapped to it by a rename, then the old directory removed."""
    version = volume / name
    version.mkdir()
    write(version / "tenants.json", *tenants)
    (volume / "..data_tmp").symlink_to(name)
    os.replace(volume / "..data_tmp", volume / "..data")
    return version / "tenants.json"


def test_a_secret_volume_update_is_read_again_across_its_symlink_swap(tmp_path):
    volume = tmp_path / "tenants"
    volume.mkdir()
    first = secret_version(volume, "..2026_12_07_17_00_00.1", {"name": "ads", "keys": [digest("k-ads")]})
    (volume / "tenants.json").symlink_to("..data/tenants.json")
    directory = TenantDirectory(str(volume / "tenants.json"), check_every_s=0)
    assert directory.tenant_for_key("k-ads") == Tenant("ads")

    second = secret_version(volume, "..2026_12_07_17_05_00.2", {"name": "ads", "keys": [digest("k-new")]})
    assert second.stat().st_size == first.stat().st_size
    # The same modification time and size as before: only the file the link leads to is new.
    os.utime(second, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns))
    for removed in sorted(first.parent.iterdir()):
        removed.unlink()
    first.parent.rmdir()
    assert directory.tenant_for_key("k-ads") is None
    assert directory.tenant_for_key("k-new") == Tenant("ads")


def test_api_key_alone_is_the_default_tenant_and_no_key_at_all_is_open():
    directory = TenantDirectory(None, "s3cret")
    assert directory.tenant_for_authorization("Bearer s3cret") == DEFAULT
    assert directory.tenant_for_authorization("Bearer wrong") is None
    assert not directory.open
    open_directory = TenantDirectory(None, None)
    assert open_directory.open and open_directory.tenant_for_authorization(None) == DEFAULT


def test_api_key_beside_a_file_is_the_default_tenant(tmp_path):
    path = tmp_path / "tenants.json"
    write(path, {"name": "ads", "keys": [digest("k-ads")]})
    directory = TenantDirectory(str(path), "s3cret")
    assert directory.tenant_for_key("s3cret") == DEFAULT
    assert directory.tenant_for_key("k-ads").name == "ads"


def test_an_unconfigured_tenant_by_name_weighs_one_and_has_no_limits(tmp_path):
    assert TenantDirectory(None, None).tenant("gone") == Tenant("gone")


def test_hash_prints_the_line_for_the_file(capsys):
    assert main(["hash", "k-ads"]) == 0
    assert capsys.readouterr().out.strip() == digest("k-ads")
