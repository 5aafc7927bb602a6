"""WebGPT tasks and the scripted expert on the real Python-docs web; best-of-n and the success-table rows."""

import pytest

from course_lib.chat import ScriptedChatModel
from course_lib.webgpt.browser import LocalWeb, Quote, TextBrowser
from course_lib.webgpt.conditions import summarize
from course_lib.webgpt.episode import BrowseStep, Episode, best_of_n, support_score
from course_lib.webgpt.tasks import demonstrations, expert_episode, load_tasks, python_docs_web
from tests.test_webgpt import DOCS, WordSearch


def test_tasks_follow_the_rag_split():
    dev, test = load_tasks("dev"), load_tasks("test")
    assert len(dev) == 180 and len(test) == 90
    assert {t.split for t in dev} == {"dev"} and {t.split for t in test} == {"test"}
    assert not {t.question for t in dev} & {t.question for t in test}
    assert all(t.gold_pages for t in dev + test)
    with pytest.raises(ValueError, match="split"):
        load_tasks("train")


def test_demonstrations_refuse_the_test_split():
    with pytest.raises(ValueError, match="dev split only"):
        demonstrations(load_tasks("dev")[:2] + load_tasks("test")[:1])


def test_the_expert_answers_with_supported_quotes_on_both_splits():
    """The expert drives the real browser: ≥ 90 % supported, ≥ 70 % quote a gold page, never a command error."""
    from course_lib.webgpt.episode import evaluate

    web, _ = python_docs_web()
    for split in ("dev", "test"):
        tasks = load_tasks(split)
        episodes = [expert_episode(t)[0] for t in tasks]
        report = evaluate(episodes, web, [list(t.gold_pages) for t in tasks])
        assert report["supported"] >= 0.9 and report["quoted_gold_page"] >= 0.7, (split, report)
        assert 4 <= report["mean_steps"] <= 5
        assert not any(s.observation.startswith("Error") for e in episodes for s in e.steps)


def test_demonstrations_are_the_episode_format():
    chats = demonstrations(load_tasks("dev")[:3])
    assert [c[2]["content"].split(":")[0] for c in chats[:2]] == ["search", "search"]   # q001: the title search
    assert all(c[0]["role"] == "system" and c[1]["content"].startswith("Question: ") for c in chats)
    assert all(c[1]["content"].endswith("Next command:") for c in chats)


def _episode(answer, quotes, steps=4):
    return Episode("q?", answer, quotes, [BrowseStep("search: x", "", 10, 0.1)] * steps)


def test_support_score():
    web = LocalWeb.from_documents(DOCS)
    good = Quote("json.dumps", "Serialize obj to a JSON formatted str.")
    assert support_score(_episode("Serialize obj to a JSON formatted str.", [good]), web) == 1.0
    assert support_score(_episode("Serialize obj to a JSON formatted str.", [Quote("json", good.text)]), web) == 0.0
    assert support_score(_episode(None, [good]), web) == 0.0
    assert support_score(_episode("pickle", []), web) == 0.0


def test_best_of_n_picks_the_best_supported_sample():
    web = LocalWeb.from_documents(DOCS)
    replies = ["answer: no idea",                                                      # sample 0: no quote
               "search: formatted", "click: 0", "quote: Serialize obj to a JSON formatted str.",
               "answer: Serialize obj to a JSON formatted str.",                       # sample 1: supported
               "search: formatted", "click: 0", "quote: Serialize obj to a JSON formatted str.",
               "answer: Serialize obj, maybe pickle or marshal too."]                  # sample 2: partly
    model, seen = ScriptedChatModel(replies), []

    class Sampled:   # records the sampling options each step is asked with
        def chat(self, messages, **kwargs):
            seen.append((kwargs.get("temperature"), kwargs.get("seed")))
            return model.chat(messages, **kwargs)

    chosen, samples, scores = best_of_n(Sampled(), lambda: TextBrowser(web, WordSearch()), "q?", web, n=3, seed=5)
    assert scores[0] == 0.0 and scores[1] == 1.0 and 0 < scores[2] < 1
    assert chosen is samples[1]
    assert seen == [(0.7, 5)] + [(0.7, 105 + k) for k in range(4)] + [(0.7, 205 + k) for k in range(4)]


@pytest.mark.parametrize("kwargs, message", [({"n": 0}, "n must be"), ({"temperature": 0.0}, "temperature")])
def test_best_of_n_bad_arguments(kwargs, message):
    web = LocalWeb.from_documents(DOCS)
    with pytest.raises(ValueError, match=message):
        best_of_n(ScriptedChatModel(["answer: x"]), lambda: TextBrowser(web, WordSearch()), "q?", web, **kwargs)


def test_summarize_rows():
    tasks = load_tasks("test")[:2]
    web, _ = python_docs_web()
    page = tasks[0].gold_pages[0]
    sentence = " ".join(web[page].text.split())[:40].rsplit(" ", 1)[0]
    episodes = [_episode(sentence, [Quote(page, sentence)], steps=4), _episode(None, [], steps=6)]
    row = summarize("x", episodes, tasks, [1.0, 3.0])
    assert row == {"condition": "x", "questions": 2, "supported": 0.5, "answered": 0.5, "quoted gold page": 0.5,
                   "mean steps": 5.0, "tokens / question": 50.0, "seconds / question": 2.0}
    with pytest.raises(ValueError, match="one episode"):
        summarize("x", episodes[:1], tasks, [1.0])
