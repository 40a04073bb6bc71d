"""The docs keep up with the code: settings, the original example, links, and nothing cited from outside."""

import dataclasses
import re
from collections.abc import Iterator

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
    # Read in order, the README makes mnist_png/ before any call sends a file from it.
    assert README.index("trainer export-png") < README.index("=@./mnist_png/"), "a call names a file made later"
    assert "make up" in README and "make test" in README


DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_in_the_docs_names_a_file_of_the_repository():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which is not there"


FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(doc) -> Iterator[str]:
    """The anchors GitHub gives ``doc``'s headings: lower case, punctuation dropped but ``-`` and
    ``_``, spaces as ``-``, a repeated one suffixed ``-1``, ``-2``... Headings in code blocks are text."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", doc.read_text()), re.MULTILINE):
        text = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


def test_every_anchor_a_doc_links_to_is_a_heading_of_its_target():
    for doc in DOCS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", FENCE.sub("", doc.read_text())):
            if re.match(r"[a-z]+://", target):
                continue
            linked = (doc.parent / target) if target else doc
            assert anchor in set(anchors(linked)), f"{doc.name} links to {target or doc.name}#{anchor}: no such heading"


def test_anchors_are_made_as_github_makes_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A `code` heading, and more\n## 2026-12-07, 12:22–13:00 UTC — runs\n## Again\n## Again\n"
                    "```\n# not a heading\n```\n")
    assert list(anchors(page)) == ["a-code-heading-and-more", "2026-12-07-12221300-utc--runs", "again", "again-1"]


def test_the_docs_and_code_stand_alone():
    """Nothing outside the repository is cited as documentation: the project explains itself (a copy
    of MNIST beside the checkout is only a place to find data)."""
    sources = [*DOCS, *(path for package in ("api", "worker", "inferq", "trainer", "launcher", "bench", "config")
                        for path in (REPO / package).rglob("*") if path.suffix in (".py", ".md", ".json"))]
    for path in sources:
        text = path.read_text()
        assert "DESIGN.md" not in text and not re.search(r"\.\./shared(?!/data/mnist)", text), path
