"""Write ``course_lib/datasets/agent_tasks.jsonl``: the chapter-10 multi-step tasks (seeded, byte for byte).

Five families (``course_lib.agent.tasks``); every question template belongs to one split and every value
pool is cut in two, so ``dev`` and ``test`` share no phrasing and no value. The gold answer of each task
comes from running its expert plan with the real tools (calculator, sandboxed Python, unit and date
tools, BM25 search over the Python docs)::

    PYTHONPATH=. python scripts/make_agent_tasks.py          # rewrites the file
    PYTHONPATH=. python scripts/make_agent_tasks.py --check  # exit 1 if the file differs
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import date, timedelta
from pathlib import Path

from course_lib.agent.tasks import fill, result_value, task_tools

OUT = Path(__file__).resolve().parents[1] / "course_lib" / "datasets" / "agent_tasks.jsonl"
SEED = 10
COUNTS = {"dev": 40, "test": 45}  # tasks per family and split

TEMPLATES = {  # family -> split -> phrasings
    "arith": {"dev": ["First multiply {a} by {b}, then add {c} to the result. What do you get?",
                      "Compute {a} * {b}, then subtract {c} from it. What is the result?"],
              "test": ["Take the product of {a} and {b} and add {c} to it. What is the total?",
                       "What is {a} times {b}, minus {c}?"]},
    "units": {"dev": ["A runner does {n} laps of {x} km. How many miles is that in total?",
                      "{n} boxes weigh {x} kg each. What is their total weight in pounds?"],
              "test": ["A cyclist rides {x} km on each of {n} days. What is the total distance in miles?",
                       "Each of {n} parcels weighs {x} kg. How many pounds do they weigh together?"]},
    "dates": {"dev": ["What day of the week is {n} days after {d1}? Give the date too.",
                      "How many weeks are there from {d1} to {d2}? Divide the days by 7."],
              "test": ["Which weekday falls {n} days after {d1}? Say which date it is as well.",
                       "Count the days from {d1} to {d2} and express them in weeks."]},
    "python": {"dev": ["Run this Python code and multiply what it prints by {k}: {code}",
                       "Run {code} with Python, then add {k} to the output."],
               "test": ["Execute the Python program {code} and add {k} to what it prints.",
                        "What does {code} print in Python, multiplied by {k}?"]},
    "docs": {"dev": ["Search the Python docs for '{q1}' and for '{q2}'. Which entry comes first for each?",
                     "Look up '{q1}' in the Python docs, then '{q2}'. Name the top entry of each search."],
             "test": ["In the Python documentation, find the top result for '{q1}' and the top result for '{q2}'.",
                      "Which documentation entries come first when searching for '{q1}' and then for '{q2}'?"]},
}
PROGRAMS = {"dev": ["print(sum(range({n})))", "print(len(str(2 ** {n})))", "print(sum(i * i for i in range({n})))"],
            "test": ["print(sum(int(c) for c in str(2 ** {n})))", "print(len([p for p in range(2, {n}) "
                     "if all(p % d for d in range(2, p))]))", "print(max(i % 7 for i in range({n})) + {n})"]}
QUERIES = ["pretty-print JSON", "sort a list in place", "compile a regular expression", "today's date",
           "read a CSV file", "temporary directory", "environment variables", "random integer in a range",
           "square root", "copy a file", "join path components", "current working directory",
           "parse command-line arguments", "deep copy an object", "count hashable items", "default dictionary",
           "named tuple fields", "heap queue push", "binary search insertion point", "decimal rounding",
           "fractions from floats", "URL quoting", "base64 encode bytes", "SHA-256 digest", "gzip compress",
           "zip archive extract", "thread lock", "process pool", "subprocess run a command", "sleep for seconds",
           "format a time string", "parse an ISO date", "calendar month", "logging level", "unit test assertion",
           "iterate over pairs", "chain iterables", "cache function results", "partial function application",
           "abstract base class", "dataclass fields", "enum members", "type hints", "string template substitution",
           "text wrapping", "difference between sequences", "pickle an object", "SQLite connection",
           "XML element tree", "HTTP request", "socket connection", "signal handler", "exit the interpreter",
           "with statement", "try statement", "lambda expressions", "global statement", "import statement",
           "yield expressions", "assert statement"]


def pools(rng: random.Random) -> dict:
    """Every value pool cut in two halves: ``{split: {name: values}}``."""
    def cut(values):
        values = list(values)
        rng.shuffle(values)
        half = len(values) // 2
        return {"dev": values[:half], "test": values[half:]}

    days = [date(2023, 1, 1) + timedelta(days=i) for i in range(4 * 365)]
    parts = {"ab": cut(range(12, 99)), "c": cut(range(101, 999)), "n": cut(range(3, 30)),
             "x": cut([round(v * 0.5, 1) for v in range(3, 60)]), "days": cut(range(5, 400)),
             "date": cut(days), "k": cut(range(2, 40)), "pn": cut(range(10, 60)), "q": cut(QUERIES)}
    return {split: {name: halves[split] for name, halves in parts.items()} for split in ("dev", "test")}


def make(family: str, split: str, t: int, v: dict, rng: random.Random) -> tuple[dict, list, str]:
    """(template slots, plan, answer template) of one task from template ``t`` with values drawn from ``v``."""
    pick = rng.choice
    if family == "arith":
        a, b, c = pick(v["ab"]), pick(v["ab"]), pick(v["c"])
        op = "+" if "add" in TEMPLATES[family][split][t] else "-"
        plan = [{"tool": "calculator", "args": {"expression": f"{a} * {b}"}},
                {"tool": "calculator", "args": {"expression": f"{{0}} {op} {c}"}}]
        return dict(a=a, b=b, c=c), plan, "{1}"
    if family == "units":
        n, x = pick(v["n"]), pick(v["x"])
        src, dst = ("km", "mi") if t == 0 else ("kg", "lb")
        plan = [{"tool": "calculator", "args": {"expression": f"{n} * {x}"}},
                {"tool": "convert_units", "args": {"value": {"ref": 0}, "from_unit": src, "to_unit": dst}}]
        return dict(n=n, x=x), plan, "{1}"
    if family == "dates":
        d1 = pick(v["date"])
        if t == 0:
            n = pick(v["days"])
            plan = [{"tool": "add_days", "args": {"date": d1.isoformat(), "days": n}},
                    {"tool": "weekday", "args": {"date": "{0}"}}]
            return dict(n=n, d1=d1.isoformat()), plan, "{0} is a {1}"
        d2 = d1 + timedelta(days=pick(v["days"]))
        plan = [{"tool": "date_diff", "args": {"start": d1.isoformat(), "end": d2.isoformat()}},
                {"tool": "calculator", "args": {"expression": "{0} / 7"}}]
        return dict(d1=d1.isoformat(), d2=d2.isoformat()), plan, "{1}"
    if family == "python":
        code, k = pick(PROGRAMS[split]).format(n=pick(v["pn"])), pick(v["k"])
        op = "*" if "multipl" in TEMPLATES[family][split][t] else "+"
        plan = [{"tool": "python", "args": {"code": code}},
                {"tool": "calculator", "args": {"expression": f"{{0}} {op} {k}"}}]
        return dict(code=f"`{code}`", k=k), plan, "{1}"
    q1, q2 = rng.sample(v["q"], 2)
    plan = [{"tool": "search", "args": {"query": q1}}, {"tool": "search", "args": {"query": q2}}]
    return dict(q1=q1, q2=q2), plan, "{0}; {1}"


def solve(plan: list, tools) -> list[str]:
    """Run the plan with the real tools; the value read from each observation."""
    results: list[str] = []
    for step in plan:
        observation = tools.call(step["tool"], fill(step["args"], results))
        if observation.startswith("Error"):
            raise RuntimeError(f"the expert plan failed at {step}: {observation}")
        results.append(result_value(step["tool"], observation))
    return results


def build() -> str:
    """The whole file's text."""
    rng = random.Random(SEED)
    values, tools, lines = pools(rng), task_tools(), []
    for split in ("dev", "test"):
        for family, templates in TEMPLATES.items():
            seen = set()
            for i in range(COUNTS[split]):
                t = i % len(templates[split])
                while True:
                    slots, plan, answer = make(family, split, t, values[split], rng)
                    key, question = (t, tuple(sorted(slots.items()))), templates[split][t].format(**slots)
                    if key in seen:
                        continue
                    results = solve(plan, tools)
                    texts = [r for j, r in enumerate(results) if f"{{{j}}}" in answer]
                    if not any(text.lower() in question.lower() for text in texts):  # copying the question must not pass
                        break
                seen.add(key)
                gold = {"number": float(results[-1])} if answer == "{1}" else {"texts": texts}
                lines.append(json.dumps({
                    "id": f"{split}-{family}-{i:03d}", "split": split, "family": family,
                    "template": f"{family}.{split}{t}", "question": question,
                    "plan": plan, "answer": answer, "gold": gold}, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the shipped file differs from a fresh build")
    text = build()
    if parser.parse_args().check:
        same = OUT.read_text(encoding="utf-8") == text
        print("agent_tasks.jsonl is up to date" if same else "agent_tasks.jsonl differs from a fresh build")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count(chr(10))} tasks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
