"""The import graph of ``course_lib`` keeps its layers: every import points down, never up.

The rules are data: ``LAYERS`` lists the layers bottom to top, one line each, as module-name
prefixes, in the order COURSE_DESIGN §5 draws them (docs/LAYOUT.md explains them to a newcomer). A
module may import modules of its own layer and of layers below it, nothing above. The applications are
ordered too, by the chapters that build them (peft → embedding, vectordb → chat → rag → agent → webgpt →
chains → serving, distributed, tracking → posttrain → assistant): a new module of a package takes that
package's line, a new package gets a line of its own where its chapter stands. Every module of
``course_lib`` must belong to a layer, so a new module cannot slip past the rules. ``OUTSIDE`` names code
that is never imported from the library (benchmarks, notebooks), and ``DRAWING`` the plotting/widget
packages, allowed from the ``viz`` layer up. Separately, the module-level import graph has no cycle
(``TYPE_CHECKING`` imports included): a cycle hides an upward edge inside one layer.
"""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

import pytest

import course_lib

# bottom → top, as COURSE_DESIGN §5 draws the house; the longest matching prefix decides a module's layer.
# A module may import its own layer and the layers below it, never one above: these are all of §5's
# never-rules. A prefix may name a package that does not exist yet; it takes its place when it is written.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("course_lib.attention", "course_lib.layers", "course_lib.checks", "course_lib.quant",
                "course_lib.data", "course_lib.corpus", "course_lib.datasets", "course_lib.profiling",
                "course_lib.kv_cache", "course_lib.lazy")),
    ("generation", ("course_lib.generation", "course_lib.text_decoding", "course_lib.constrained")),
    ("tokenizers", ("course_lib.tokenizers",)),
    ("models", ("course_lib.models", "course_lib.transformer", "course_lib.transformer_torch")),
    ("methods", ("course_lib.training", "course_lib.seq2seq", "course_lib.checkpoint")),
    ("checkpoints", ("course_lib.weights", "course_lib.pretrained")),
    ("tasks", ("course_lib.tasks", "course_lib.tool_calls")),
    # the applications, in the order of the chapters that build them; a line may import the lines before it
    ("peft", ("course_lib.peft",)),
    ("embedding, vectordb", ("course_lib.embedding", "course_lib.vectordb")),
    ("chat", ("course_lib.chat",)),
    ("rag", ("course_lib.rag",)),
    ("agent", ("course_lib.agent",)),
    ("webgpt", ("course_lib.webgpt",)),
    ("chains", ("course_lib.chains",)),
    ("serving, distributed, tracking", ("course_lib.serving", "course_lib.distributed", "course_lib.tracking")),
    ("posttrain", ("course_lib.posttrain",)),
    ("assistant", ("course_lib.assistant",)),
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


def _module_level(statements: list[ast.stmt]):
    """The statements that run when the module is imported: also inside ``if``/``try``/``with`` and class
    bodies (``if TYPE_CHECKING:`` included), never inside a function."""
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _module_level(getattr(node, field, []))


def imports_of(path: Path, name: str, module_level: bool = False) -> tuple[tuple[int, str], ...]:
    """Every module ``path`` imports, as absolute names with line numbers: at any depth (also inside
    functions), or with ``module_level=True`` only the imports that run when the module is imported."""
    package = name.removesuffix(".__init__") if path.name == "__init__.py" else name.rpartition(".")[0]
    return _imports_in(path.read_text(encoding="utf-8"), package, module_level)


@functools.cache  # the temporary copies below share all but one file with the tree
def _imports_in(source: str, package: str, module_level: bool) -> tuple[tuple[int, str], ...]:
    tree = ast.parse(source)
    found = []
    for node in _module_level(tree.body) if module_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # a submodule or a name in it: either way the longest layer prefix of ``base.name`` decides
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return tuple(found)


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


def import_cycles(root: Path) -> list[list[str]]:
    """Cycles of the module-level import graph of the package at ``root`` (each as a closed path of modules).

    An import names the longest existing module of its target (``from course_lib.models import t5`` is
    ``course_lib.models.t5``; ``from course_lib.agent import Tool`` is the package ``course_lib.agent``).
    Importing ``a.b`` also runs ``a/__init__``; that implicit parent edge is left out (every package
    importing its own submodules would be a cycle), so a cycle here is one an author wrote.
    """
    paths = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}

    def resolve(target: str) -> str | None:
        while target not in paths and "." in target:
            target = target.rpartition(".")[0]
        return target if target in paths else "course_lib.__init__" if target == "course_lib" else None

    graph = {name: sorted({m for _, t in imports_of(path, name, module_level=True)
                           if (m := resolve(t)) not in (None, name)}) for name, path in paths.items()}
    cycles, state = [], {}          # state: 1 = on the current path, 2 = done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for nxt in graph[name]:
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [name, nxt])   # nxt is on the current path
            elif nxt not in state:
                visit(nxt, trail + [name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    return cycles


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
    # text decoding sits beside generation and knows tokenizers only by duck typing (decode, decode_bytes)
    ("text_decoding.py", "from course_lib.tokenizers.bpe import ByteLevelBPE\n", "may not import the higher layer 'tokenizers'"),
    ("seq2seq.py", "from course_lib.tasks.reversal import ReversalTask\n", "may not import the higher layer 'tasks'"),
    # the applications' order (COURSE_DESIGN §5): each import below points one line up
    ("peft/_up.py", "from course_lib.embedding import word2vec\n", "'peft' may not import the higher layer 'embedding, "),
    ("vectordb/_up.py", "from course_lib.chat import ChatModel\n", "may not import the higher layer 'chat'"),
    ("chat.py", "from course_lib.rag.questions import load_questions\n", "may not import the higher layer 'rag'"),
    ("rag/_up.py", "from course_lib.agent.tools import Tool\n", "may not import the higher layer 'agent'"),
    ("agent/_up.py", "from course_lib.webgpt import browser\n", "may not import the higher layer 'webgpt'"),
    ("agent/_up.py", "def f():\n    from course_lib.chains.base import Runnable\n", "the higher layer 'chains'"),
    ("chains/_up.py", "from course_lib.serving.engine import Engine\n", "the higher layer 'serving, distributed, tracking'"),
    ("tracking.py", "from course_lib.posttrain import grpo\n", "may not import the higher layer 'posttrain'"),
    ("serving/_up.py", "from course_lib.assistant import widget\n", "may not import the higher layer 'assistant'"),
    ("distributed.py", "from course_lib.viz.curves import LiveCurve\n", "may not import the higher layer 'viz'"),
])
def test_an_upward_import_in_a_temporary_module_is_caught(tmp_path, module, source, rule):
    copy = tmp_path / "course_lib"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "*.gz", "*.json*"))
    target = copy / module
    target.write_text(target.read_text() + "\n" + source if target.exists() else source)
    found = violations(copy)
    if rule == "unplaced":
        assert found == ["course_lib.attention_extra: belongs to no layer; add its prefix to LAYERS in "
                         "tests/test_architecture.py"]
    else:
        assert len(found) == 1 and rule in found[0], found


def test_the_applications_stand_in_the_order_of_their_chapters():
    """COURSE_DESIGN §5: peft → embedding, vectordb → chat → rag → agent → webgpt → chains →
    serving, distributed, tracking → posttrain → assistant, between the tasks and viz."""
    order = ["course_lib.peft", "course_lib.embedding", "course_lib.chat", "course_lib.rag", "course_lib.agent",
             "course_lib.webgpt", "course_lib.chains", "course_lib.serving", "course_lib.posttrain",
             "course_lib.assistant"]
    ranks = [layer_of(name) for name in order]
    assert ranks == sorted(set(ranks)), ranks
    assert layer_of("course_lib.tasks") < ranks[0] and ranks[-1] < layer_of("course_lib.viz")
    assert layer_of("course_lib.vectordb") == layer_of("course_lib.embedding")
    assert layer_of("course_lib.distributed") == layer_of("course_lib.tracking") == layer_of("course_lib.serving")


def test_a_module_may_import_its_own_line_and_the_lines_below(tmp_path):
    copy = tmp_path / "course_lib"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "*.gz", "*.json*"))
    (copy / "vectordb" / "_side.py").write_text("from course_lib.embedding import word2vec\n")     # same line
    (copy / "serving" / "_side.py").write_text("from course_lib import distributed, tracking\n")   # same line
    (copy / "agent" / "_down.py").write_text("from course_lib.rag import questions\nfrom course_lib import peft\n")
    assert violations(copy) == []


def test_the_library_has_no_import_cycle():
    assert import_cycles(ROOT) == []


@pytest.mark.parametrize("source, cycle", [
    # the T5 cycle as it was: t5 imports t5_decoding, which imported t5 for a type annotation
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from course_lib.models.t5 import T5Model\n", True),
    ("try:\n    from course_lib.models import t5\nexcept ImportError:\n    t5 = None\n", True),
    ("class Later:\n    from course_lib.models.t5 import T5Config as config\n", True),   # class bodies run on import
    ("def later():\n    from course_lib.models.t5 import T5Model\n", False),   # runs when called, after both loaded
])
def test_an_import_cycle_in_a_temporary_copy_is_caught(tmp_path, source, cycle):
    copy = tmp_path / "course_lib"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "*.gz", "*.json*"))
    decoding = copy / "models" / "t5_decoding.py"
    decoding.write_text(decoding.read_text() + "\n" + source)
    found = [set(c) for c in import_cycles(copy)]
    assert found == ([{"course_lib.models.t5", "course_lib.models.t5_decoding"}] if cycle else []), found


def test_docs_layout_lists_the_layers_in_this_order():
    """docs/LAYOUT.md explains the layers to a newcomer: its table has the rows of ``LAYERS``, in order."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "LAYOUT.md").read_text(encoding="utf-8")
    cells = [line.split("|")[1:3] for line in text.splitlines() if line.startswith("| ")]
    rows = [(int(n), name.strip()) for n, name in cells if n.strip().isdigit()]   # "| 7 | tasks |"
    assert rows == [(i, name) for i, (name, _) in enumerate(LAYERS, start=1)]
