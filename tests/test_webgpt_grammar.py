"""The WebGPT command grammar: a scripted random model constrained by it always writes a command the browser runs."""

import copy
import random

import pytest
import torch

from course_lib.chat import ChatReply
from course_lib.constrained.grammar import Automaton
from course_lib.constrained.webgpt_commands import BARE, FREE, CommandGrammar, check_spec, command_matcher
from course_lib.webgpt.browser import LocalWeb, TextBrowser
from course_lib.webgpt.episode import parse_command, run_episode
from tests.test_webgpt import DOCS, WordSearch

# a small byte-level vocabulary: every byte, some words, and two special tokens (EOS last)
WORDS = [b"search", b"click", b"quote", b"answer", b"scroll", b"back", b"find", b": ", b" down", b" up",
         b"Serialize", b" obj", b" JSON", b"12", b"10", b" the", b"\n", b".\n", b"json"]
VOCAB = [bytes([b]) for b in range(256)] + WORDS + [None, None]
EOS = len(VOCAB) - 1


def decode(ids):
    return b"".join(VOCAB[i] for i in ids if VOCAB[i]).decode("utf-8", errors="replace")


class RandomModel:
    """A scripted chat model: uniform random logits (seeded), masked by its ``constraint`` hook; EOS favoured."""

    def __init__(self, seed, eos_bonus=2.0):
        self.rng, self.eos_bonus, self.constraint, self.name = torch.Generator().manual_seed(seed), eos_bonus, None, "random"

    def chat(self, messages, max_tokens=64, **kwargs):
        processor = self.constraint(messages, None) if self.constraint else None
        ids = [0]   # a one-token "prompt"
        for _ in range(max_tokens):
            logits = torch.rand(1, len(VOCAB), generator=self.rng)
            logits[0, EOS] += self.eos_bonus
            if processor is not None:
                logits = processor(torch.tensor([ids]), logits)
            token = int(logits.argmax())
            if token == EOS:
                break
            ids.append(token)
        return ChatReply(decode(ids[1:]), usage={"total_tokens": len(ids)})


@pytest.fixture
def grammar():
    return CommandGrammar(VOCAB, EOS)


def browsers():
    """A browser in each kind of state: nothing open, a result page, a page, a page after a click from a page."""
    web = LocalWeb.from_documents(DOCS)
    states = [[], ["search: json indent"], ["search: json indent", "click: 0"],
              ["search: json", "click: 0", "click: 0"]]
    out = []
    for script in states:
        b = TextBrowser(web, WordSearch(), window=10)
        for line in script:
            assert not b.execute(line).startswith("Error"), line
        out.append(b)
    return out


@pytest.mark.parametrize("state", range(4))
def test_every_sampled_path_is_a_command_the_browser_runs(grammar, state):
    """200 random walks through the masks per state: each ends (EOS) in one command that parses and runs."""
    browser = browsers()[state]
    spec = browser.allowed()
    seen = set()
    for seed in range(200):
        model = RandomModel(seed)
        model.constraint = lambda messages, tools: grammar.processor(spec)
        text = model.chat([], max_tokens=400).content
        assert parse_command(text) == text, text
        observation = copy.deepcopy(browser).execute(text)
        assert not observation.startswith("Error"), (text, observation)
        seen.add(text.split(":")[0])
    assert seen == {name for name, value in spec.items() if value != []}, "every admitted command is reachable"


def test_without_the_grammar_random_text_is_not_a_command():
    texts = [RandomModel(seed).chat([]).content for seed in range(50)]
    assert sum(parse_command(t) is not None for t in texts) < 5    # the grammar, not luck, makes commands


@pytest.mark.parametrize("max_steps", [1, 3, 6])
def test_constrained_episodes_end_with_an_answer(grammar, max_steps):
    web = LocalWeb.from_documents(DOCS)
    for seed in range(25):
        browser = TextBrowser(web, WordSearch(), window=10)
        episode = run_episode(RandomModel(seed, eos_bonus=0.5), browser, "How do I pretty-print JSON?",
                              max_steps=max_steps, max_tokens=400, grammar=grammar)
        assert episode.stopped == "answer" and episode.answer, [s.command for s in episode.steps]
        assert len(episode.steps) <= max_steps
        assert not any(s.observation.startswith("Error") for s in episode.steps), [s.observation for s in episode.steps]


def test_the_last_step_admits_only_answer(grammar):
    browser = browsers()[2]
    for seed in range(30):
        model = RandomModel(seed)
        model.constraint = lambda messages, tools: grammar.processor(browser.allowed(answer_only=True))
        assert model.chat([], max_tokens=400).content.startswith("answer: ")


def test_grammar_language():
    browser = browsers()[2]                  # json.dumps page open, links back to json
    a = Automaton(command_matcher(browser.allowed()))
    sentences = browser.quotable()
    assert sentences[0] == "Serialize obj to a JSON formatted str."
    assert all(a.matches(f"quote: {s}") for s in sentences)
    accepted = ["search: json", "click: 0", "scroll: down", "scroll: up", "find: indent", "back", "answer: use indent"]
    refused = ["click: 1", "click: 01", "quote: Serialize obj", "quote: a sentence that is not there", "answer:",
               "answer: ", "answer: two\nlines", "search: x\n", "fly: away", "back: 1", "Search: json", "scroll: left"]
    assert all(a.matches(t) for t in accepted), [t for t in accepted if not a.matches(t)]
    assert not any(a.matches(t) for t in refused), [t for t in refused if a.matches(t)]
    first = Automaton(command_matcher(browsers()[0].allowed()))
    assert not first.matches("back") and not first.matches("click: 0") and first.matches("search: x")


@pytest.mark.parametrize("spec, message", [
    ({}, "non-empty dict"), ({"click:": FREE}, "plain ASCII"), ({"click": [1]}, "list of strings"),
    ({"click": ["a\nb"]}, "single lines"), ({"click": []}, "admits no command"), ({"quote": [" "]}, "non-blank")])
def test_bad_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        check_spec(spec)


def test_bad_eos_id():
    with pytest.raises(ValueError, match="eos_id"):
        CommandGrammar(VOCAB, len(VOCAB))


def test_real_tokenizer_the_expert_demonstrations_are_grammatical():
    """SmolLM2's tokenizer: every command of the expert's dev episodes passes the masks token by token."""
    from course_lib.pretrained import smollm2_tokenizer
    from course_lib.webgpt.tasks import ExpertPolicy, load_tasks, new_browser

    tok = smollm2_tokenizer()
    grammar = CommandGrammar.from_tokenizer(tok)
    start = grammar.masks({"search": FREE, "back": BARE, "answer": FREE})
    allowed = [tok.decode([i]) for i in start.mask(start.automaton.start).nonzero().flatten().tolist()]
    assert allowed and all(any(c.startswith(t) for c in ("search", "back", "answer")) for t in allowed), allowed
    checked = 0
    for task in random.Random(0).sample(load_tasks("dev"), 12):
        browser = new_browser()
        expert = ExpertPolicy(task, browser)
        for _ in range(6):
            command = expert.next_command()
            masks = grammar.masks(browser.allowed())
            sid = masks.automaton.start
            for token in tok.encode_ordinary(command):
                assert masks.mask(sid)[token], (command, tok.decode([token]))
                sid = masks.advance(sid, token)
            assert masks.advance(sid, grammar.eos_id) == -2, command     # EOS allowed: the command is complete
            checked += 1
            browser.execute(command)
            if browser.answer_text is not None:
                break
    assert checked >= 48
