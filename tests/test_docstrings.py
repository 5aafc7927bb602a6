"""Issue 13 item 7: every public module-level class and function in course_lib has a docstring.

The docstring is the one line that says what the definition is in the paper's or reference's terms; this
test keeps new chapters from adding undocumented public API (methods are not counted, as in the issue).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def missing_docstrings(package: Path) -> list[str]:
    """``path:line name`` for every public module-level def/class under ``package`` without a docstring."""
    missing = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, PUBLIC_DEFS) and not node.name.startswith("_") and not ast.get_docstring(node):
                missing.append(f"{path.relative_to(package.parent)}:{node.lineno} {node.name}")
    return missing


def test_walk_flags_only_public_undocumented_definitions(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        'def f():\n    return 1\n\n\ndef _g():\n    pass\n\n\nclass C:\n    """Doc."""\n\n\nclass D:\n    x = 1\n'
    )
    assert missing_docstrings(pkg) == ["pkg/m.py:1 f", "pkg/m.py:13 D"]


def test_every_public_definition_has_a_docstring():
    missing = missing_docstrings(ROOT / "course_lib")
    assert not missing, f"{len(missing)} public definitions without a docstring:\n" + "\n".join(missing)
