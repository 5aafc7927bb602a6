"""The import graph of ``course_lib`` keeps its layers: every import points down, never up.

The rules are data: ``LAYERS`` lists the layers bottom to top, one line each, as module-name
prefixes. A module may import modules of its own layer and of layers below it, nothing above; a
new chapter's package adds its prefix to one line (e.g. ``"course_lib.rag"`` to ``applications``).
Every module of ``course_lib`` must belong to a layer, so a new module cannot slip past the rules.
``OUTSIDE`` names code that is never imported from the library (benchmarks, notebooks), and
``DRAWING`` the plotting/widget packages, allowed from the ``viz`` layer up.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import course_lib

# bottom → top; the longest matching prefix decides a module's layer
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("course_lib.attention", "course_lib.layers", "course_lib.checks", "course_lib.generation",
              "course_lib.quant", "course_lib.data", "course_lib.corpus", "course_lib.profiling",
              "course_lib.kv_cache")),
    ("tokenizers", ("course_lib.tokenizers",)),
    ("models", ("course_lib.models", "course_lib.transformer")),
    ("methods", ("course_lib.training", "course_lib.seq2seq", "course_lib.checkpoint")),
    ("checkpoints", ("course_lib.weights", "course_lib.pretrained")),
    ("tasks", ("course_lib.tasks", "course_lib.tool_calls")),
    ("applications", ("course_lib.peft", "course_lib.embedding", "course_lib.vectordb", "course_lib.rag",
                      "course_lib.agent", "course_lib.chains", "course_lib.serving", "course_lib.distributed",
                      "course_lib.chat", "course_lib.tracking", "course_lib.posttrain")),
    ("viz", ("course_lib.viz",)),
    ("course", ("course_lib.figures", "course_lib.course_map", "course_lib.config", "course_lib.exercises",
                "course_lib.__init__")),
]
OUTSIDE = ("bench", "chapters", "tests", "scripts")
DRAWING = ("plotly", "ipywidgets", "matplotlib", "IPython")
DRAWING_FROM = "viz"  # the lowest layer that may draw


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 2:  # course_lib/__init__.py stays course_lib.__init__
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str) -> list[tuple[int, str]]:
    """Every module ``path`` imports (at any depth: also inside functions), as absolute names with line numbers."""
    package = name.removesuffix(".__init__") if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # a submodule or a name in it: either way the longest layer prefix of ``base.name`` decides
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def layer_of(module: str) -> int | None:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


def violations(root: Path) -> list[str]:
    """Broken rules in the package at ``root``: unplaced modules, upward imports, outside code, drawing below the top."""
    problems = []
    drawing = [name for name, _ in LAYERS].index(DRAWING_FROM)
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        rank = layer_of(name)
        if rank is None:
            problems.append(f"{name}: belongs to no layer; add its prefix to LAYERS in tests/test_architecture.py")
            continue
        for line, target in imports_of(path, name):
            where = f"{name}:{line} imports {target}"
            first = target.split(".")[0]
            if first in OUTSIDE:
                problems.append(f"{where}: library code never imports {first}/")
            elif first in DRAWING and rank < drawing:
                problems.append(f"{where}: drawing belongs in the {DRAWING_FROM!r} layer or above, not {LAYERS[rank][0]!r}")
            elif first == "course_lib" and target != "course_lib":
                other = layer_of(target)
                if other is not None and other > rank:
                    problems.append(f"{where}: layer {LAYERS[rank][0]!r} may not import the higher layer "
                                    f"{LAYERS[other][0]!r}")
    return problems


ROOT = Path(course_lib.__file__).parent


def test_course_lib_imports_point_down():
    assert violations(ROOT) == []


def test_models_and_tokenizers_know_no_checkpoint_files():
    """Only the checkpoints layer (weights, pretrained) knows where the shipped files live (issue 13 item 3)."""
    assert layer_of("course_lib.weights") > layer_of("course_lib.models.llama") > layer_of("course_lib.tokenizers.bpe")
    assert layer_of("course_lib.pretrained") == layer_of("course_lib.weights")


@pytest.mark.parametrize("module, source, rule", [
    ("models/_upward.py", "from course_lib.viz import attention\n", "may not import the higher layer 'viz'"),
    ("viz/_chapters.py", "from course_lib.course_map import NOTES_SECTIONS\n", "may not import the higher layer 'course'"),
    ("attention_extra.py", "def f():\n    from course_lib.models import gpt\n", "unplaced"),
    ("layers.py", "from .models import llama\n", "may not import the higher layer 'models'"),
    ("tokenizers/_files.py", "from course_lib import weights\n", "may not import the higher layer 'checkpoints'"),
    ("models/_bench.py", "import bench.harness\n", "never imports bench/"),
    ("generation.py", "import plotly.graph_objects as go\n", "drawing belongs in the 'viz' layer or above"),
    ("seq2seq.py", "from course_lib.tasks.reversal import ReversalTask\n", "may not import the higher layer 'tasks'"),
])
def test_an_upward_import_in_a_temporary_module_is_caught(tmp_path, module, source, rule):
    copy = tmp_path / "course_lib"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(copy) == []
    target = copy / module
    target.write_text(target.read_text() + "\n" + source if target.exists() else source)
    found = violations(copy)
    if rule == "unplaced":
        assert found == ["course_lib.attention_extra: belongs to no layer; add its prefix to LAYERS in "
                         "tests/test_architecture.py"]
    else:
        assert len(found) == 1 and rule in found[0], found
