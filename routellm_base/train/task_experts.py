"""Training of the task-experts router: closed-form ridge experts and a softmax gate, numpy only.

Targets come from battles between the reference pair: per prompt, the strong model's mean
outcome y (1 win, 0.5 tie, 0 loss) gives the gap 2y - 1. Golden labels (0/1 correctness) make
this exactly strong-correct minus weak-correct. Battles of other pairs carry no information about
this pair's gap and are counted, not used.

Each expert's ridge penalty is chosen by cross-validation within its kind (folds by prompt), the
linear-model counterpart of the validation split and early stopping of the gradient-trained
families. The gate is fitted on a 90% split by prompt; its accuracy on the other 10% is reported,
then it is refitted on every prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data.scored import ScoredPrompt
from ..errors import MissingDependencyError
from ..progress import progress_bar
from ..routers.task_experts import length_features
from .battles import Battles, pair_outcomes


@dataclass(frozen=True)
class TaskExpertsTrainConfig:
    ridge_penalties: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
    """Candidates for each expert's L2 penalty; the best by cross-validated squared error wins."""
    cv_folds: int = 5
    gate_c: float = 1.0
    """Inverse L2 strength of the gate (scikit-learn's ``C``)."""
    gate_max_iter: int = 2000
    gate_class_balance: float = 0.0
    """How far the gate's prior moves from the kinds' training frequencies towards equal odds:
    each row weighs ``(largest kind's size / its kind's size) ** gate_class_balance``. 0 keeps
    the frequencies (a prompt that could be either kind goes to the larger); 1 makes every kind
    equally likely a priori, so a small kind (a few hundred chat prompts beside 10,000 MMLU
    items) is not drowned."""
    validation_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.gate_class_balance <= 1.0:
            raise ValueError(f"gate_class_balance must be in [0, 1], got {self.gate_class_balance}")


def pair_gap_targets(
    battles: Battles, strong: str, weak: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(prompt indices, gap in [-1, 1], battles of other pairs) from the battles of one pair."""
    idx, strong_outcome = pair_outcomes(battles, strong, weak)
    prompts = battles.prompt_index[idx]
    totals = np.bincount(prompts, weights=strong_outcome, minlength=len(battles.prompts))
    counts = np.bincount(prompts, minlength=len(battles.prompts))
    have = np.flatnonzero(counts)
    return have, 2.0 * totals[have] / counts[have] - 1.0, len(battles) - len(idx)


@dataclass(frozen=True)
class RidgeFit:
    weight: np.ndarray
    bias: float
    penalty: float
    cv_mse: dict[float, float]


def fit_ridge(
    features: np.ndarray, target: np.ndarray, penalty: float, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Ridge regression with an unpenalised intercept, in closed form.

    ``weights`` (per row) are rescaled to mean 1, so a penalty means the same with or without them.
    """
    if weights is None:
        mean_x, mean_y = features.mean(axis=0), target.mean()
        xc, yc = features - mean_x, target - mean_y
    else:
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.mean()
        mean_x, mean_y = (
            (w[:, None] * features).sum(axis=0) / w.sum(),
            float((w * target).sum() / w.sum()),
        )
        root = np.sqrt(w)
        xc, yc = (features - mean_x) * root[:, None], (target - mean_y) * root
    gram = xc.T @ xc + penalty * np.eye(features.shape[1])
    weight = np.linalg.solve(gram, xc.T @ yc)
    return weight, float(mean_y - mean_x @ weight)


def fit_ridge_cv(
    features: np.ndarray, target: np.ndarray, penalties: Sequence[float], folds: int, seed: int
) -> RidgeFit:
    """Pick the penalty by k-fold squared error, then fit on every row."""
    if len(target) < 2 * folds:
        raise ValueError(
            f"an expert needs at least {2 * folds} labelled prompts to cross-validate its penalty; it has {len(target)}"
        )
    fold = np.random.default_rng(seed).permutation(len(target)) % folds
    cv_mse = {}
    for penalty in penalties:
        err = 0.0
        for k in range(folds):
            weight, bias = fit_ridge(features[fold != k], target[fold != k], penalty)
            err += float(((features[fold == k] @ weight + bias - target[fold == k]) ** 2).sum())
        cv_mse[float(penalty)] = err / len(target)
    best = min(cv_mse, key=lambda p: cv_mse[p])
    weight, bias = fit_ridge(features, target, best)
    return RidgeFit(weight, bias, best, cv_mse)


def fit_gate(
    embeddings: np.ndarray, kind: np.ndarray, n_kinds: int, config: TaskExpertsTrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression of the kind on the embedding (scikit-learn's L-BFGS; the loss is convex).

    With ``gate_class_balance=0`` classes keep their training frequencies as the prior, so a
    prompt that could be of either kind goes to the kind that is more common in the data; see
    :attr:`TaskExpertsTrainConfig.gate_class_balance` for the alternative.
    """
    weight, bias = np.zeros((n_kinds, embeddings.shape[1])), np.zeros(n_kinds)
    if n_kinds == 1:
        return weight, bias
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise MissingDependencyError(
            "training task_experts needs scikit-learn: pip install 'langchain-routellm[train]'"
        ) from exc
    model = LogisticRegression(
        C=config.gate_c, max_iter=config.gate_max_iter, random_state=config.seed
    )
    counts = np.bincount(kind, minlength=n_kinds).astype(np.float64)
    row_weight = (counts.max() / counts[kind]) ** config.gate_class_balance
    model.fit(embeddings, kind, sample_weight=row_weight)
    if (
        n_kinds == 2
    ):  # scikit-learn keeps one logit for two classes: the second class's, against zero
        weight[1], bias[1] = model.coef_[0], model.intercept_[0]
    else:
        weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    return weight, bias


def scored_task_rows(
    kinds: Mapping[str, Sequence[ScoredPrompt]], strong: str, weak: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, kind index, gap) of scored prompts grouped by kind: the gap is strong minus weak score."""
    rows = [(k, r) for k, group in enumerate(kinds.values()) for r in group]
    texts = [r.prompt for _, r in rows]
    kind = np.array([k for k, _ in rows], dtype=np.int64)
    gap = np.array([r.scores[strong] - r.scores[weak] for _, r in rows], dtype=np.float64)
    return texts, kind, gap


def train_task_experts(
    texts: Sequence[str],
    embeddings: np.ndarray,
    kind: np.ndarray,
    gap: np.ndarray,
    kinds: Sequence[str],
    config: TaskExpertsTrainConfig | None = None,
    progress: bool = True,
    centred: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit one ridge expert per kind and the gate; rows are (text, embedding, kind index, gap).

    ``centred`` names kinds whose gaps have no level comparable to the others: their targets
    have the kind's mean gap subtracted, so that the expert ranks prompts within the kind and
    contributes 0 on average. Preference labels without ties (a judge must pick one answer, as
    in RMB) overstate the gap against correctness labels, where both models are often right;
    left uncentred, anything that looks like chat would outrank every maths problem.
    """
    config = config or TaskExpertsTrainConfig()
    unknown = sorted(set(centred) - set(kinds))
    if unknown:
        raise ValueError(f"centred kinds {unknown} are not among the kinds {list(kinds)}")
    embeddings = np.asarray(embeddings, dtype=np.float64)
    features = np.hstack([embeddings, length_features(list(texts))])
    kind = np.asarray(kind, dtype=np.int64)
    raw_gap = np.asarray(gap, dtype=np.float64)
    gap = raw_gap.copy()
    for k, name in enumerate(kinds):
        if name in centred:
            gap[kind == k] -= raw_gap[kind == k].mean()
    iterator = progress_bar(list(enumerate(kinds)), enabled=progress, desc="task experts")
    fits: list[RidgeFit] = []
    for k, name in iterator:
        rows = kind == k
        try:
            fits.append(
                fit_ridge_cv(
                    features[rows], gap[rows], config.ridge_penalties, config.cv_folds, config.seed
                )
            )
        except ValueError as exc:
            raise ValueError(f"task kind {name!r}: {exc}") from exc

    rng = np.random.default_rng(config.seed)
    is_val = rng.random(len(kind)) < config.validation_fraction
    gate_accuracy = None
    if len(kinds) > 1 and is_val.any() and len(np.unique(kind[~is_val])) == len(kinds):
        w, b = fit_gate(embeddings[~is_val], kind[~is_val], len(kinds), config)
        predicted = np.argmax(embeddings[is_val] @ w.T + b, axis=1)
        gate_accuracy = float((predicted == kind[is_val]).mean())
    gate_weight, gate_bias = fit_gate(embeddings, kind, len(kinds), config)

    tensors = {
        "gate_weight": gate_weight.astype(np.float32),
        "gate_bias": gate_bias.astype(np.float32),
        "expert_weight": np.stack([f.weight for f in fits]).astype(np.float32),
        "expert_bias": np.array([f.bias for f in fits], dtype=np.float32),
    }
    report = {
        "config": asdict(config),
        "kinds": {
            name: {
                "prompts": int((kind == k).sum()),
                "mean_gap": round(float(raw_gap[kind == k].mean()), 4),
                "centred": name in centred,
                "ridge_penalty": fits[k].penalty,
                "cv_mse": {str(p): round(e, 5) for p, e in fits[k].cv_mse.items()},
            }
            for k, name in enumerate(kinds)
        },
        "gate_validation_accuracy": gate_accuracy,
    }
    return tensors, report
