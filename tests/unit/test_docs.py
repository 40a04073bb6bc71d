"""The README and config/.env.example keep up with the settings and the seed's example."""

import dataclasses
import re

from inferq.settings import Settings
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
ENV_EXAMPLE = (REPO / "config" / ".env.example").read_text()
SETTINGS = {field.name.upper(): field.default for field in dataclasses.fields(Settings)}


def test_every_setting_has_a_row_in_the_readme_table_with_its_default():
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README, re.MULTILINE))
    assert set(rows) == set(SETTINGS)
    for name, default in SETTINGS.items():
        shown = rows[name].strip()
        assert shown == ("unset" if default is None else f"`{default:g}`" if isinstance(default, float)
                         else f"`{default}`"), name


def test_every_setting_is_in_the_env_example_with_its_default():
    lines = dict(re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE, re.MULTILINE))
    assert set(lines) == set(SETTINGS)
    for name in SETTINGS:
        assert Settings.from_env({name: lines[name]}) == Settings(), name


def test_the_readme_shows_the_seeds_call_verbatim_and_how_to_make_its_file():
    assert "curl localhost:8080/recognize -F 'image=@./mnist_png/testing/9/104.png'" in README
    assert "python -m trainer export-png --split testing --out mnist_png" in README
    assert "make up" in README and "make test" in README
