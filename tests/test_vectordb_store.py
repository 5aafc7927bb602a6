"""The vector store: filters against Qdrant local mode and brute force, file format errors, hybrid RRF, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.vectordb import clustered_vectors
from course_lib.vectordb.filters import matches
from course_lib.vectordb.hybrid import reciprocal_rank_fusion
from course_lib.vectordb.store import VectorStore
from course_lib.vectordb.storefile import StoreFileError

DIM = 16
FILTERS = [
    None,
    {"lang": "en"},
    {"lang": {"in": ["de", "fr"]}},
    {"year": {"gte": 2005, "lt": 2015}},
    {"year": {"gt": 2010}, "lang": "en"},
    {"tag": {"in": [1, 3]}, "year": {"lte": 2003}},
    {"flag": True},
]


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    xb, xq = clustered_vectors(300, DIM, n_clusters=12, n_queries=10, seed=1)
    payloads = [{"lang": str(rng.choice(["en", "de", "fr"])), "year": int(rng.integers(1995, 2025)),
                 "tag": int(rng.integers(0, 5)), "flag": bool(rng.random() < 0.3)} for _ in range(len(xb))]
    return list(range(1, len(xb) + 1)), xb, xq, payloads


@pytest.fixture(scope="module")
def collection(points):
    ids, xb, _, payloads = points
    col = VectorStore().create_collection("docs", DIM, "cosine")
    col.upsert(ids, xb, payloads)
    return col


def brute_force(points, q, k, flt):
    ids, xb, _, payloads = points
    keep = [i for i, p in enumerate(payloads) if flt is None or matches(p, flt)]
    x = xb[keep] / np.linalg.norm(xb[keep], axis=1, keepdims=True)
    order = np.argsort(-(x @ (q / np.linalg.norm(q))), kind="stable")[:k]
    return [ids[keep[i]] for i in order]


@pytest.fixture(scope="module")
def qdrant_local(collection, tmp_path_factory):
    """The same points in Qdrant's embedded local mode (a folder, no server)."""
    from qdrant_client import QdrantClient

    from course_lib.vectordb import qdrant

    client = QdrantClient(path=str(tmp_path_factory.mktemp("qdrant")))
    qdrant.copy_collection(client, collection)
    yield client
    client.close()


@pytest.mark.parametrize("flt", FILTERS, ids=str)
def test_filtered_search_equals_brute_force_and_qdrant_local(points, collection, qdrant_local, flt):
    from course_lib.vectordb import qdrant

    client = qdrant_local
    for q in points[2]:
        ours = collection.search(q, k=10, filter=flt)
        assert [h.id for h in ours] == brute_force(points, q, 10, flt)
        theirs = qdrant.search(client, "docs", q, k=10, filter=flt)
        assert [h.id for h in ours] == [h.id for h in theirs]
        np.testing.assert_allclose([h.score for h in ours], [h.score for h in theirs], atol=1e-5)
        assert all(flt is None or matches(h.payload, flt) for h in ours)


KINDS = [True, False, 1, 0, 2, 1.0, 0.0, 1.5, "1", "True", None]   # JSON values that Python's == confuses
KIND_FILTERS = [{"v": True}, {"v": False}, {"v": 1}, {"v": 0}, {"v": "1"}, {"v": {"in": [1]}}, {"v": {"in": [0, 2]}},
                {"v": {"in": ["1", "True"]}}, {"v": {"gte": 1}}, {"v": {"lte": 0}}, {"v": {"gt": 0.5, "lt": 1.2}},
                {"v": {"gte": 1, "lte": 1}}]


def test_filters_keep_bool_int_and_float_apart_like_qdrant_local(tmp_path):
    from qdrant_client import QdrantClient

    from course_lib.vectordb import qdrant

    col = VectorStore().create_collection("kinds", 4, "ip")
    payloads = [{"v": v} for v in KINDS] + [{}]
    col.upsert(list(range(1, len(payloads) + 1)), np.eye(4)[np.arange(len(payloads)) % 4] + 1, payloads)
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        qdrant.copy_collection(client, col)
        for flt in KIND_FILTERS:
            ours = sorted(h.id for h in col.search(np.ones(4), k=len(col), filter=flt))
            theirs = sorted(h.id for h in qdrant.search(client, "kinds", np.ones(4), k=len(col), filter=flt))
            assert ours == theirs, f"{flt}: ours {[KINDS[i - 1] for i in ours]}, Qdrant {[KINDS[i - 1] for i in theirs]}"
    finally:
        client.close()
    assert [KINDS[h.id - 1] for h in col.search(np.ones(4), k=len(col), filter={"v": {"in": [1]}})] == [1]
    assert sorted(KINDS[h.id - 1] for h in col.search(np.ones(4), k=len(col), filter={"v": {"gte": 1}})) == [1, 1.0, 1.5, 2]
    # what Qdrant's MatchAny / MatchValue refuse, we refuse too, with a message that names the field
    for flt, message in [({"v": {"in": [True]}}, "'in' takes str or int"), ({"v": 1.0}, "equality takes a str, int or bool"),
                         ({"v": None}, "equality takes")]:
        with pytest.raises(TypeError, match=f"filter 'v': {message}"):
            col.search(np.ones(4), k=1, filter=flt)
        with pytest.raises(ValueError):           # pydantic's ValidationError
            qdrant.to_qdrant_filter(flt)


def test_upsert_overwrites_and_delete_removes(points):
    ids, xb, _, payloads = points
    col = VectorStore().create_collection("c", DIM, "ip")
    col.upsert(ids[:10], xb[:10], payloads[:10])
    col.upsert([3, 99], xb[20:22], [{"lang": "xx"}, {"lang": "yy"}])
    assert len(col) == 11
    np.testing.assert_array_equal(col.get(3)[0], xb[20])
    assert col.get(3)[1] == {"lang": "xx"}
    col.delete([3, 5])
    assert 3 not in col and 5 not in col and len(col) == 9
    assert 3 not in [h.id for h in col.search(xb[20], k=9)]
    np.testing.assert_array_equal(col.get(99)[0], xb[21])


def test_save_load_round_trip(collection, tmp_path):
    store = VectorStore()
    store.collections["docs"] = collection
    other = store.create_collection("other", 3, "l2")
    other.upsert(["a", "b"], [[0, 0, 1], [3, 4, 0]], [{"x": [1, 2]}, {}])
    store.save(tmp_path / "s.vdb")
    back = VectorStore.load(tmp_path / "s.vdb")
    assert set(back.collections) == {"docs", "other"}
    np.testing.assert_array_equal(back["docs"].vectors, collection.vectors)
    assert back["docs"].ids == collection.ids and back["docs"].payloads == collection.payloads
    hit = back["other"].search([0, 0, 0], k=2)
    assert [h.id for h in hit] == ["a", "b"] and hit[1].score == pytest.approx(5.0)
    assert not list(tmp_path.glob(".*tmp*")), "the temp file must be renamed away"


def test_truncated_foreign_and_corrupt_files_are_refused(collection, tmp_path):
    store = VectorStore()
    store.collections["docs"] = collection
    path = tmp_path / "s.vdb"
    store.save(path)
    blob = path.read_bytes()
    bad = tmp_path / "bad.vdb"
    for cut in (0, 5, 20, 100, len(blob) // 2, len(blob) - 1):
        bad.write_bytes(blob[:cut])
        with pytest.raises(StoreFileError, match="not a course vector store|truncated"):
            VectorStore.load(bad)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(StoreFileError, match="corrupted"):
        VectorStore.load(bad)
    bad.write_bytes(b'{"json": "from another program"}')
    with pytest.raises(StoreFileError, match="not a course vector store"):
        VectorStore.load(bad)
    bad.write_bytes(blob[:8] + (99).to_bytes(4, "little") + blob[12:])
    with pytest.raises(StoreFileError, match="format version 99"):
        VectorStore.load(bad)


def test_reciprocal_rank_fusion():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert [i for i, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_hybrid_search_fuses_dense_and_lexical(collection, points):
    q = points[2][0]
    dense = [h.id for h in collection.search(q, k=50)]
    lexical = {dense[40]: 9.0, dense[0]: 1.0, 10_000: 5.0}        # an unknown id is ignored
    hits = collection.hybrid_search(q, lexical, k=3)
    # dense[0]: 1/61 + 1/62; dense[40]: 1/101 + 1/61; dense[1]: 1/62 only
    assert [h.id for h in hits] == [dense[0], dense[40], dense[1]]
    assert [h.score for h in hits] == pytest.approx([1 / 61 + 1 / 62, 1 / 101 + 1 / 61, 1 / 62])


@pytest.mark.parametrize("call, error, message", [
    (lambda c: c.upsert([1], np.ones((1, DIM + 1))), ValueError, "dimension"),
    (lambda c: c.upsert([1], np.full((1, DIM), np.nan)), ValueError, "NaN or infinite"),
    (lambda c: c.upsert([1, 2], np.ones((1, DIM))), ValueError, "differ in length"),
    (lambda c: c.upsert([1, 1], np.ones((2, DIM))), ValueError, "repeat"),
    (lambda c: c.upsert([1.5], np.ones((1, DIM))), TypeError, "int or str"),
    (lambda c: c.upsert([1], np.ones((1, DIM)), [{"a": object()}]), TypeError, "JSON values"),
    (lambda c: c.upsert([1], np.zeros((1, DIM))), ValueError, "zero vector"),
    (lambda c: c.delete([1, 12345]), ValueError, "unknown ids"),
    (lambda c: c.search(np.ones(DIM), k=0), ValueError, "k must be positive"),
    (lambda c: c.search(np.ones(DIM), k=10**6), ValueError, "larger than the number"),
    (lambda c: c.search(np.ones(DIM + 2), k=1), ValueError, "dimension"),
    (lambda c: c.search(np.ones(DIM), k=1, filter={"lnag": "en"}), ValueError, "unknown field 'lnag'"),
    (lambda c: c.search(np.ones(DIM), k=1, filter={"year": {"between": 1}}), ValueError, "unknown condition"),
    (lambda c: c.search(np.ones(DIM), k=1, filter={"year": {"gt": "x"}}), TypeError, "must be numbers"),
    (lambda c: c.search(np.ones(DIM), k=1, filter=[("lang", "en")]), TypeError, "must be a dict"),
])
def test_bad_input(points, call, error, message):
    ids, xb, _, payloads = points
    col = VectorStore().create_collection("c", DIM)
    col.upsert(ids[:5], xb[:5], payloads[:5])
    with pytest.raises(error, match=message):
        call(col)
    assert len(col) == 5 and col.vectors.shape == (5, DIM)   # nothing half-applied


def test_store_bad_input(tmp_path):
    store = VectorStore()
    store.create_collection("a", 4)
    with pytest.raises(ValueError, match="already exists"):
        store.create_collection("a", 4)
    with pytest.raises(ValueError, match="metric must be one of"):
        store.create_collection("b", 4, "hamming")
    with pytest.raises(KeyError, match="no collection 'zz'"):
        store["zz"]
    with pytest.raises(FileNotFoundError):
        VectorStore.load(tmp_path / "missing.vdb")
