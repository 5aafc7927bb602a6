"""``course_lib`` works as an installed wheel: the datasets it reads are package data, not files of the source tree.

The test builds the wheel offline from a copy of ``pyproject.toml`` + ``course_lib/`` (so the repository
gets no ``build/``), installs it non-editable into a temporary folder, and loads every dataset in a
fresh interpreter whose ``sys.path`` has that folder and the third-party site-packages, but neither the
repository nor the editable install's import hook (``-I -S``: no ``PYTHONPATH``, no ``.pth`` files).
Building offline needs the build backend in the environment: ``requirements.txt`` pins ``setuptools``
(a venv's own setuptools may be too old to build wheels, or absent).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import course_lib
from course_lib.datasets import FILES

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(course_lib.__file__).parent
# modules that may find files from their own location, and why (everything else reads course_lib.datasets)
FILE_RELATIVE = {
    "agent/sandbox.py": "starts its sibling sandbox_boot.py, which ships in the wheel",
    "agent/sandbox_boot.py": "run as a script, puts its own folder (its sibling modules) on sys.path",
    "figures.py": "regenerates the repository's Fig/ (a course tool run from a checkout)",
    "rag/documents.py": "indexes the repository's chapters/ by default (notebook_prose takes any folder)",
    # Not yet package data (issue 24): the trained artefacts ship in the checkout's data/, so a wheel
    # install must pass the folder (CrossEncoderReranker.load(path=...), adapted_smollm2(folder=...)).
    "rag/cross_encoder.py": "loads the trained reranker from the checkout's data/reranker by default",
    "webgpt/conditions.py": "loads the behaviour-cloning adapter from the checkout's data/adapters/webgpt by default",
}

CHILD = """
import json, sys
from pathlib import Path
target = Path(sys.argv[1])
sys.path[:0] = [str(target)]
sys.path += json.loads(sys.argv[2])
import course_lib
from course_lib import corpus, tool_calls
from course_lib.datasets import FILES, dataset
from course_lib.rag.questions import load_questions
assert Path(course_lib.__file__).is_relative_to(target), course_lib.__file__
sizes = {}
for name in FILES:
    path = dataset(name)
    assert Path(str(path)).is_relative_to(target), path
    sizes[name] = len(path.read_bytes())
print(json.dumps({"sizes": sizes, "docstrings": len(corpus.stdlib_docstrings()),
                  "modules": len(corpus.stdlib_module_names()),
                  "tool_calls": [len(tool_calls.load("train")), len(tool_calls.load("test"))],
                  "questions": len(load_questions())}))
"""


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copytree(ROOT, src / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", wheels, src)
    (wheel,) = wheels.glob("course_lib-*.whl")
    target = tmp_path_factory.mktemp("target")
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", target, wheel)
    return target


def _third_party() -> str:
    """This interpreter's import path without any folder holding a ``course_lib`` (the repository, a checkout)."""
    return json.dumps([p for p in sys.path if p and Path(p).is_dir() and not (Path(p) / "course_lib").exists()])


def test_a_non_editable_install_loads_every_dataset(installed, tmp_path):
    done = _run(sys.executable, "-I", "-S", "-c", CHILD, installed, _third_party(), cwd=tmp_path)
    found = json.loads(done.stdout)
    assert found["sizes"] == {name: len((ROOT / "datasets" / name).read_bytes()) for name in FILES}
    assert found["docstrings"] == 4551 and found["modules"] == 421
    assert found["tool_calls"] == [240, 48] and found["questions"] == 288


def test_without_the_package_data_the_install_fails_loudly(installed, tmp_path):
    """The check can fail: the same install minus one dataset file raises in the child."""
    broken = tmp_path / "target"
    shutil.copytree(installed, broken)
    (broken / "course_lib" / "datasets" / "tool_calls.jsonl").unlink()
    done = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, str(broken), _third_party()],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode != 0 and "tool_calls.jsonl" in done.stderr, done.stderr[-2000:]


def test_only_listed_modules_find_files_from_their_own_location():
    """The library reads data through ``course_lib.datasets``, never by walking up from ``__file__``."""
    found = set()
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Name) and node.id == "__file__" for node in ast.walk(tree)):
            found.add(path.relative_to(ROOT).as_posix())
    assert found == set(FILE_RELATIVE)
