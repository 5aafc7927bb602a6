"""Build ``course_lib/datasets/tool_calls.jsonl`` (read by ``course_lib.tool_calls``): requests in plain English and the JSON tool call that answers each.

    python data/make_tool_calls.py

Three tools (the agent chapter uses the same ones): ``weather(city)``, ``convert(amount, from, to)``
and ``timer(minutes)``. Each request is drawn from hand-written phrasings with random arguments;
the answer is one compact JSON object ``{"tool": ..., "args": {...}}``. Train and test requests
use disjoint phrasings *and* disjoint argument values (cities, currency pairs, amounts), so the
held-out score measures following the format and copying arguments, not memorising them.
Deterministic (seeded).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CITIES = ["Paris", "Tokyo", "Berlin", "Madrid", "Rome", "Cairo", "Lima", "Oslo", "Seoul", "Delhi", "Sydney",
          "Toronto", "Nairobi", "Dublin", "Vienna", "Prague", "Lisbon", "Athens", "Bangkok", "Hanoi", "Boston",
          "Chicago", "Denver", "Miami", "Zurich", "Munich", "Osaka", "Shanghai", "Beijing", "Warsaw"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP", "CNY", "CHF", "CAD", "AUD"]
PHRASES = {
    "weather": ["What's the weather in {city}?", "Is it raining in {city} right now?", "How hot is it in {city}?",
                "Weather for {city}, please.", "Tell me the forecast for {city}.", "Do I need a coat in {city} today?",
                "Check the weather in {city}.", "What's it like outside in {city}?"],
    "convert": ["Convert {amount} {src} to {dst}.", "How much is {amount} {src} in {dst}?",
                "Change {amount} {src} into {dst}.", "What are {amount} {src} worth in {dst}?",
                "I have {amount} {src}; how many {dst} is that?", "{amount} {src} to {dst}, please.",
                "Exchange {amount} {src} for {dst}.", "Turn {amount} {src} into {dst}."],
    "timer": ["Set a timer for {minutes} minutes.", "Remind me in {minutes} minutes.",
              "Start a {minutes} minute timer.", "Timer: {minutes} minutes.", "Wake me up in {minutes} minutes.",
              "Count down {minutes} minutes.", "I need a {minutes}-minute timer.", "Alarm in {minutes} minutes, please."],
}


def make(rng: random.Random, tool: str, phrase: str, cities: list[str], pairs: list[tuple[str, str]],
         numbers: list[int]) -> dict:
    if tool == "weather":
        args = {"city": rng.choice(cities)}
        text = phrase.format(**args)
    elif tool == "convert":
        src, dst = rng.choice(pairs)
        args = {"amount": rng.choice(numbers), "from": src, "to": dst}
        text = phrase.format(amount=args["amount"], src=src, dst=dst)
    else:
        args = {"minutes": rng.choice(numbers)}
        text = phrase.format(**args)
    return {"request": text, "call": {"tool": tool, "args": args}}


def main() -> None:
    rng = random.Random(0)
    cities = CITIES[:]
    rng.shuffle(cities)
    pairs = [(a, b) for a in CURRENCIES for b in CURRENCIES if a != b]
    rng.shuffle(pairs)
    numbers = list(range(2, 100))
    rng.shuffle(numbers)
    split = {"train": (cities[:22], pairs[:40], numbers[:70]), "test": (cities[22:], pairs[40:], numbers[70:])}
    rows = []
    for name, count in (("train", 240), ("test", 48)):
        values = split[name]
        for i in range(count):
            tool = ("weather", "convert", "timer")[i % 3]
            phrases = PHRASES[tool][:6] if name == "train" else PHRASES[tool][6:]
            rows.append({"split": name, **make(rng, tool, rng.choice(phrases), *values)})
    path = Path(__file__).resolve().parents[1] / "course_lib" / "datasets" / "tool_calls.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} examples to {path}")


if __name__ == "__main__":
    main()
