"""WebGPT's loop on the local web, and the check that an answer is supported by its quotes.

Nakano et al. 2021 ("WebGPT: Browser-assisted question-answering with human feedback") show the
model, at every step, a summary of the state — question, quotes so far, past actions, the current
page window, actions left (their Figure 1b / Table 1) — and ask for the next command. The episode
ends with ``answer:`` or when the step cap or the token budget runs out (never open-ended). An answer
is judged *supported* (§4 "factual accuracy" / "supported by references") when

1. every quote is an exact span of the page it came from (the browser refuses any other quote, and
   :func:`check_support` re-checks it against the web), and
2. the answer's content words are covered by its quotes: at least ``threshold`` of them appear in
   the quoted text. A lexical proxy for the human "is this claim supported" judgement: cheap,
   repeatable, and blind to paraphrase, which the notebook shows.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field

from course_lib.webgpt.browser import COMMANDS, LocalWeb, Quote, TextBrowser, normalize_space

SYSTEM = ("You answer questions about Python by browsing its documentation. Reply with exactly one command:\n"
          "search: <query> | click: <link number> | scroll: down | find: <text> | "
          "quote: <exact sentence from the page> | back | answer: <short answer>\n"
          "Quote the sentences that support your answer before you answer.")
STOP_WORDS = frozenset("""a an the and or of to in on for is are was be by with as at it its this that these
those from which what when how why who whom does do did not no can may will would should into than then
there their they you your we our use used using""".split())


@dataclass
class BrowseStep:
    """One WebGPT command (Nakano et al. 2021, Table 1), the observation it produced, its tokens and seconds."""
    command: str
    observation: str
    tokens: int
    seconds: float


@dataclass
class Episode:
    """One WebGPT episode: question, answer (None if none), collected quotes, steps and why it stopped."""
    question: str
    answer: str | None
    quotes: list[Quote]
    steps: list[BrowseStep] = field(default_factory=list)
    stopped: str = "answer"   # "answer", "step cap" or "token budget"


def state_prompt(question: str, browser: TextBrowser, past: list[str], steps_left: int) -> str:
    """The state WebGPT shows its model each step (Figure 1b): question, quotes, past actions, page, actions left."""
    quotes = "\n".join(f"[{i + 1}] {q.text}" for i, q in enumerate(browser.quotes)) or "none"
    actions = "; ".join(a if len(a) <= 60 else a[:57] + "..." for a in past[-6:]) or "none"
    return (f"Question: {question}\nQuotes:\n{quotes}\nPast actions: {actions}\n\n{browser.render()}\n\n"
            f"Actions left: {steps_left}\nNext command:")


def parse_command(reply: str) -> str | None:
    """The first line that starts with a known command (``click: 2``), or None."""
    for line in reply.strip().splitlines():
        name = line.strip().split(":", 1)[0].strip().lower()
        if name in COMMANDS:
            return line.strip()
    return None


def _constrained(model, grammar, browser: TextBrowser, answer_only: bool):
    """A shallow copy of ``model`` whose replies follow ``grammar`` for the browser's current state."""
    if not hasattr(model, "constraint"):
        raise TypeError(f"grammar needs a model with a 'constraint' hook (LocalChatModel), got {type(model).__name__}")
    constrained = copy.copy(model)
    constrained.constraint = lambda messages, tools: grammar.processor(browser.allowed(answer_only))
    return constrained


def run_episode(model, browser: TextBrowser, question: str, max_steps: int = 6, max_tokens: int = 64,
                token_budget: int = 8000, grammar=None, temperature: float = 0.0, seed: int | None = None) -> Episode:
    """Browse until ``answer:``, ``max_steps`` commands, or ``token_budget`` tokens (prompt + reply) are spent.

    ``grammar`` (a :class:`~course_lib.constrained.webgpt_commands.CommandGrammar`, for a model with a
    ``constraint`` hook) admits only commands the browser accepts in its current state, and only ``answer``
    on the last step, so a constrained episode always ends with an answer unless a reply is cut by
    ``max_tokens``. ``temperature > 0`` samples (``seed + step`` seeds each step), as best-of-n needs.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    if max_steps < 1 or token_budget < 1:
        raise ValueError(f"max_steps and token_budget must be >= 1, got {max_steps} and {token_budget}")
    episode, past, spent = Episode(question, None, browser.quotes), [], 0
    for step in range(max_steps):
        start = time.perf_counter()
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": state_prompt(question, browser, past, max_steps - step)}]
        chooser = model if grammar is None else _constrained(model, grammar, browser, step == max_steps - 1)
        options = {} if temperature == 0 else {"temperature": temperature,
                                               "seed": None if seed is None else seed + step}
        reply = chooser.chat(messages, max_tokens=max_tokens, stop=["\n"], **options)
        tokens = reply.usage.get("total_tokens", 0)
        spent += tokens
        command = parse_command(reply.content)
        if command is None:
            observation = f"Error: reply with one command ({', '.join(COMMANDS)}), got {reply.content[:60]!r}"
        else:
            observation = browser.execute(command)
        episode.steps.append(BrowseStep(command or reply.content, observation, tokens, time.perf_counter() - start))
        past.append(command or "(invalid)")
        if browser.answer_text is not None:
            episode.answer = browser.answer_text
            return episode
        if spent >= token_budget:
            episode.stopped = "token budget"
            return episode
    episode.stopped = "step cap"
    return episode


def support_score(episode: Episode, web: LocalWeb) -> float:
    """The reward best-of-n ranks by: the answer's coverage by its quotes; 0 without an answer or with a false quote."""
    check = check_support(episode.answer, episode.quotes, web)
    return check["coverage"] if episode.answer and episode.quotes and check["quotes_exist"] else 0.0


def best_of_n(model, new_browser, question: str, web: LocalWeb, n: int = 4, temperature: float = 0.7,
              seed: int = 0, **episode_options) -> tuple[Episode, list[Episode], list[float]]:
    """WebGPT's rejection sampling (Nakano et al. 2021, §3.3): ``n`` sampled episodes, the best by :func:`support_score`.

    ``new_browser()`` makes a fresh browser per sample; sample ``i`` is seeded ``seed + 100 * i``. Returns
    the chosen episode (the first of the best on ties), all of them and their scores.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not temperature > 0:
        raise ValueError(f"best-of-n needs samples: temperature must be > 0, got {temperature!r}")
    episodes = [run_episode(model, new_browser(), question, temperature=temperature, seed=seed + 100 * i,
                            **episode_options) for i in range(n)]
    scores = [support_score(e, web) for e in episodes]
    return episodes[scores.index(max(scores))], episodes, scores


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` longer than two letters and not stop words (the support check's unit)."""
    return [w for w in re.findall(r"[a-z0-9_]+", text.lower()) if len(w) > 2 and w not in STOP_WORDS]


def check_support(answer: str | None, quotes: list[Quote], web: LocalWeb, threshold: float = 0.5) -> dict:
    """``{"quotes_exist", "coverage", "supported"}`` for one answer (see the module docstring)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    exist = all(q.page_id in web.pages and normalize_space(q.text) in normalize_space(web[q.page_id].text) for q in quotes)
    words = content_words(answer or "")
    quoted = set(content_words(" ".join(q.text for q in quotes)))
    coverage = sum(w in quoted for w in words) / len(words) if words else 0.0
    return {"quotes_exist": exist, "coverage": coverage,
            "supported": bool(answer) and bool(quotes) and exist and coverage >= threshold}


def evaluate(episodes: list[Episode], web: LocalWeb, gold_pages: list[list[str]] | None = None,
             threshold: float = 0.5) -> dict[str, float]:
    """Rates over episodes: answered, quotes exist, supported, and (with gold pages) quoted a gold page."""
    if not episodes:
        raise ValueError("evaluate needs at least one episode")
    if gold_pages is not None and len(gold_pages) != len(episodes):
        raise ValueError(f"need one gold page list per episode, got {len(gold_pages)} for {len(episodes)}")
    checks = [check_support(e.answer, e.quotes, web, threshold) for e in episodes]
    n = len(episodes)
    report = {"answered": sum(e.answer is not None for e in episodes) / n,
              "quotes_exist": sum(c["quotes_exist"] and bool(e.quotes) for c, e in zip(checks, episodes)) / n,
              "supported": sum(c["supported"] for c in checks) / n,
              "mean_steps": sum(len(e.steps) for e in episodes) / n}
    if gold_pages is not None:
        report["quoted_gold_page"] = sum(any(q.page_id in g for q in e.quotes)
                                         for e, g in zip(episodes, gold_pages)) / n
    return report
