"""Every repository file or folder that the code's docstrings and comments, the README and docs/ cite exists: a
reader following a reference never lands on a document the repository does not have (or a module that moved)."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A path in the text: folders and a file name with a known suffix, or a folder ending in "/".
CITED = re.compile(r"(?<![\w./:<>{}*$~-])((?:[\w.-]+/)+(?:[\w.-]+\.(?:md|py|sh|toml|ini|json|cfg))?|[\w.-]+\.(?:md|py))"
                   r"(?![\w/*<>{}-])")
# Names the suite writes into a results folder, not files of the repository.
WRITTEN = {"leaderboard.md"}


def tracked() -> list[str]:
    """The repository's files: committed or new, not ignored (.venv, .cache, results)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [path for path in listed if (ROOT / path).exists()]  # a file deleted in the work tree is not there


def sources() -> list[Path]:
    """What is read by people: the docstrings and comments of the library, fixtures and tests; the markdown files."""
    return sorted(ROOT / p for p in tracked() if p.endswith((".py", ".md")) or p == "Makefile")


def prose(source: Path) -> str:
    """The text a reader follows: a markdown file or Makefile whole, a Python file's docstrings and comments (its
    string literals name files the code writes, not files of the repository)."""
    text = source.read_text(encoding="utf-8")
    if source.suffix != ".py":
        return text
    nodes = [node for node in ast.walk(ast.parse(text))
             if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    docstrings = [ast.get_docstring(node) or "" for node in nodes]
    comments = [token.string for token in tokenize.generate_tokens(io.StringIO(text).readline)
                if token.type == tokenize.COMMENT]
    return "\n".join(docstrings + comments)


def cited_paths(text: str, top_level: set[str]) -> set[str]:
    """Paths that start at the repository root (their first folder is one of its top-level folders), and bare
    file names ending in .md or .py."""
    found = set()
    for match in CITED.finditer(text):
        path = match.group(1).rstrip(".")
        if "/" in path:
            if path.split("/")[0] in top_level:
                found.add(path)
        elif path not in WRITTEN:
            found.add(path)
    return found


def missing_citations() -> dict[str, list[str]]:
    files = tracked()
    top_level = {path.split("/")[0] for path in files if "/" in path}
    basenames = {Path(path).name for path in files}
    missing: dict[str, list[str]] = {}
    for source in sources():
        for path in cited_paths(prose(source), top_level):
            exists = (ROOT / path).exists() if "/" in path else path in basenames
            if not exists:
                missing.setdefault(str(source.relative_to(ROOT)), []).append(path)
    return missing


def test_cited_paths_exist() -> None:
    assert missing_citations() == {}


def test_the_check_finds_what_it_should() -> None:
    top = {"marathon_lib", "docs", "tests_bench"}
    text = ("see design.md and docs/architecture.md, `marathon_lib/models/registry.py`; results/run-x/cases/a.json, "
            "samples/<case>.jsonl, https://example.org/docs/x.md and leaderboard.md are not repository files")
    assert cited_paths(text, top) == {"design.md", "docs/architecture.md", "marathon_lib/models/registry.py"}
    assert cited_paths("the folder marathon_lib/shapes/ and docs/.", top) == {"marathon_lib/shapes/", "docs/"}
