"""course_lib.chains: LCEL by hand, composition (pipes, parallel, lambdas, batch, streaming, async), against langchain-core (1.8.1)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest
from langchain_core.runnables import RunnableLambda as LCRunnableLambda
from langchain_core.runnables import RunnablePassthrough as LCRunnablePassthrough

from course_lib.chains import (
    ChatModelRunnable,
    ChatPromptTemplate,
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
    RunnableSequence,
    StrOutputParser,
)
from tests.chains_doubles import INPUT, PROMPT, PiecewiseModel

# ---- composition -------------------------------------------------------------------------------------


def test_pipe_coerces_callables_and_dicts_and_flattens():
    chain = (lambda x: x + 1) | RunnableLambda(lambda x: x * 2) | {"double": lambda x: x, "neg": lambda x: -x}
    assert isinstance(chain, RunnableSequence) and len(chain.steps) == 3
    assert isinstance(chain.steps[2], RunnableParallel)
    assert chain.invoke(3) == {"double": 8, "neg": -8}
    nested = RunnableSequence(chain, lambda d: d["neg"])
    assert len(nested.steps) == 4 and nested.invoke(0) == -2


def test_parallel_runs_branches_concurrently_and_passthrough_assign_adds_keys():
    barrier = threading.Barrier(2, timeout=5)  # both branches must be running at once to pass
    par = RunnableParallel(a=lambda x: barrier.wait() * 0 + x, b=lambda x: barrier.wait() * 0 + 2 * x)
    assert par.invoke(5) == {"a": 5, "b": 10}
    assign = RunnablePassthrough.assign(total=lambda d: d["a"] + d["b"])
    assert (par | assign).invoke(1) == {"a": 1, "b": 2, "total": 3}
    assert RunnablePassthrough().invoke([1, 2]) == [1, 2]


def test_lambda_gets_config_and_a_returned_runnable_is_invoked():
    seen = {}

    def with_config(x, config):
        seen.update(config)
        return x

    RunnableLambda(with_config).invoke(1, {"configurable": {"session_id": "s"}})
    assert seen == {"configurable": {"session_id": "s"}}
    route = RunnableLambda(lambda x: RunnableLambda(lambda y: y * 10) if x > 0 else RunnableLambda(lambda y: -y))
    assert route.invoke(2) == 20 and route.invoke(-3) == 3


def test_batch_keeps_order_and_respects_max_concurrency():
    running, peak, lock = [0], [0], threading.Lock()

    def slow(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return x * x

    r = RunnableLambda(slow)
    assert r.batch(list(range(8)), max_concurrency=2) == [x * x for x in range(8)]
    assert peak[0] == 2
    failing = RunnableLambda(lambda x: 1 / x)
    out = failing.batch([1, 0], return_exceptions=True)
    assert out[0] == 1 and isinstance(out[1], ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        failing.batch([1, 0])


def outcome(call, *args, **kwargs):
    """What ``call(*args, **kwargs)`` gives, comparable across libraries: its value, or ``raises <Type>``
    (lists: element-wise)."""
    try:
        value = call(*args, **kwargs)
    except Exception as e:
        return f"raises {type(e).__name__}"
    return [f"raises {type(v).__name__}" if isinstance(v, Exception) else v for v in value] if isinstance(value, list) else value


async def tenfold(x):
    await asyncio.sleep(0)
    if x == 0:
        raise KeyError("zero")
    return x * 10


class AsyncCallable:
    async def __call__(self, x):
        return await tenfold(x) + 5


def async_cases(lam, passthrough):
    """The same async functions in the same places, built with our classes or with langchain-core's."""
    return {
        "async def": lam(tenfold),
        "partial of async def": lam(functools.partial(tenfold)),
        "object with async __call__": lam(AsyncCallable()),
        "async def piped after a lambda": lam(lambda x: x * 2) | tenfold,
        "async def in a parallel dict": lam(lambda x: x) | {"a": tenfold, "b": lambda x: -x},
        "lambda returning an async Runnable": lam(lambda x: lam(tenfold)),
        "assign with an async step": lam(lambda x: {"x": x}) | passthrough.assign(y=lam(lambda d: d["x"]) | tenfold),
    }


@pytest.mark.parametrize("case", list(async_cases(RunnableLambda, RunnablePassthrough)))
def test_async_def_lambda_is_awaited_or_refused_as_in_langchain(case):
    ours = async_cases(RunnableLambda, RunnablePassthrough)[case]
    theirs = async_cases(LCRunnableLambda, LCRunnablePassthrough)[case]

    async def astream(r, x):
        return [piece async for piece in r.astream(x)]
    calls = {
        "invoke": lambda r: r.invoke(2),
        "ainvoke": lambda r: asyncio.run(r.ainvoke(2)),
        "ainvoke raising": lambda r: asyncio.run(r.ainvoke(0)),
        "abatch": lambda r: asyncio.run(r.abatch([1, 2, 3])),
        "abatch return_exceptions": lambda r: asyncio.run(r.abatch([1, 0, 3], return_exceptions=True)),
        "batch": lambda r: r.batch([1, 2]),
        "batch return_exceptions": lambda r: r.batch([1, 2], return_exceptions=True),
        "stream": lambda r: list(r.stream(2)),
    }
    if case in ("async def", "object with async __call__"):
        calls["astream"] = lambda r: asyncio.run(astream(r, 2))
    got = {name: outcome(call, ours) for name, call in calls.items()}
    assert got == {name: outcome(call, theirs) for name, call in calls.items()}
    assert got["invoke"] == "raises TypeError" and not isinstance(got["ainvoke"], str)   # refused, then awaited
    assert got["ainvoke raising"] == "raises KeyError" and "raises KeyError" in got["abatch return_exceptions"]
    with pytest.raises(TypeError, match="Cannot invoke a coroutine function synchronously"):
        ours.invoke(2)


def test_abatch_checks_arguments_like_batch_and_returns_exceptions_like_langchain():
    ours, theirs = RunnableLambda(lambda x: 1 / x), LCRunnableLambda(lambda x: 1 / x)
    for r in (ours, theirs):   # the same outcomes from both libraries, sync and async
        assert outcome(r.batch, [1, 0, 4], return_exceptions=True) == [1.0, "raises ZeroDivisionError", 0.25]
        assert outcome(asyncio.run, r.abatch([1, 0, 4], return_exceptions=True)) == [1.0, "raises ZeroDivisionError", 0.25]
        assert outcome(asyncio.run, r.abatch([1, 0, 4])) == "raises ZeroDivisionError"
        assert asyncio.run(r.abatch([])) == []
    for bad in (0, -1, True, 1.5):   # langchain-core's abatch waits forever on max_concurrency=0; ours refuses
        with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
            ours.batch([1], max_concurrency=bad)
        with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
            asyncio.run(ours.abatch([1], max_concurrency=bad))
    with pytest.raises(TypeError, match="list of inputs"):
        asyncio.run(ours.abatch("abc"))
    running, peak = [0], [0]

    async def slow(x):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1
        return x

    assert asyncio.run(RunnableLambda(slow).abatch(list(range(6)), max_concurrency=2)) == list(range(6))
    assert peak[0] == 2
    with pytest.raises(TypeError, match="not an async generator"):
        RunnableLambda(AsyncGenerator.pieces)


class AsyncGenerator:
    @staticmethod
    async def pieces(x):
        yield x


def test_stream_passes_through_model_and_parser_piece_by_piece():
    events: list[str] = []
    chain = ChatPromptTemplate(PROMPT) | ChatModelRunnable(PiecewiseModel(["four is the answer"], events)) | StrOutputParser()
    pieces = []
    for piece in chain.stream(INPUT):
        events.append(f"got {len(pieces)}")
        pieces.append(piece)
    assert pieces == ["four", " is", " the", " answer"]
    # each piece reaches the caller before the model writes the next one: real streaming, not buffered
    assert events == [e for i in range(4) for e in (f"model {i}", f"got {i}")]


def test_async_forms_equal_the_sync_ones():
    chain = ChatPromptTemplate(PROMPT) | ChatModelRunnable(PiecewiseModel(["four"] * 10)) | StrOutputParser()

    async def run():
        one = await chain.ainvoke(INPUT)
        many = await chain.abatch([INPUT] * 3, max_concurrency=2)
        pieces = [p async for p in chain.astream(INPUT)]
        return one, many, pieces
    assert asyncio.run(run()) == ("four", ["four"] * 3, ["four"])


def test_bad_composition_and_batch_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="cannot compose 'int'"):
        RunnablePassthrough() | 3
    with pytest.raises(ValueError, match="at least 2 steps"):
        RunnableSequence(RunnablePassthrough())
    with pytest.raises(ValueError, match="at least one branch"):
        RunnableParallel({})
    with pytest.raises(TypeError, match="plain callable"):
        RunnableLambda(3)
    with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
        RunnablePassthrough().batch([1], max_concurrency=0)
    with pytest.raises(TypeError, match="list of inputs"):
        RunnablePassthrough().batch("abc")
    with pytest.raises(TypeError, match="config must be a dict"):
        RunnableLambda(lambda x: x).invoke(1, config="s1")
    with pytest.raises(TypeError, match="needs a dict input"):
        RunnablePassthrough.assign(a=lambda d: 1).invoke(3)
    with pytest.raises(NotImplementedError, match="must implement invoke"):
        Runnable().invoke(1)
