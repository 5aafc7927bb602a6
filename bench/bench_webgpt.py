"""WebGPT benchmark (chapter 11): the success table on the whole test split, SmolLM2-135M on the CPU.

Conditions (``course_lib.webgpt.conditions``): free (no adapter, no grammar), grammar only, adapter only,
adapter + grammar (greedy), adapter + grammar best-of-4 and best-of-1 (T = 0.7, the same samples), and an
OpenAI-compatible endpoint when ``OPENAI_BASE_URL`` is set (skipped with a printed reason otherwise). The row's
ratio is the supported-answer rate of adapter + grammar over that of the free model.
"""

from __future__ import annotations

import os

from bench.harness import BenchResult, benchmark
from course_lib.chat import LocalChatModel, OpenAIChatModel
from course_lib.constrained.webgpt_commands import CommandGrammar
from course_lib.webgpt.conditions import adapted_smollm2, run_best_of, run_condition
from course_lib.webgpt.tasks import load_tasks

MAX_STEPS, MAX_TOKENS, N = 6, 48, 4


def _table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("  | " + " | ".join(cols) + " |\n  |" + "---|" * len(cols))
    for r in rows:
        print("  | " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


@benchmark("webgpt: supported-answer rate on the test split, adapter + grammar vs free (SmolLM2-135M)")
def success_table() -> BenchResult:
    from course_lib import pretrained

    tasks = load_tasks("test")
    base = LocalChatModel()
    adapted = LocalChatModel(adapted_smollm2()[0], base.tokenizer, name="smollm2 + webgpt adapter")
    grammar = CommandGrammar.from_tokenizer(pretrained.smollm2_tokenizer())
    options = {"max_steps": MAX_STEPS, "max_tokens": MAX_TOKENS}
    rows = [run_condition("free", base, tasks, **options)[0],
            run_condition("grammar", base, tasks, grammar, **options)[0],
            run_condition("adapter", adapted, tasks, **options)[0],
            run_condition("adapter + grammar", adapted, tasks, grammar, **options)[0]]
    best, one, _ = run_best_of("adapter + grammar", adapted, tasks, N, grammar, **options)
    rows += [one, best]
    if os.environ.get("OPENAI_BASE_URL"):
        remote = OpenAIChatModel()
        rows.append(run_condition(remote.name, remote, tasks, **options)[0])
    else:
        print("  OPENAI_BASE_URL is not set: the endpoint row is skipped")
    _table(rows)
    return BenchResult(rows[3]["supported"], rows[0]["supported"], "supported-answer rate", higher_is_better=True,
                       reference_name="free SmolLM2 (no adapter, no grammar)",
                       notes=f"{len(tasks)} test questions, {MAX_STEPS} steps, {MAX_TOKENS} tokens per command",
                       extra={r["condition"]: {k: v for k, v in r.items() if k != "condition"} for r in rows})
