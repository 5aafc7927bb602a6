"""Conversation memory: a chain that remembers the last turns of each conversation (session).

Reference design: LangChain's ``RunnableWithMessageHistory`` and ``trim_messages``
(https://python.langchain.com/docs/how_to/message_history/): the session comes from
``config={"configurable": {"session_id": ...}}``, the history is inserted into the prompt under
``history_key`` (a ``("placeholder", "{history}")`` slot), and the new user turn and the reply are
appended after the call. A window keeps the prompt short: only the last ``window`` turns
(a user message and its reply each) go back into the prompt.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from course_lib.chains.base import Runnable, check_config, combine_chunks
from course_lib.chains.parsers import message_text


class ChatHistoryStore:
    """Messages per session id, thread-safe (a chain's ``batch`` may run sessions at once)."""

    def __init__(self):
        self._sessions: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    def messages(self, session_id: str) -> list[dict]:
        with self._lock:
            return list(self._sessions.get(session_id, []))

    def add(self, session_id: str, *messages: dict) -> None:
        with self._lock:
            self._sessions.setdefault(session_id, []).extend(messages)

    def clear(self, session_id: str | None = None) -> None:
        with self._lock:
            if session_id is None:
                self._sessions.clear()
            else:
                self._sessions.pop(session_id, None)

    def sessions(self) -> list[str]:
        with self._lock:
            return list(self._sessions)


class RunnableWithHistory(Runnable):
    """Wrap a chain that takes ``{input_key: ..., history_key: [messages]}`` so it remembers per session."""

    def __init__(self, runnable: Runnable, store: ChatHistoryStore | None = None, *, input_key: str = "question",
                 history_key: str = "history", window: int = 4):
        if not isinstance(runnable, Runnable):
            raise TypeError(f"runnable must be a Runnable, got {type(runnable).__name__}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ValueError(f"window must be a non-negative int (turns kept), got {window!r}")
        self.runnable, self.store = runnable, store if store is not None else ChatHistoryStore()
        self.input_key, self.history_key, self.window = input_key, history_key, window

    @property
    def name(self) -> str:
        return f"WithHistory<{self.runnable.name}>"

    def session_id(self, config) -> str:
        session = check_config(config).get("configurable", {}).get("session_id")
        if not isinstance(session, str) or not session:
            raise ValueError("RunnableWithHistory needs config={'configurable': {'session_id': '<id>'}}")
        return session

    def _prepare(self, input, config) -> tuple[str, dict]:
        session = self.session_id(config)
        if isinstance(input, str):
            input = {self.input_key: input}
        if not isinstance(input, Mapping) or self.input_key not in input:
            raise ValueError(f"{self.name} needs a str or a dict with key {self.input_key!r}, got {input!r}")
        recent = self.store.messages(session)[-2 * self.window:] if self.window else []
        return session, {**input, self.history_key: recent}

    def _remember(self, session: str, input: dict, output) -> None:
        self.store.add(session, {"role": "user", "content": str(input[self.input_key])},
                       {"role": "assistant", "content": message_text(output)})

    def invoke(self, input, config=None):
        session, full = self._prepare(input, config)
        output = self.runnable.invoke(full, config)
        self._remember(session, full, output)
        return output

    def stream(self, input, config=None):
        session, full = self._prepare(input, config)
        pieces = []
        for piece in self.runnable.stream(full, config):
            pieces.append(piece)
            yield piece
        self._remember(session, full, combine_chunks(pieces))

    def _draw(self, g, sources):
        ends = self.runnable._draw(g, [g.add("load_history", sources)])
        return [g.add("save_history", ends)]
