"""File and module references in docstrings, comments and docs point at things that exist: a path such as
`builder/run/pipeline.py`, a dotted name such as `builder.rows.scene.derive_scene`, and a Markdown link with its
anchor. A refactor that moves a module then fails here instead of leaving stale pointers for the next reader."""

from __future__ import annotations

import functools
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("builder", "scripts", "tests", "docs", "benchmarks")
ROOT_FILES = ("README.md", "dataset_card.md", "pyproject.toml", "fgbg_depth.py", ".ci/run")
SUFFIXES = {".py", ".md", ".toml", ".sh", ".yaml", ".yml"}
PATH = re.compile(r"(?<![\w./-])((?:builder|scripts|tests|docs|benchmarks)/[\w/.*-]*[\w*])")
DOTTED = re.compile(r"(?<![\w./])(builder(?:\.[A-Za-z_]\w*)+)")
PLACEHOLDER = re.compile(r"\b[A-Z]{3,}\b")  # DATE, MACHINE, OUT: a path to be made, not one that exists
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DEFINITION = r"^\s*(?:async\s+def|def|class)\s+{0}\b|^\s*{0}\s*(?::[^=]*)?=|^\s*from\s+\S+\s+import\s+.*\b{0}\b"


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in ROOT_FILES if (ROOT / name).is_file()]
    for folder in SCANNED:
        files += sorted(p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in SUFFIXES
                        and "__pycache__" not in p.parts and p != Path(__file__).resolve())
    return files


def module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def source(path: Path) -> str:
    return path.read_text()


def defines(module: Path, name: str) -> bool:
    return re.search(DEFINITION.format(re.escape(name)), source(module), re.MULTILINE) is not None


def path_problem(token: str) -> str | None:
    """None when the path exists: a file or folder, a glob that matches, or `module.py`-less `path.attr`; or when it
    is a file a command is to write, named with a placeholder (`benchmarks/DATE-rows-MACHINE.json`)."""
    if PLACEHOLDER.search(token):
        return None
    if "*" in token:
        return None if list(ROOT.glob(token)) else "matches no file"
    if (ROOT / token).exists():
        return None
    stem, *attrs = token.split(".")
    module = module_file(stem.split("/"))
    if module is not None and attrs and defines(module, attrs[0]):
        return None
    return "does not exist"


def dotted_problem(token: str) -> str | None:
    parts = token.split(".")
    for cut in range(len(parts), 0, -1):
        module = module_file(parts[:cut])
        if module is not None:
            rest = parts[cut:]
            return None if not rest or defines(module, rest[0]) else f"{module.relative_to(ROOT)} has no {rest[0]}"
    return "no such module"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s", "-", text)


def anchors(markdown: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in markdown.read_text().splitlines() if re.match(r"#{1,6}\s", line)}


def link_problem(source: Path, folder: Path, target: str) -> str | None:
    """A relative link resolves from `folder` (the Markdown file's own, as GitHub resolves it)."""
    if re.match(r"[a-z]+:", target) or target.startswith("<"):
        return None
    name, _, anchor = target.partition("#")
    path = (folder / name).resolve() if name else source
    if not path.exists():
        return "does not exist"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"{path.name} has no heading #{anchor}"
    return None


def prose_lines(file: Path) -> list[tuple[int, str]]:
    """(line number, text) of what a reader reads: a Python file's comments and strings (its code may name a
    variable `builder`), every line of anything else."""
    text = file.read_text()
    if file.suffix != ".py":
        return list(enumerate(text.splitlines(), start=1))
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            lines += [(token.start[0] + n, part) for n, part in enumerate(token.string.splitlines())]
    return lines


def reference_problems(files: list[Path], link_folder: Path | None = None) -> list[str]:
    problems = []
    for file in files:
        where = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file.name
        for number, line in prose_lines(file):
            links = LINK.findall(line) if file.suffix == ".md" else []
            for target in links:
                if problem := link_problem(file, link_folder or file.parent, target):
                    problems.append(f"{where}:{number}: link {target} {problem}")
            for token in PATH.findall(LINK.sub("", line) if links else line):
                if problem := path_problem(token.rstrip(".")):
                    problems.append(f"{where}:{number}: {token} {problem}")
            for token in DOTTED.findall(line):
                if problem := dotted_problem(token):
                    problems.append(f"{where}:{number}: {token}: {problem}")
    return problems


def test_every_file_and_module_reference_exists():
    problems = reference_problems(scanned_files())
    assert not problems, "stale references:\n" + "\n".join(problems)


@pytest.mark.parametrize("text, expected", [
    ("see `builder/run/pipeline.py`", 0), ("see `builder/pipeline.run_shards`", 1), ("`builder/hub.py`", 1),
    ("`builder.contract.settings.GenerateConfig`", 0), ("`builder.config.GenerateConfig`", 1),
    ("`builder.rows.scene.no_such_function`", 1), ("[x](docs/design.md#splits-the-rule)", 0),
    ("[x](docs/design.md#no-such-heading)", 1), ("[x](docs/missing.md)", 1), ("`tests/golden/*.json`", 0),
    ("--output benchmarks/DATE-rows-MACHINE.json", 0),
])
def test_the_checker_tells_stale_from_live(tmp_path, text, expected):
    """The check itself: live references pass, each kind of stale one is caught."""
    probe = tmp_path / "probe.md"
    probe.write_text(text + "\n")
    assert len(reference_problems([probe], link_folder=ROOT)) == expected
