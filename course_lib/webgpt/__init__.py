"""WebGPT (chapter 11): a text browser over a local web, the episode loop that answers with quotes, its tasks.

Nakano et al. 2021: the model browses with a small command language (search, click, quote, answer), and
an answer is only as good as the quotes that support it::

    from course_lib import webgpt
    task = webgpt.load_tasks("dev")[0]
    episode = webgpt.run_episode(model, webgpt.new_browser(), task.question)
"""

from course_lib.webgpt.browser import (
                                       COMMANDS,
                                       LocalWeb,
                                       Page,
                                       Quote,
                                       TextBrowser,
                                       normalize_space,
                                       python_topic_links,
)
from course_lib.webgpt.episode import (
                                       BrowseStep,
                                       Episode,
                                       best_of_n,
                                       check_support,
                                       content_words,
                                       evaluate,
                                       parse_command,
                                       run_episode,
                                       state_prompt,
                                       support_score,
)
from course_lib.webgpt.tasks import (
                                       ExpertPolicy,
                                       WebTask,
                                       demonstrations,
                                       expert_episode,
                                       load_tasks,
                                       new_browser,
                                       python_docs_web,
)

__all__ = ["COMMANDS", "BrowseStep", "Episode", "ExpertPolicy", "LocalWeb", "Page", "Quote", "TextBrowser", "WebTask",
           "best_of_n", "check_support", "content_words", "demonstrations", "evaluate", "expert_episode",
           "load_tasks", "new_browser", "normalize_space", "parse_command", "python_docs_web",
           "python_topic_links", "run_episode", "state_prompt", "support_score"]
