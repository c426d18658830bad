"""faiss retrieval with exact re-ranking: recall, equality with exact scoring, freshness."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recloop import Recommender
from recloop.serving.retrieval import RetrievalIndex, Retriever


def clustered(n: int, d: int, clusters: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    return (centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=(n, d))).astype(
        np.float32
    )


def test_index_recall_against_exact_search():
    rng = np.random.default_rng(0)
    items = clustered(20_000, 16, 100, rng)
    bias = rng.normal(scale=0.5, size=20_000).astype(np.float32)
    users = clustered(200, 16, 100, rng)
    index = RetrievalIndex(items, bias, nprobe=16, seed=0)
    hits = 0
    for u in users:
        exact = np.argsort(-(items @ u + bias))[:10]
        cand = index.search(u, 50)
        top = cand[np.argsort(-(items[cand] @ u + bias[cand]))[:10]]
        hits += len(set(top) & set(exact))
    assert hits / (10 * len(users)) >= 0.95


def test_bias_changes_the_ranking_the_index_returns():
    """The bias is part of the search (augmented vector), not only of the re-ranking."""
    items = np.eye(4, dtype=np.float32)
    bias = np.array([0.0, 0.0, 0.0, 10.0], np.float32)
    index = RetrievalIndex(items, bias, nlist=1)
    assert index.search(np.array([1, 0, 0, 0], np.float32), 1).tolist() == [3]


def _exhaustive(rec: Recommender) -> Retriever:
    r = Retriever(rec, threshold=0, nprobe=10_000)
    r.start(background=False)
    assert r.status == "faiss"
    return r


def test_retriever_matches_exact_scoring(rec):
    r = _exhaustive(rec)
    for user in ("0", "3", "17"):
        for exclude in (True, False):
            got = r.recommend(user, 10, exclude)
            want = rec.recommend_with_scores(user, 10, exclude)
            assert got is not None
            assert [i for i, _ in got] == [i for i, _ in want]
            assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_retriever_defers_to_the_engine_for_cold_users(rec):
    assert _exhaustive(rec).recommend("never-seen", 5, True) is None


def test_items_added_after_the_build_are_candidates_and_trigger_a_rebuild(rec):
    r = _exhaustive(rec)
    r.rebuild_after = 1
    rec.update([{"user_id": "9", "item_id": "new-item"}])
    rec.flush()  # the parameter step grows the model's item table
    got = r.recommend("3", 80, False)
    assert got is not None and "new-item" in {i for i, _ in got}
    for _ in range(100):  # the rebuild runs in the background
        if r.index is not None and r.index.n_items == rec.n_items:
            break
        time.sleep(0.05)
    assert r.index is not None and r.index.n_items == rec.n_items


def test_models_without_vectors_stay_exact(rec, monkeypatch):
    monkeypatch.setattr(rec.model_, "item_vectors", lambda: None)
    r = Retriever(rec, threshold=0)
    r.start(background=False)
    assert r.status == "exact" and r.disabled_reason
    assert r.recommend("3", 5, True) is None


def test_models_whose_scores_are_not_dot_products_stay_exact(rec, monkeypatch):
    real = rec.model_.score
    monkeypatch.setattr(rec.model_, "score", lambda u, h: 2 * real(u, h) + 1)
    r = Retriever(rec, threshold=0)
    r.start(background=False)
    assert r.status == "exact"


@pytest.mark.parametrize("threshold, status", [(0, "faiss"), (10_000, "exact")])
def test_app_uses_the_index_above_the_threshold(make_client, rec, threshold, status):
    c = make_client(faiss_threshold=threshold, faiss_nprobe=10_000)
    for _ in range(200):
        if c.get("/health").json()["retrieval"] != "building":
            break
        time.sleep(0.05)
    assert c.get("/health").json()["retrieval"] == status
    body = c.get("/recommend", params={"user_id": 3, "k": 10}).json()
    assert [x["item_id"] for x in body["items"]] == rec.recommend("3", k=10)
