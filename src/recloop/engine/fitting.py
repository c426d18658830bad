"""``Recommender.fit``: build the fit data, fit a fresh model, and install both.

The users' state, vocabularies and counters are replaced under the state lock, the model
under the model lock, and the online learner starts over with a reservoir seeded from the
fitted history.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from recloop.data.dataset import as_interactions
from recloop.engine.fitdata import RESERVOIR_HISTORY, build_fit_data
from recloop.engine.metadata import attach_content
from recloop.engine.userstate import UserState
from recloop.models import FitOptions, create

if TYPE_CHECKING:
    from recloop.engine.recommender import Recommender


def fit_recommender(
    rec: Recommender,
    df: pd.DataFrame,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
    epochs: int | None,
    show_progress: bool,
    validation: bool | None,
) -> Recommender:
    """What ``Recommender.fit`` documents."""
    inter = as_interactions(df)
    model = create(rec.model_name, seed=rec.seed, **rec.hyperparameters)
    if validation is None:
        validation = model.holds_out_validation
    data = build_fit_data(inter, rec.feedback, validation)
    n_users = len(data.users)
    with rec._lock:
        rec._fit_metadata(items, users, data.items)  # items with attributes join the catalogue
        n_items = len(data.items)
        train = data.train
        if n_items != train.n_items:
            train = dataclasses.replace(train, n_items=n_items)
        attach_content(model, rec.metadata_, n_items)
        torch_threads = torch.get_num_threads()
        try:
            report = model.fit(
                train,
                FitOptions(epochs=epochs, show_progress=show_progress, threads=rec.threads),
            )
        finally:
            if rec.threads and torch_threads != rec.threads:
                torch.set_num_threads(torch_threads)
        model.grow(n_users, n_items)
        rec.close()
        with rec._model_lock:
            rec.model_, rec.fit_report_ = model, report
        rec.users_, rec.items_ = data.users, data.items
        rec.users_.reuse_from = n_users
        rec.user_state_ = UserState()
        rec.user_state_.reset(data.sequences, data.times, data.seen)
        rec.item_counts_ = np.bincount(data.positive_items, minlength=n_items).astype(np.float64)
        rec.recent_.reset(data.positive_items, n_items)
        rec.metadata_.fit_content(train, rec.seed)
        rec.items_meta_ = rec.metadata_.items
        rec.events_applied_ = 0
        rec.users_evicted_ = 0
        rec.model_version_ += 1
        rec.fitted_ = True
        rec._learner = rec._make_learner()
        seqs, rank = data.sequences, data.positive_rank
        rec._learner.seed_reservoir(
            data.positive_users,
            data.positive_items,
            lambda uu, j: seqs[uu][max(0, rank[j] - RESERVOIR_HISTORY) : rank[j]],
        )
    return rec
