"""Upsert / delete / save / load keep ids, vectors and payloads consistent: a hypothesis state machine
drives the store and a plain dict model side by side and compares them after every step."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from course_lib.vectordb.filters import matches
from course_lib.vectordb.store import VectorStore

DIM = 4
IDS = st.one_of(st.integers(0, 30), st.sampled_from(["a", "b", "c"]))
PAYLOAD = st.fixed_dictionaries({"color": st.sampled_from(["red", "green", "blue"]), "n": st.integers(0, 9)})
VECTOR = st.lists(st.integers(-8, 8), min_size=DIM, max_size=DIM).filter(any)


class StoreVsDict(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.store = VectorStore()
        self.col = self.store.create_collection("c", DIM, "ip")
        self.model: dict = {}                        # id -> (vector, payload)

    @rule(points=st.lists(st.tuples(IDS, VECTOR, PAYLOAD), min_size=1, max_size=5, unique_by=lambda p: p[0]))
    def upsert(self, points):
        self.col.upsert([p[0] for p in points], np.array([p[1] for p in points], np.float32), [p[2] for p in points])
        for i, v, p in points:
            self.model[i] = (np.array(v, np.float32), p)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model, key=str)), min_size=1, max_size=3, unique=True))
        self.col.delete(ids)
        for i in ids:
            del self.model[i]

    @rule(i=IDS)
    def delete_unknown_changes_nothing(self, i):
        if i in self.model:
            return
        before = len(self.col)
        try:
            self.col.delete([i])
        except ValueError:
            pass
        else:
            raise AssertionError("deleting an unknown id must raise")
        assert len(self.col) == before

    @rule()
    def save_and_load(self):
        self.store.save(self.folder / "s.vdb")
        self.store = VectorStore.load(self.folder / "s.vdb")
        self.col = self.store["c"]

    @precondition(lambda self: self.model)
    @rule(q=VECTOR, color=st.sampled_from(["red", "green", "blue"]), lo=st.integers(0, 9))
    def filtered_search(self, q, color, lo):
        flt = {"color": color, "n": {"gte": lo}}
        k = len(self.model)
        hits = self.col.search(np.array(q, np.float32), k=k, filter=flt)
        expected = {i for i, (_, p) in self.model.items() if matches(p, flt)}
        assert {h.id for h in hits} == expected
        for h in hits:
            assert h.score == float(self.model[h.id][0] @ np.array(q, np.float32))

    @invariant()
    def same_as_model(self):
        assert len(self.col) == len(self.model) == self.col.vectors.shape[0] == len(self.col.payloads)
        assert set(self.col.ids) == set(self.model)
        for i, (v, p) in self.model.items():
            got_v, got_p = self.col.get(i)
            np.testing.assert_array_equal(got_v, v)
            assert got_p == p


StoreVsDict.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestStoreVsDict = StoreVsDict.TestCase
