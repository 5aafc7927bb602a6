"""WebGPT (chapter 11): a text browser over a local web, and the episode loop that answers with quotes.

Nakano et al. 2021: the model browses with a small command language (search, click, quote, answer), and
an answer is only as good as the quotes that support it::

    from course_lib import rag, webgpt
    web = webgpt.LocalWeb.from_documents(rag.python_topics() + rag.stdlib_docs(), webgpt.python_topic_links())
    episode = webgpt.run_episode(model, webgpt.TextBrowser(web), "How do I pretty-print JSON?")
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
                                       Episode,
                                       Step,
                                       check_support,
                                       content_words,
                                       evaluate,
                                       parse_command,
                                       run_episode,
                                       state_prompt,
)

__all__ = ["COMMANDS", "Episode", "LocalWeb", "Page", "Quote", "Step", "TextBrowser", "check_support",
           "content_words", "evaluate", "normalize_space", "parse_command", "python_topic_links", "run_episode",
           "state_prompt"]
