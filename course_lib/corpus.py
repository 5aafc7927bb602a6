"""Docstrings of the Python standard library: a real retrieval corpus that ships with Python (§4).

The module list is pinned in ``data/stdlib_modules.txt`` (made by :func:`discover_stdlib_modules`,
``python -m course_lib.corpus``), so every machine collects the same modules; the texts come from the
running Python's own docstrings (``inspect.getdoc``). Used by the embedding, vector-database and RAG
chapters::

    docs = stdlib_docstrings()            # [Doc(id="json.dumps", module="json", kind="function", text=...), ...]
"""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

MODULE_LIST = Path(__file__).resolve().parent.parent / "data" / "stdlib_modules.txt"
# side effects on import (open a browser, print a poem, start Tk), test suites, or deprecated shims
_SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip",
         "venv", "pydoc_data", "msilib", "winreg", "winsound", "nt", "msvcrt", "_msi", "distutils", "crypt",
         "nis", "spwd", "ossaudiodev", "sndhdr", "imghdr", "cgi", "cgitb", "telnetlib", "nntplib", "pipes",
         "uu", "xdrlib", "chunk", "mailcap", "audioop", "aifc", "sunau", "smtpd", "asynchat", "asyncore", "imp"}


@dataclass(frozen=True)
class Doc:
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
    """The pinned module list (``data/stdlib_modules.txt``)."""
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


def stdlib_docstrings(modules: list[str] | None = None, min_chars: int = 40) -> list[Doc]:
    """Every docstring of at least ``min_chars`` characters in ``modules`` (default: the pinned list).

    A text seen before (re-exports, inherited docs) is kept once, under its first id; modules the
    running Python lacks are skipped. Order is stable: module list order, then names sorted.
    """
    if min_chars < 1:
        raise ValueError(f"min_chars must be positive, got {min_chars}")
    docs, seen = [], set()
    for name in modules if modules is not None else stdlib_module_names():
        try:
            module = _quiet_import(name)
        except Exception:   # noqa: BLE001
            continue
        for qual, kind, obj in [("", "module", module), *_members(module)]:
            text = inspect.getdoc(obj) or ""
            if len(text) >= min_chars and text not in seen:
                seen.add(text)
                docs.append(Doc(f"{name}.{qual}" if qual else name, name, kind, text))
    return docs


if __name__ == "__main__":
    modules = discover_stdlib_modules()
    MODULE_LIST.write_text(f"# stdlib modules for course_lib.corpus (Python {sys.version.split()[0]}); "
                           "regenerate: python -m course_lib.corpus\n" + "\n".join(modules) + "\n")
    print(f"{len(modules)} modules -> {MODULE_LIST}")
