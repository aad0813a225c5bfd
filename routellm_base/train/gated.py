"""Fitting the text gate of the ``gated`` router family (:mod:`routellm_base.routers.gated`).

The gate is a softmax regression over task kinds on character n-gram TF-IDF features; its
L2 penalty is chosen by 4-fold cross-validated log loss among ``cs``, with the kinds weighted
equally (a kind of 1,000 prompts beside one of 10,000 is not drowned). scikit-learn fits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..routers.gated import GATE_SETTINGS, TextGate


def fit_text_gate(
    texts: Sequence[str],
    kind: np.ndarray,
    n_kinds: int,
    *,
    cs: Sequence[float] = (1.0, 10.0, 100.0),
    seed: int = 0,
) -> tuple[TextGate, dict[str, Any]]:
    """Fit P(kind | text) on ``texts`` labelled ``kind`` (ints in [0, n_kinds)).

    Returns the gate and a record: the chosen ``C``, each candidate's cross-validated log loss.
    Raises ``ValueError`` when a kind has fewer than 4 texts (4-fold cross-validation needs them).
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    kind = np.asarray(kind, dtype=np.int64)
    if len(texts) != len(kind):
        raise ValueError(f"{len(texts)} texts but {len(kind)} kind labels")
    counts = np.bincount(kind, minlength=n_kinds)
    if len(counts) != n_kinds or counts.min() < 4:
        raise ValueError(
            f"every kind needs at least 4 texts to fit the gate; kinds have {counts.tolist()}"
        )
    n_features = int(GATE_SETTINGS["n_features"])
    plain = TextGate(np.ones(n_features), np.zeros((n_kinds, n_features)), np.zeros(n_kinds))
    raw = plain.counts(texts)
    # scikit-learn's smooth idf: ln((1 + n) / (1 + df)) + 1.
    df = np.bincount(raw.indices, minlength=n_features)
    idf = np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0
    features = TextGate(idf, np.zeros((n_kinds, n_features)), np.zeros(n_kinds)).features(texts)
    folds = StratifiedKFold(4, shuffle=True, random_state=seed)
    losses = [
        -cross_val_score(_model(c), features, kind, cv=folds, scoring="neg_log_loss").mean()
        for c in cs
    ]
    best = float(cs[int(np.argmin(losses))])
    model = _model(best).fit(features, kind)
    weight, bias = model.coef_, model.intercept_
    if n_kinds == 2:  # scikit-learn's binary model is one logit; softmax([-z/2, z/2]) = sigmoid(z)
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    record = {
        "features": dict(GATE_SETTINGS),
        "C": best,
        "cv_log_loss": {
            f"{c:g}": round(float(loss), 4) for c, loss in zip(cs, losses, strict=True)
        },
        "texts_per_kind": counts.tolist(),
    }
    return TextGate(idf, weight, bias), record


def _model(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
