"""Constrained decoding: mask the logits so a model can only write a valid tool call.

The idea is outlines' (Willard & Louf 2023, "Efficient Guided Generation for Large Language
Models", §3–4) and llama.cpp's GBNF sampling: compile the output language into an automaton
(:mod:`course_lib.constrained.grammar`), and before each token keep only the vocabulary entries whose
bytes the automaton can read from its current state. The language here is one call

    {"name": "<one of the tools>", "arguments": {...the tool's JSON Schema...}}

(the keys are parameters: the course's tool-call task writes ``{"tool": ..., "args": ...}``).

Token masks. SmolLM2's 49,152 byte-level BPE tokens are turned into their bytes once
(:func:`token_bytes`) and sorted; the allowed set of a state is a depth-first walk of the token
trie (the sorted list, sub-ranges by binary search) that follows only the bytes the automaton
allows, so a refused prefix prunes every token that starts with it. The
mask of each automaton state is computed once and cached (outlines precomputes them all; here
they are built on first use, since bounded numbers make many small states), so a step costs a
dict lookup once its state has been seen.

Guarantee: a generation that ends with ``eos_id`` decodes to JSON that parses, names one of the
tools, and validates against that tool's schema (``schema.validate_call`` returns ``[]``): EOS is
allowed only in accepting states, and every state kept can still reach one, so a mask is never
empty. Limits: ``max_new_tokens`` can cut a call before it closes (then it is incomplete, and
:func:`generate_call` says so); string contents are free text within the schema (the model can
ramble inside a string until the budget ends); the grammar fixes the form, not the meaning: the
model can still pick the wrong tool or wrong values. Masking also changes the distribution the
model samples from (it is renormalised over allowed tokens, not conditioned on a valid future).
"""

from __future__ import annotations

import bisect

import torch

from course_lib.constrained.grammar import Automaton, Choice, compile_schema, tool_call_schema
from course_lib.constrained.schema import tool_schemas

DONE = -2  # a row that has written EOS


def token_bytes(tokenizer) -> list[bytes | None]:
    """The bytes of every token id of a byte-level BPE tokenizer; ``None`` for special tokens."""
    if not hasattr(tokenizer, "id_to_token") or not hasattr(tokenizer, "decode_bytes"):
        raise TypeError(f"tokenizer must be a ByteLevelBPE (id_to_token, decode_bytes), got {type(tokenizer).__name__}")
    special = set(tokenizer.special_tokens.values())
    size = max(tokenizer.id_to_token) + 1
    return [None if i in special or i not in tokenizer.id_to_token else tokenizer.decode_bytes([i])
            for i in range(size)]


class TokenMasks:
    """Allowed-token masks of an :class:`~course_lib.constrained.grammar.Automaton` over a vocabulary.

    ``vocab[i]`` is the bytes of token ``i`` (``None``: never allowed, e.g. special tokens);
    ``eos_id`` is allowed exactly in accepting states. With ``encode`` (text -> ids, the tokenizer's
    own), a state whose next bytes are forced (a key, ``", "``) allows only the first token of
    their canonical encoding: the model then reads the tokens it was trained on instead of
    spelling ``{"tool"`` as ``{``, ``"``, ``t``, ``oo``, ``l`` (the text is the same either way).
    """

    def __init__(self, automaton: Automaton, vocab: list[bytes | None], eos_id: int, encode=None):
        if not 0 <= eos_id < len(vocab):
            raise ValueError(f"eos_id must be a token id in [0, {len(vocab)}), got {eos_id!r}")
        self.automaton, self.eos_id, self.size, self.vocab = automaton, eos_id, len(vocab), list(vocab)
        self.encode = encode
        pairs = sorted((b, i) for i, b in enumerate(vocab) if b)
        self._bytes = [b for b, _ in pairs]
        self._ids = [i for _, i in pairs]
        self._masks: dict[int, torch.Tensor] = {}

    def allowed_ids(self, sid: int) -> list[int]:
        """Token ids (without EOS) whose bytes the automaton reads from state ``sid``.

        A depth-first walk of the token trie laid out as the sorted token list: a node is a range
        of tokens sharing their first ``depth`` bytes; its children are the sub-ranges (found by
        binary search) of the bytes the automaton allows next, so refused prefixes are never
        visited. A small range is walked token by token instead.
        """
        toks, ids, automaton, out = self._bytes, self._ids, self.automaton, []
        stack = [(sid, 0, len(toks), 0)]  # (state after the shared prefix, lo, hi, depth)
        while stack:
            state, lo, hi, depth = stack.pop()
            while lo < hi and len(toks[lo]) == depth:  # the prefix itself is a token (sorted first)
                out.append(ids[lo])
                lo += 1
            row = automaton.row(state)
            if hi - lo <= len(row):
                out += [ids[k] for k in range(lo, hi) if automaton.walk(state, toks[k][depth:]) >= 0]
                continue
            prefix = toks[lo][:depth] if lo < hi else b""
            for b, nxt in row.items():
                start = bisect.bisect_left(toks, prefix + bytes([b]), lo, hi)
                end = bisect.bisect_left(toks, prefix + bytes([b + 1]), start, hi) if b < 255 else hi
                if start < end:
                    stack.append((nxt, start, end, depth + 1))
        return out

    def mask(self, sid: int) -> torch.Tensor:
        """Bool mask ``(V,)`` of the tokens allowed in state ``sid`` (cached); only EOS after :data:`DONE`."""
        cached = self._masks.get(sid)
        if cached is None:
            cached = torch.zeros(self.size, dtype=torch.bool)
            if sid == DONE:
                cached[self.eos_id] = True
            else:
                cached[self.allowed_ids(sid)] = True
                cached[self.eos_id] = self.automaton.accepting(sid)
                if not cached.any():
                    raise RuntimeError(f"automaton state {sid} allows no token: the grammar has a dead state")
                canonical = self._canonical(sid)
                if canonical is not None and cached[canonical]:
                    cached = torch.zeros_like(cached)
                    cached[canonical] = True
            self._masks[sid] = cached
        return cached

    @property
    def cached_states(self) -> int:
        """How many automaton states have a mask computed so far."""
        return len(self._masks)

    def _canonical(self, sid: int) -> int | None:
        """The first token of the tokenizer's encoding of the forced bytes at ``sid`` (None: nothing forced)."""
        forced = self.automaton.forced(sid) if self.encode is not None else b""
        try:
            ids = self.encode(forced.decode("utf-8")) if forced else []
        except UnicodeDecodeError:  # forced bytes end inside a character
            return None
        return ids[0] if ids else None

    def advance(self, sid: int, token: int) -> int:
        """The state after ``token``; ``ValueError`` if the token is not allowed there."""
        if sid == DONE or (token == self.eos_id and self.automaton.accepting(sid)):
            return DONE
        data = self.vocab[token] if 0 <= token < self.size else None
        nxt = -1 if not data else self.automaton.walk(sid, data)
        if nxt < 0:
            raise ValueError(f"token {token} ({data!r}) is not allowed by the grammar in state {sid}")
        return nxt


class ToolCallGrammar:
    """The tool-call language of ``tools`` over one vocabulary; build once, reuse across calls.

    ``tools``: ``{name: parameters schema}`` or a list of OpenAI tool definitions. ``vocab``:
    :func:`token_bytes` of the tokenizer. The masks cache lives here, so later calls are faster.
    """

    def __init__(self, tools, vocab: list[bytes | None], eos_id: int, name_key: str = "name",
                 arguments_key: str = "arguments", encode=None):
        self.tools = tool_schemas(tools)
        self.name_key, self.arguments_key = name_key, arguments_key
        calls = [compile_schema(tool_call_schema(name, params, name_key, arguments_key), f"tools[{name!r}]")
                 for name, params in self.tools.items()]
        self.automaton = Automaton(Choice(calls))
        self.masks = TokenMasks(self.automaton, vocab, eos_id, encode)

    @classmethod
    def from_tokenizer(cls, tools, tokenizer, eos_token: str = "<|im_end|>", canonical: bool = True,
                       **keys) -> ToolCallGrammar:
        """Build for a ``ByteLevelBPE``; EOS is ``eos_token`` (SmolLM2's end of turn); ``canonical``: see :class:`TokenMasks`."""
        encode = tokenizer.encode_ordinary if canonical else None
        return cls(tools, token_bytes(tokenizer), tokenizer.token_to_id(eos_token), encode=encode, **keys)

    def processor(self) -> ToolCallProcessor:
        """A fresh logits processor for one ``generate`` call (it tracks each row's state)."""
        return ToolCallProcessor(self.masks)


class ToolCallProcessor:
    """``processor(ids (B, T), logits (B, V)) -> logits`` with disallowed tokens at -inf.

    The first call sees the prompts and fixes where generation starts; each later call advances
    every row through the tokens appended since. Pass it as ``generate(..., logits_processor=p)``.
    """

    def __init__(self, masks: TokenMasks):
        self.masks, self.states, self.seen = masks, None, 0

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.masks.size:
            raise ValueError(f"logits have {logits.shape[-1]} entries but the grammar's vocabulary has {self.masks.size}")
        if self.states is None:
            self.states, self.seen = [self.masks.automaton.start] * input_ids.shape[0], input_ids.shape[1]
        for row, new in enumerate(input_ids[:, self.seen:].tolist()):
            for token in new:
                self.states[row] = self.masks.advance(self.states[row], token)
        self.seen = input_ids.shape[1]
        allowed = torch.stack([self.masks.mask(s) for s in self.states]).to(logits.device)  # (B, V)
        return logits.masked_fill(~allowed, float("-inf"))


def generate_calls(model, tokenizer, prompts: list[str], grammar: ToolCallGrammar | None = None,
                   max_new_tokens: int = 48, eos_token: str = "<|im_end|>", **kwargs) -> list[str]:
    """Replies to a batch of prompt texts (left-padded, one forward per step), cut at ``eos_token``.

    With ``grammar`` the decoding is constrained (its EOS is used); without, it is the model's
    own greedy reply, the baseline the grammar is compared with. ``kwargs`` go to ``generate``.
    """
    from course_lib.generation import generate, pad_left

    eos = grammar.masks.eos_id if grammar is not None else tokenizer.token_to_id(eos_token)
    ids, mask = pad_left([tokenizer.encode(p) for p in prompts], eos)
    if grammar is not None:
        kwargs["logits_processor"] = grammar.processor()
    out = generate(model, ids, max_new_tokens, attention_mask=mask, stop_tokens=[eos], pad_token_id=eos, **kwargs)
    rows = out[:, ids.shape[1]:].tolist()
    return [tokenizer.decode(row[:row.index(eos)] if eos in row else row, skip_special_tokens=True) for row in rows]


def generate_call(model, tokenizer, prompt: str, grammar: ToolCallGrammar, max_new_tokens: int = 48,
                  **kwargs) -> str:
    """One constrained call for ``prompt`` (text); greedy unless ``kwargs`` say otherwise.

    ``ValueError`` if ``max_new_tokens`` ran out before the call closed (the one case the
    grammar cannot prevent); otherwise the text parses and validates.
    """
    from course_lib.generation import generate

    ids = torch.tensor([tokenizer.encode(prompt)])
    eos = grammar.masks.eos_id
    out = generate(model, ids, max_new_tokens, logits_processor=grammar.processor(), stop_tokens=[eos],
                   pad_token_id=eos, **kwargs)[0, ids.shape[1]:].tolist()
    if eos not in out:
        raise ValueError(f"max_new_tokens={max_new_tokens} ended the call before it closed: {tokenizer.decode(out)!r}")
    return tokenizer.decode(out[:out.index(eos)])
