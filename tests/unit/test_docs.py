"""The docs keep up with the code: settings, the original example, links, and nothing cited from outside."""

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


def test_the_readme_shows_the_original_call_verbatim_and_how_to_make_its_file():
    assert "curl localhost:8080/recognize -F 'image=@./mnist_png/testing/9/104.png'" in README
    assert "python -m trainer export-png --split testing --out mnist_png" in README
    assert "make up" in README and "make test" in README


DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_in_the_docs_names_a_file_of_the_repository():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which is not there"


def test_the_docs_and_code_stand_alone():
    """Nothing outside the repository is cited as documentation: the project explains itself (a copy
    of MNIST beside the checkout is only a place to find data)."""
    sources = [*DOCS, *(path for package in ("api", "worker", "inferq", "trainer", "launcher", "bench", "config")
                        for path in (REPO / package).rglob("*") if path.suffix in (".py", ".md", ".json"))]
    for path in sources:
        text = path.read_text()
        assert "DESIGN.md" not in text and not re.search(r"\.\./shared(?!/data/mnist)", text), path
