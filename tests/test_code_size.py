"""The house's size rules, checked: no function over MAX_FUNCTION_LINES lines and no class over MAX_CLASS_LINES in
builder/, scripts/ and fgbg_depth.py (a longer one is a sign of two responsibilities in one place)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES, MAX_CLASS_LINES = 60, 200


def sources() -> list[Path]:
    return [*sorted((ROOT / "builder").rglob("*.py")), *sorted((ROOT / "scripts").glob("*.py")), ROOT / "fgbg_depth.py"]


def oversized(text: str) -> list[str]:
    """`line name: N lines (at most M)` for each function or class of `text` over its limit."""
    found = []
    for node in ast.walk(ast.parse(text)):
        limit = (MAX_CLASS_LINES if isinstance(node, ast.ClassDef)
                 else MAX_FUNCTION_LINES if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None)
        if limit is not None and (lines := node.end_lineno - node.lineno + 1) > limit:
            found.append(f"{node.lineno} {node.name}: {lines} lines (at most {limit})")
    return found


def test_no_function_or_class_is_oversized():
    problems = [f"{path.relative_to(ROOT)}:{line}" for path in sources() for line in oversized(path.read_text())]
    assert not problems, "\n".join(problems)


def test_the_check_sees_an_oversized_function_and_class():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    methods = "\n".join(f"    def m{i}(self):\n        return {i}\n" for i in range(MAX_CLASS_LINES // 3 + 1))
    assert oversized(f"def long():\n{body}\n") == [f"1 long: {MAX_FUNCTION_LINES + 1} lines (at most 60)"]
    assert oversized(f"def fits():\n{body[:body.rindex(chr(10))]}\n") == []
    assert [line.split(":")[0] for line in oversized(f"class Big:\n{methods}")] == ["1 Big"]
