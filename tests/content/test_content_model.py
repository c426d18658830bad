"""The content model and the engine's content path for items without interactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import genre_items
from recloop import Recommender
from recloop.errors import InvalidInputError
from recloop.online import OnlineConfig
from synthdata import synthetic


def test_content_ranks_an_item_with_no_interactions_by_its_genre():
    df = synthetic()
    df = df[df.item_id != 10]  # item 10 (even) keeps its metadata and loses its interactions
    rec = Recommender(model="content", seed=0).fit(df, items=genre_items())
    assert rec.n_items == 80
    s = rec.score(0, ["10", "11"])
    assert s[0] > s[1], "an even user prefers the cold even item to an odd one"
    assert rec.fit_report_["content"] == "features"


def test_content_profile_follows_the_latest_events_without_a_step():
    rec = Recommender(model="content", seed=0, online=OnlineConfig(enabled=False))
    rec.fit(synthetic(), items=genre_items())
    rec.update([{"user_id": "new", "item_id": i, "type": "click"} for i in (1, 3, 5)])
    top = rec.recommend("new", k=10)
    assert all(int(i) % 2 == 1 for i in top)
    rec.update([{"user_id": "new", "item_id": i, "type": "click"} for i in (0, 2, 4, 6, 8, 12)])
    assert np.mean([int(i) % 2 == 0 for i in rec.recommend("new", k=10)]) >= 0.8


@pytest.mark.parametrize("model", ["mf", "ease", "content"])
def test_a_new_item_is_recommended_on_the_next_request(model):
    rec = Recommender(model=model, seed=0).fit(synthetic(), items=genre_items())
    rec.update([{"user_id": "fan", "item_id": i, "type": "click"} for i in range(0, 30, 2)])
    assert rec.set_items(
        pd.DataFrame([{"item_id": "fresh", "genres": ["Even"], "title": "calm film new"}])
    ) == ["fresh"]
    assert "fresh" in rec.recommend("fan", k=10), model
    odd = rec.recommend("1", k=10)
    assert "fresh" not in odd, "a user of the other genre does not get it"


def test_items_with_interactions_keep_the_models_scores():
    """The content path touches only items with no positive interaction."""
    plain = Recommender(model="ease", seed=0).fit(synthetic())
    with_meta = Recommender(model="ease", seed=0).fit(synthetic(), items=genre_items())
    for u in ("0", "7", "31"):
        np.testing.assert_allclose(
            with_meta.score_all(u)[1], plain.score_all(u)[1], rtol=1e-6, atol=1e-6
        )


def test_metadata_survives_save_and_load(tmp_path):
    rec = Recommender(model="mf", seed=0).fit(
        synthetic(),
        items=genre_items(),
        users=pd.DataFrame({"user_id": [0, 1], "age": [20, 30], "gender": ["F", "M"]}),
    )
    rec.set_items(pd.DataFrame([{"item_id": "x", "genres": ["Even", "New"], "title": "t"}]))
    rec.set_users(pd.DataFrame([{"user_id": "u9", "occupation": "writer"}]))
    rec.save(tmp_path / "r")
    again = Recommender.load(tmp_path / "r")
    assert again.item_metadata("x") == {"genres": ["Even", "New"], "title": "t"}
    assert again.item_metadata(3)["genres"] == "Odd"
    assert again.user_metadata(1) == {"age": 30, "gender": "M"}
    assert again.user_metadata("u9") == {"occupation": "writer"}
    for u in ("0", "1", "fan"):
        assert again.recommend(u, k=10) == rec.recommend(u, k=10)
    np.testing.assert_allclose(again.score("2", ["x"]), rec.score("2", ["x"]), rtol=1e-5)


def test_changed_rows_merge_and_bad_tables_name_the_field():
    rec = Recommender(model="popularity", seed=0).fit(synthetic(), items=genre_items())
    rec.set_items(pd.DataFrame({"item_id": [4], "title": ["renamed"]}))
    meta = rec.item_metadata("4")
    assert meta["title"] == "renamed" and meta["genres"] == "Even"
    assert rec.item_metadata("no-such") is None
    with pytest.raises(InvalidInputError, match="item_id"):
        rec.set_items(pd.DataFrame({"name": ["x"]}))
    with pytest.raises(InvalidInputError, match="items"):
        rec.set_items([{"item_id": 1}])  # type: ignore[arg-type]


def test_without_metadata_content_uses_interaction_profiles():
    rec = Recommender(model="content", seed=0).fit(synthetic())
    assert rec.fit_report_["content"] == "interactions"
    assert np.mean([int(i) % 2 == 0 for i in rec.recommend("0", k=10)]) >= 0.8


@pytest.mark.parametrize("model", ["ease", "mf", "sasrec", "content"])
def test_explanations_are_faithful(model):
    """Removing the named history item lowers the explained item's score (>= 80%)."""
    cfg = OnlineConfig(enabled=False)
    items = genre_items()
    items["title"] = [f"film {i} {'abcdefghij'[i % 10]}" for i in range(80)]
    rec = Recommender(model=model, seed=0, online=cfg).fit(synthetic(), items=items)
    checked = falls = 0
    for user in ("2", "5", "8"):
        hist = rec.history(user)
        for ex in rec.explain_items(user, rec.recommend(user, k=5)):
            if "because" not in ex:
                continue
            named = ex["because"][0]["item_id"]
            probe = Recommender(model=model, seed=0, online=cfg).fit(synthetic(), items=items)
            for name, keep in (("p", hist), ("q", [i for i in hist if i != named])):
                probe.update(
                    [
                        {"user_id": name, "item_id": i, "type": "click", "timestamp": 2e6 + n}
                        for n, i in enumerate(keep)
                    ]
                )
            p, q = probe.score("p", [ex["item_id"]])[0], probe.score("q", [ex["item_id"]])[0]
            checked += 1
            falls += q < p
    if model != "content":
        assert checked >= 10
    assert falls >= 0.8 * checked, f"{model}: {falls}/{checked}"


def test_explanations_say_popular_now_for_a_new_user_and_share_genres():
    rec = Recommender(model="ease", seed=0).fit(synthetic(), items=genre_items())
    top = rec.recommend("nobody", k=3)
    assert all(
        e.get("popular_now") and "because" not in e for e in rec.explain_items("nobody", top)
    )
    ex = rec.explain("0", rec.recommend("0", k=1)[0])
    assert ex["genres"] == ["Even"] and ex["because"][0]["weight"] > 0
