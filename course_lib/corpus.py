"""Docstrings of the Python standard library: a real retrieval corpus that ships with Python (§4).

Both the module list (``stdlib_modules.txt``) and the texts (``stdlib_docstrings.jsonl.gz``, both in
:mod:`course_lib.datasets`) are pinned, so every machine, every Python version and every Jupyter kernel (ipykernel replaces
``input``, ``getpass``, ``pdb``... whose docstrings would change) sees the same corpus. The texts were
collected from the running Python's own docstrings (``inspect.getdoc``) in a clean interpreter by
``python -I -m course_lib.corpus``. Used by the embedding, vector-database and RAG chapters::

    docs = stdlib_docstrings()            # [Doc(id="json.dumps", module="json", kind="function", text=...), ...]
    texts = stdlib_passages()             # ~24k sentences and sentence pairs (docstrings + pydoc topics)
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import io
import json
import pkgutil
import re
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import astuple, dataclass
from functools import lru_cache
from pathlib import Path

from course_lib.datasets import dataset

MODULE_LIST = dataset("stdlib_modules.txt")
PINNED = dataset("stdlib_docstrings.jsonl.gz")   # header line, then one [id, module, kind, text] per line
# side effects on import (open a browser, print a poem, start Tk), test suites, or deprecated shims
_SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip",
         "venv", "pydoc_data", "msilib", "winreg", "winsound", "nt", "msvcrt", "_msi", "distutils", "crypt",
         "nis", "spwd", "ossaudiodev", "sndhdr", "imghdr", "cgi", "cgitb", "telnetlib", "nntplib", "pipes",
         "uu", "xdrlib", "chunk", "mailcap", "audioop", "aifc", "sunau", "smtpd", "asynchat", "asyncore", "imp"}


@dataclass(frozen=True)
class Doc:
    """One docstring of the standard library: dotted id, source module, kind of object and the text."""
    id: str      # dotted path, e.g. "json.JSONDecoder.decode"
    module: str  # the module it was collected from
    kind: str    # "module", "class", "function" or "method"
    text: str    # inspect.getdoc(obj)


def _quiet_import(name: str):
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def discover_stdlib_modules() -> list[str]:
    """Public, importable stdlib modules and the public submodules of stdlib packages (sorted)."""
    names = set()
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in _SKIP:
            continue
        try:
            mod = _quiet_import(top)
        except Exception:   # noqa: BLE001 — platform-specific modules simply are not there
            continue
        names.add(top)
        for info in pkgutil.iter_modules(getattr(mod, "__path__", [])):
            sub = f"{top}.{info.name}"
            if info.name.startswith("_") or "test" in info.name or "__main__" in info.name:
                continue
            try:
                _quiet_import(sub)
            except Exception:   # noqa: BLE001
                continue
            names.add(sub)
    return sorted(names)


def stdlib_module_names() -> list[str]:
    """The pinned module list (:data:`MODULE_LIST`, ``course_lib/datasets/stdlib_modules.txt``)."""
    return [line.strip() for line in MODULE_LIST.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _members(module) -> list[tuple[str, str, object]]:
    """``(qualified name, kind, object)`` for a module's public classes, functions and class methods."""
    out = []
    for name, obj in sorted(vars(module).items()):
        home = getattr(obj, "__module__", None) or ""
        if name.startswith("_") or not (home == module.__name__ or home.startswith("_") or home == "posix"):
            continue                     # re-exports from other modules; C helpers (_io, posix) count as home
        if inspect.isclass(obj):
            out.append((name, "class", obj))
            for attr, member in sorted(vars(obj).items()):
                member = getattr(member, "__func__", member)          # staticmethod / classmethod
                if not attr.startswith("_") and (inspect.isroutine(member) or isinstance(member, property)):
                    out.append((f"{name}.{attr}", "method", member))
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            out.append((name, "function", obj))
    return out


def collect_docstrings(modules: list[str] | None = None) -> list[Doc]:
    """Every non-empty docstring of ``modules`` (default: the pinned list), read live, duplicates kept.

    Order: module list order, then names sorted. Modules the running Python lacks are skipped. This is
    what :data:`PINNED` stores; :func:`stdlib_docstrings` filters and deduplicates it.
    """
    docs = []
    for name in modules if modules is not None else stdlib_module_names():
        try:
            module = _quiet_import(name)
        except Exception:   # noqa: BLE001
            continue
        for qual, kind, obj in [("", "module", module), *_members(module)]:
            text = inspect.getdoc(obj) or ""
            if text:
                docs.append(Doc(f"{name}.{qual}" if qual else name, name, kind, text))
    return docs


def write_pinned(path: Path = PINNED) -> int:
    """Collect live and write ``path`` (gzip JSON lines, deterministic bytes); returns the number of docs."""
    docs = collect_docstrings()
    header = {"python": sys.version.split()[0], "made_by": "python -I -m course_lib.corpus", "docs": len(docs)}
    lines = [json.dumps(header)] + [json.dumps(astuple(d), ensure_ascii=False) for d in docs]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0))
    return len(docs)


@lru_cache(maxsize=1)
def read_pinned(path: Path = PINNED) -> tuple[dict, tuple[Doc, ...]]:
    """``(header, docs)`` of the pinned file: every docstring as collected, duplicates kept."""
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        header, docs = json.loads(lines[0]), tuple(Doc(*json.loads(line)) for line in lines[1:])
    except (OSError, EOFError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"{path} is missing or corrupt ({err}); rebuild it: python -I -m course_lib.corpus") from err
    if header.get("docs") != len(docs):
        raise ValueError(f"{path} is truncated: header says {header.get('docs')} docs, found {len(docs)}")
    return header, docs


def stdlib_docstrings(modules: list[str] | None = None, min_chars: int = 40) -> list[Doc]:
    """Every docstring of at least ``min_chars`` characters in ``modules`` (default: the pinned list).

    Read from :data:`PINNED`, never from the live interpreter. A text seen before (re-exports,
    inherited docs) is kept once, under its first id, counting only the ``modules`` asked for.
    Order: ``modules`` order, then names sorted.
    """
    if min_chars < 1:
        raise ValueError(f"min_chars must be positive, got {min_chars}")
    by_module: dict[str, list[Doc]] = {}
    for doc in read_pinned()[1]:
        by_module.setdefault(doc.module, []).append(doc)
    if modules is None:
        modules = list(by_module)
    unknown = [m for m in modules if m not in by_module]
    if unknown:
        raise ValueError(f"modules not in the pinned corpus ({MODULE_LIST.name}): {unknown[:5]}")
    docs, seen = [], set()
    for doc in (d for m in modules for d in by_module[m]):
        if len(doc.text) >= min_chars and doc.text not in seen:
            seen.add(doc.text)
            docs.append(doc)
    return docs


# a sentence ends at . ! or ? followed by white space and something that can open a sentence
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“'`(*])")   # ". Next", "! (", '? "' ...
_UNDERLINE = re.compile(r"^\s*([*=~^-])\1*\s*$")                # reST heading underlines: ******, ======


def sentences(text: str) -> list[list[str]]:
    """Paragraphs of sentences of reST-like documentation text (docstrings, the pydoc topics).

    Paragraphs are separated by blank lines. An indented paragraph is a code or grammar block: each
    of its lines is one "sentence" (stripped; a window never spans two statements). Other paragraphs
    are joined into one line, white space collapsed, and cut after ``.``/``!``/``?`` followed by a
    capital, a quote, a backtick, ``(`` or ``*``. Heading underlines (``*****``) are dropped, and so are
    paragraphs left empty.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        lines = [line for line in paragraph.split("\n") if line.strip() and not _UNDERLINE.match(line)]
        if not lines:
            continue
        if all(line[:1] in (" ", "\t") for line in lines):          # code block
            out.append([line.strip() for line in lines])
        else:
            out.append([s for s in _SENTENCE_END.split(" ".join(" ".join(lines).split())) if s])
    return out


def split_sentences(text: str) -> list[str]:
    """The sentences of :func:`sentences`, paragraphs flattened (the word2vec corpora's splitter)."""
    return [s for para in sentences(text) for s in para]


def passages(texts: list[str], window: int = 2, min_chars: int = 20) -> list[str]:
    """Short passages: every run of 1..``window`` consecutive sentences of one paragraph, ≥ ``min_chars``, each once.

    Order: first occurrence. Used to turn a few thousand documents into tens of thousands of
    short texts (the vector-search benchmark's real data).
    """
    if window < 1 or min_chars < 1:
        raise ValueError(f"window and min_chars must be positive, got {window}, {min_chars}")
    out: dict[str, None] = {}
    for text in texts:
        for para in sentences(text):
            for n in range(1, window + 1):
                for i in range(len(para) - n + 1):
                    piece = " ".join(para[i:i + n])
                    if len(piece) >= min_chars:
                        out.setdefault(piece)
    return list(out)


def stdlib_passages(window: int = 2, min_chars: int = 20) -> list[str]:
    """:func:`passages` of the pinned docstrings and the Python documentation topics (``pydoc_data.topics``)."""
    from pydoc_data.topics import topics

    texts = [d.text for d in stdlib_docstrings()] + [topics[key] for key in sorted(topics)]
    return passages(texts, window, min_chars)


if __name__ == "__main__":
    if "--modules" in sys.argv:   # rediscover the module list first (a new Python version)
        modules = discover_stdlib_modules()
        MODULE_LIST.write_text(f"# stdlib modules for course_lib.corpus (Python {sys.version.split()[0]}); "
                               "regenerate: python -I -m course_lib.corpus --modules\n" + "\n".join(modules) + "\n")
        print(f"{len(modules)} modules -> {MODULE_LIST}")
    print(f"{write_pinned()} docstrings -> {PINNED}")
