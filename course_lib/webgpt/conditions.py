"""WebGPT's success table: the same held-out questions under each condition (free, grammar, adapter, both, endpoint).

What each piece buys is measured by switching it on alone: the grammar (constrained decoding,
:mod:`course_lib.constrained.webgpt_commands`), the behaviour-cloning adapter (``data/adapters/webgpt``, trained
by ``scripts/train_webgpt_adapter.py`` on dev demonstrations), both, and an OpenAI-compatible endpoint when one is
configured. Best-of-n (Nakano et al. 2021, §3.3) samples ``n`` episodes at ``temperature`` and keeps the one the
support score ranks first; best-of-1 is the first of those samples, so the two differ only in the choosing.

A row: supported-answer rate (the answer passes :func:`~course_lib.webgpt.episode.check_support`), answered rate,
quoted-a-gold-page rate, mean steps, tokens (prompt + reply, summed over the steps and over all ``n`` samples) and
seconds per question.
"""

from __future__ import annotations

import time
from pathlib import Path

from course_lib.webgpt.episode import Episode, best_of_n, check_support, run_episode
from course_lib.webgpt.tasks import WebTask, new_browser, python_docs_web

ADAPTER = Path(__file__).resolve().parents[2] / "data" / "adapters" / "webgpt"


def adapted_smollm2(folder: str | Path = ADAPTER):
    """SmolLM2-135M-Instruct with the shipped WebGPT adapter loaded (hash verified), and the adapter's config."""
    from course_lib import pretrained
    from course_lib.peft.shipped import load_shipped

    model = pretrained.smollm2()
    config = load_shipped(model, folder)
    return model.eval(), config


def summarize(name: str, episodes: list[Episode], tasks: list[WebTask], seconds: list[float]) -> dict:
    """One row of the success table for ``episodes`` (the chosen one per task) and the wall ``seconds`` per task."""
    if len(episodes) != len(tasks) or len(seconds) != len(tasks) or not tasks:
        raise ValueError(f"need one episode and one time per task, got {len(episodes)}, {len(seconds)} for {len(tasks)}")
    web, _ = python_docs_web()
    n = len(tasks)
    checks = [check_support(e.answer, e.quotes, web) for e in episodes]
    return {"condition": name, "questions": n,
            "supported": sum(c["supported"] for c in checks) / n,
            "answered": sum(e.answer is not None for e in episodes) / n,
            "quoted gold page": sum(any(q.page_id in t.gold_pages for q in e.quotes)
                                    for e, t in zip(episodes, tasks)) / n,
            "mean steps": sum(len(e.steps) for e in episodes) / n,
            "tokens / question": sum(s.tokens for e in episodes for s in e.steps) / n,
            "seconds / question": sum(seconds) / n}


def run_condition(name: str, model, tasks: list[WebTask], grammar=None, progress=None, **episode_options) -> tuple[dict, list[Episode]]:
    """Greedy episodes of ``model`` (with ``grammar`` if given) on ``tasks``: the row and the episodes."""
    episodes, seconds = [], []
    for task in progress(tasks, desc=name) if progress else tasks:
        start = time.perf_counter()
        episodes.append(run_episode(model, new_browser(), task.question, grammar=grammar, **episode_options))
        seconds.append(time.perf_counter() - start)
    return summarize(name, episodes, tasks, seconds), episodes


def run_best_of(name: str, model, tasks: list[WebTask], n: int = 4, grammar=None, temperature: float = 0.7, seed: int = 0,
                progress=None, **episode_options) -> tuple[dict, dict, list[tuple]]:
    """Best-of-``n`` and best-of-1 (the first sample) rows, and per task ``(chosen, samples, scores)``."""
    web, _ = python_docs_web()
    picks, seconds = [], []
    for task in progress(tasks, desc=f"{name}, best-of-{n}") if progress else tasks:
        start = time.perf_counter()
        picks.append(best_of_n(model, new_browser, task.question, web, n=n, temperature=temperature, seed=seed,
                               grammar=grammar, **episode_options))
        seconds.append(time.perf_counter() - start)
    firsts = [samples[0] for _, samples, _ in picks]
    one = summarize(f"{name}, best-of-1 (T={temperature})", firsts, tasks, [s / n for s in seconds])
    best = summarize(f"{name}, best-of-{n} (T={temperature})", [p[0] for p in picks], tasks, seconds)
    best["tokens / question"] = sum(s.tokens for _, samples, _ in picks for e in samples for s in e.steps) / len(tasks)
    return best, one, picks
