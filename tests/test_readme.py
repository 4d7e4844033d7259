"""The README and docs/: short enough to read, the set-up commands CI runs, and no dead relative link.

``.ci/run`` runs the README's test command in a fresh clone; this keeps the two the same line. Every
relative link in ``README.md`` and ``docs/*.md`` must name a file of the repository, and a ``#section``
must name a heading of that file (GitHub's anchors: lower case, punctuation dropped, spaces to hyphens).
A repository path in inline code (``toonmatte/model/zoo.py``) must exist too, so that moving a module
cannot leave the docs pointing at its old place.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
MAX_LINES = 180
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
SOURCE_PATH = re.compile(r"`((?:app|annotate|toonmatte|benchmarks|scripts|tests|docs)[\w./-]*\.(?:py|js|sh|md))`")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return CODE.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """The ``#anchor`` of every heading of a Markdown file, as GitHub makes them."""
    found = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            title = heading.group(1).strip().lower().replace("`", "")
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; keep it under {MAX_LINES}, details in docs/"


def test_readme_has_ci_test_command_and_studio_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = next(line for line in ci if "python -m pytest" in line and not line.lstrip().startswith("#"))
    command = command.split(" || ")[0]  # what .ci/run adds to pass the exit status on
    text = README.read_text(encoding="utf-8")
    blocks = [block.strip() for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)]
    assert command.strip() in blocks, "the README's test command differs from the one .ci/run runs"
    assert any(block.endswith("python app.py") and "pip install -r requirements.txt" in block for block in blocks)


def test_link_pattern_finds_links_outside_code() -> None:
    text = "see [a](docs/a.md) and ![p](img.png), not `[b](b.md)` nor [c](https://x.org)\n```\n[d](d.md)\n```\n"
    assert LINK.findall(prose(text)) == ["docs/a.md", "img.png", "https://x.org"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    dead = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            dead.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            dead.append(f"{target} (no heading #{anchor})")
    assert not dead, f"{page.relative_to(REPO)}: " + "; ".join(dead)


def test_readme_pictures_are_small() -> None:
    pictures = [t for t in relative_links(README) if t.endswith(".png")]
    assert pictures, "the README shows the pictures of scripts/readme_images.py"
    for picture in pictures:
        size = (REPO / picture).stat().st_size
        assert size < 300 * 1024, f"{picture} is {size // 1024} KB; regenerate it smaller"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_source_paths_named_in_code_exist(page: Path) -> None:
    named = set(SOURCE_PATH.findall(page.read_text(encoding="utf-8")))
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert not missing, f"{page.relative_to(REPO)} names files that do not exist: {', '.join(missing)}"


def test_library_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's library example, as written, on drawn images (offline: the classical fallback)."""
    from conftest import draw_toon, save_png

    text = README.read_text(encoding="utf-8")
    snippet = next(block for block in re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
                   if "from toonmatte import" in block)
    for seed, name in enumerate(("character.png", "a.png", "b.png")):
        save_png(tmp_path / name, draw_toon(96, 96, seed=seed)[0])
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["matte"].engine == "fallback" and scope["matte"].alpha.shape == (96, 96)
    assert scope["rgba"].shape == (96, 96, 4) and scope["flat"].shape == (96, 96, 3)
    assert len(scope["mattes"]) == 2
