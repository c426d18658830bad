"""faiss retrieval with exact re-ranking behind ``Recommender.recommend``: recall, equality
with exact scoring, freshness, and who is answered from the index."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from recloop import Recommender
from recloop.engine.retrieval import RetrievalIndex


def two_groups_df(n_users: int = 60, n_items: int = 80, per_user: int = 12) -> pd.DataFrame:
    """Even users like even items, odd users odd items."""
    rng = np.random.default_rng(0)
    rows, t = [], 1_000_000
    for u in range(n_users):
        for i in rng.choice(np.arange(u % 2, n_items, 2), size=per_user, replace=False):
            t += int(rng.integers(1, 60))
            rows.append((u, int(i), t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("retrieval") / "mf"
    Recommender(model="mf", seed=0).fit(two_groups_df()).save(path)
    return path


@pytest.fixture
def rec(model_dir) -> Recommender:
    return Recommender.load(model_dir)


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


def _exhaustive(rec: Recommender) -> Recommender:
    rec.use_retrieval(0, nprobe=10_000)
    rec.build_retrieval_index(background=False)
    assert rec.retrieval_status == "faiss"
    return rec


def test_retrieval_matches_exact_scoring(rec):
    _exhaustive(rec)
    for user in ("0", "3", "17"):
        for exclude in (True, False):
            got = rec.recommend_with_scores(user, 10, exclude)
            want = rec.recommend_batch_with_scores([user], 10, exclude, exact=True)[0]
            assert [i for i, _ in got] == [i for i, _ in want]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4)


def test_the_index_answers_only_personalised_users(rec, monkeypatch):
    """Unknown users get popularity from the engine; the index is asked only for the others."""
    _exhaustive(rec)
    asked: list[int] = []
    real = rec._retriever.top

    def spy(uidx, *args, **kwargs):
        asked.append(uidx)
        return real(uidx, *args, **kwargs)

    monkeypatch.setattr(rec._retriever, "top", spy)
    got = rec.recommend_batch(["never-seen", "3"], 5)
    assert asked == [rec.users_.get("3")]
    assert got[0] == rec.recommend_batch(["nobody"], 5, exact=True)[0]  # popularity


def test_items_added_after_the_build_are_candidates_and_trigger_a_rebuild(rec):
    _exhaustive(rec)
    rec._retriever.rebuild_after = 1
    rec.update([{"user_id": "9", "item_id": "new-item"}])
    rec.flush()  # the parameter step grows the model's item table
    got = rec.recommend("3", 80, False)
    assert "new-item" in got
    for _ in range(100):  # the rebuild runs in the background
        if rec.retrieval_info()["items"] == rec.n_items:
            break
        time.sleep(0.05)
    assert rec.retrieval_info()["items"] == rec.n_items


def test_models_without_vectors_stay_exact(rec, monkeypatch):
    monkeypatch.setattr(rec.model_, "item_vectors", lambda: None)
    rec.use_retrieval(0)
    rec.build_retrieval_index(background=False)
    info = rec.retrieval_info()
    assert info["status"] == "exact" and info["disabled_reason"]
    assert rec.recommend("3", 5) == rec.recommend_batch(["3"], 5)[0]


def test_models_whose_scores_are_not_dot_products_stay_exact(rec, monkeypatch):
    real = rec.model_.score
    monkeypatch.setattr(rec.model_, "score", lambda u, h: 2 * real(u, h) + 1)
    rec.use_retrieval(0)
    rec.build_retrieval_index(background=False)
    assert rec.retrieval_status == "exact"
