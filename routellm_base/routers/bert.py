"""BERT classifier router (RouteLLM, section 4.2), on the all-MiniLM-L6-v2 encoder.

A fine-tuned 6-layer BERT encoder (all-MiniLM-L6-v2, 384-d), mean pooling over the attention mask
and a linear head over three classes, from the strong model's point of view::

    0  strong model wins     1  tie     2  weak model wins

Win rate = P(strong wins) + ``tie_weight`` * P(tie), ``tie_weight`` = 0.5 by default: a tie
counts as half a win, as ties count in the training battles of the other routers. RouteLLM's
released BERT router returns ``1 - P(tie) - P(weak wins)``, i.e. P(strong wins) alone
(``tie_weight`` = 0); a checkpoint may set ``tie_weight`` in its config params to reproduce that.
RouteLLM's BERT also classifies from the [CLS] token; this router mean-pools, which is how
all-MiniLM-L6-v2 was pre-trained to produce sentence embeddings.

A prompt longer than ``max_length`` tokens is cut by the checkpoint's ``truncation``: ``head``
keeps its first tokens (RouteLLM's choice, and the default of checkpoints that name none);
``head_tail`` keeps the first half and the last half of the budget, so the instruction that
often follows a pasted document survives (Sun et al., 2019, *How to Fine-Tune BERT for Text
Classification?*, found head+tail the best truncation for long texts). Training and routing cut
the same way (:func:`encode_prompts` serves both), though not to the same budget for ``head``:
``routellm train bert`` trains on ``--max-length`` tokens and writes ``max_length`` 256 for
routing, as head checkpoints always have; a ``head_tail`` checkpoint routes at its training
length, because its cut depends on the budget.

torch and transformers are imported when a router is built, never when this module is imported.
The checkpoint's weights hold the full fine-tuned state dict (``encoder.*`` and ``head.*``); the
base folder supplies only the architecture config and the tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, MissingDependencyError
from .classifier import CLASSIFIER_LABELS, ClassifierRouter

BERT_LABELS = CLASSIFIER_LABELS
BASE_WEIGHTS_FILE = "model.safetensors"
TRUNCATIONS = ("head", "head_tail")
"""How a prompt over ``max_length`` tokens is cut: its first tokens, or its first and last."""


def _torch_and_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            "the bert router needs torch and transformers: pip install 'langchain-routellm[train]'"
        ) from exc
    return torch, transformers


def resolve_base_path(
    base_model: str, base_path: str | Path | None = None, base_sha256: str | None = None
) -> Path:
    """The local folder of the base encoder: ``base_path``, else the packaged all-MiniLM-L6-v2.

    Only local folders are used (never the Hugging Face Hub). When ``base_sha256`` is given, the
    folder's ``model.safetensors`` must match it, so the tokenizer is the one the checkpoint was
    fine-tuned with.
    """
    from ..embedders.sentence_transformer import MINILM_NAME, packaged_minilm_path
    from ..hashing import verify_sha256

    if base_path:
        path = Path(base_path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"base encoder folder {path} does not exist (only local paths are used)"
            )
    elif base_model == MINILM_NAME:
        path = packaged_minilm_path()
    else:
        path = Path(base_model).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"base encoder {base_model!r} is not a local folder; this library loads encoders from local paths only"
            )
    if base_sha256 and (path / BASE_WEIGHTS_FILE).is_file():
        verify_sha256(path / BASE_WEIGHTS_FILE, base_sha256, f"base encoder {base_model!r} weights")
    return path


def build_classifier(
    base_path: Path,
    num_labels: int = len(BERT_LABELS),
    pretrained: bool = False,
    progress: bool = True,
) -> tuple[Any, Any]:
    """(tokenizer, module): a BERT encoder with mean pooling and a linear head.

    ``pretrained`` loads the base encoder's weights (for training); otherwise the architecture
    alone is built, to be filled from a checkpoint's state dict. ``progress=False`` silences
    transformers' weight-loading bar for this load (its switch is process-wide, so it is restored).
    """
    torch, transformers = _torch_and_transformers()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    if pretrained:
        bars = transformers.utils.logging
        silenced = not progress and bars.is_progress_bar_enabled()
        if silenced:
            bars.disable_progress_bar()
        try:
            encoder = transformers.AutoModel.from_pretrained(str(base_path), local_files_only=True)
        finally:
            if silenced:
                bars.enable_progress_bar()
    else:
        config = transformers.AutoConfig.from_pretrained(str(base_path), local_files_only=True)
        encoder = transformers.AutoModel.from_config(config)

    class MeanPooledClassifier(torch.nn.Module):  # type: ignore[name-defined]  # torch is imported lazily
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.encoder(**kwargs).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return self.head(pooled)

    return tokenizer, MeanPooledClassifier()


def encode_prompts(
    tokenizer: Any, texts: list[str], max_length: int, truncation: str
) -> dict[str, Any]:
    """The encoder's input for ``texts``: torch tensors of shape (len(texts), n), n <=
    ``max_length`` special tokens included, padded to the longest: ``input_ids`` and
    ``attention_mask``, and with the ``head`` cut also ``token_type_ids`` where the tokenizer
    makes them (all zeros for one text, which the encoder assumes when they are absent).

    Raises ``ValueError`` for a ``truncation`` not in :data:`TRUNCATIONS`, or when ``max_length``
    leaves no token for the text beside the special tokens (fewer than 2 for ``head_tail``).
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, not {truncation!r}")
    keys = ("input_ids", "attention_mask", "token_type_ids")
    # The special tokens the tokenizer puts before and after a text ([CLS] ... [SEP] for BERT).
    probe, bare = tokenizer("x")["input_ids"], tokenizer("x", add_special_tokens=False)["input_ids"]
    specials = len(probe) - len(bare)
    least = 2 if truncation == "head_tail" else 1  # head_tail keeps at least one token of each end
    if max_length - specials < least:
        raise ValueError(
            f"{truncation}: max_length {max_length} leaves {max(max_length - specials, 0)} of its tokens for the "
            f"text beside {specials} special tokens; give at least {specials + least}"
        )
    if truncation == "head":
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return {k: v for k, v in batch.items() if k in keys}
    before = next((i for i in range(len(probe)) if probe[i : i + len(bare)] == bare), None)
    if before is None:
        raise ValueError(
            f"head_tail: cannot find the text between {type(tokenizer).__name__}'s special tokens"
        )
    after = specials - before
    budget = max_length - specials
    head = budget // 2
    # The whole text is tokenised, as the head cut's truncation does too.
    ids = tokenizer(texts, truncation=False, verbose=False)["input_ids"]
    kept = [
        x if len(x) <= max_length else x[: before + head] + x[len(x) - (budget - head) - after :]
        for x in ids
    ]
    batch = tokenizer.pad({"input_ids": kept}, padding=True, return_tensors="pt")
    return {k: v for k, v in batch.items() if k in keys}


class BertRouter(ClassifierRouter):
    family = "bert"

    def __init__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: list[str],
        strong_model: str,
        weak_model: str,
        *,
        base_model: str = "all-MiniLM-L6-v2",
        base_sha256: str | None = None,
        base_path: str | None = None,
        max_length: int = 256,
        truncation: str = "head",
        batch_size: int = 32,
        tie_weight: float = 0.5,
        num_labels: int = len(BERT_LABELS),
        pooling: str = "mean",
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        if num_labels != len(BERT_LABELS) or pooling != "mean":
            raise CheckpointError(
                f"bert checkpoint {name!r}: expected 3 labels and mean pooling, got {num_labels}, {pooling!r}"
            )
        if truncation not in TRUNCATIONS:
            raise CheckpointError(
                f"bert checkpoint {name!r}: truncation must be one of {TRUNCATIONS}, not {truncation!r}"
            )
        torch, _ = _torch_and_transformers()
        super().__init__(
            name,
            tie_weight=tie_weight,
            batch_size=batch_size,
            torch=torch,
            strong_model=strong_model,
            weak_model=weak_model,
            **kwargs,
        )
        self.models = list(models)
        self.base_model = base_model
        self.base_sha256 = base_sha256
        self.max_length = int(max_length)
        self.truncation = truncation
        self._device = torch.device(device)
        path = resolve_base_path(base_model, base_path, base_sha256)
        self.tokenizer, self.model = build_classifier(path)
        state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
        expected = self.model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"bert checkpoint {name!r} does not match the {base_model} architecture: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        for key, value in state.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise CheckpointError(
                    f"bert checkpoint {name!r}: tensor {key} has shape {tuple(value.shape)}, "
                    f"expected {tuple(expected[key].shape)}"
                )
        self.model.load_state_dict(state, strict=True)
        self.model.to(self._device).eval()

    def _logits(self, texts: list[str]) -> Any:
        batch = encode_prompts(self.tokenizer, texts, self.max_length, self.truncation)
        return self.model(**{k: v.to(self._device) for k, v in batch.items()})
