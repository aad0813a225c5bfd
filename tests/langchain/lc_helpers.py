"""Test helpers: scripted chat models and a run recorder (imported by tests and conftest)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


def usage(inp: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


class ScriptedChatModel(BaseChatModel):
    """Replies with scripted AIMessages in turn (tool calls included) and can bind tools.

    Records each call's messages and kwargs, so tests can check what the router passed on.
    """

    model_name: str = "scripted"
    replies: list[AIMessage] = Field(default_factory=list)
    calls: list[dict[str, Any]] = Field(default_factory=list)
    _index: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # As real chat models do: the model name is part of its identity (and of cache keys).
        return {"model_name": self.model_name}

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        """The reply to ``messages``: the next scripted one."""
        return self._next()

    def _next(self) -> AIMessage:
        reply = self.replies[min(self._index, len(self.replies) - 1)]
        self._index += 1
        return reply.model_copy(
            update={"response_metadata": {**reply.response_metadata, "model_name": self.model_name}}
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append({"messages": messages, "stop": stop, "streamed": True, **kwargs})
        reply = self._reply(messages)
        words = str(reply.content).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if i == 0 else " " + word,
                    # Usage and model name on the last chunk, as OpenAI streams them.
                    usage_metadata=reply.usage_metadata if last else None,
                    response_metadata=reply.response_metadata if last else {},
                    tool_call_chunks=[
                        {
                            "name": tc["name"],
                            "args": json.dumps(tc["args"]),
                            "id": tc["id"],
                            "index": j,
                        }
                        for j, tc in enumerate(reply.tool_calls)
                    ]
                    if last
                    else [],
                )
            )

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)


def scripted(
    name: str, *replies: AIMessage | str, in_tokens: int = 10, out_tokens: int = 5
) -> ScriptedChatModel:
    msgs = [
        r
        if isinstance(r, AIMessage)
        else AIMessage(content=r, usage_metadata=usage(in_tokens, out_tokens))  # type: ignore[arg-type]
        for r in replies
    ]
    return ScriptedChatModel(model_name=name, replies=msgs)


def fake(name: str, text: str = "ok") -> GenericFakeChatModel:
    """LangChain's own fake chat model: no usage, no tools (to test those paths)."""
    return GenericFakeChatModel(
        messages=itertools.cycle([AIMessage(content=text, response_metadata={"model_name": name})])
    )


class RunRecorder(BaseCallbackHandler):
    """Records chat-model runs: id, parent id, name, metadata, tags, usage at end."""

    run_inline = True

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends: dict[Any, LLMResult] = {}

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: Any,
        *,
        run_id: Any,
        parent_run_id: Any = None,
        tags: Any = None,
        metadata: Any = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append(
            {
                "run_id": run_id,
                "parent_run_id": parent_run_id,
                "name": (serialized or {}).get("name") or kwargs.get("name"),
                "metadata": metadata or {},
                "tags": tags or [],
            }
        )

    def on_llm_end(self, response: LLMResult, *, run_id: Any, **kwargs: Any) -> None:
        self.ends[run_id] = response


class ReactiveToolModel(ScriptedChatModel):
    """A scripted agent brain: asks for the ``add`` tool, then answers with the tool's result.

    Stateless (decides from the conversation), so either side can take any step of a loop; it
    streams like its parent (words, then usage and tool calls on the last chunk)."""

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if last.type == "tool":
            reply = AIMessage(content=f"The answer is {last.content}.", usage_metadata=usage(30, 6))
        else:
            reply = AIMessage(
                content="",
                tool_calls=[
                    {"name": "add", "args": {"a": 2, "b": 3}, "id": f"call_{len(messages)}"}
                ],
                usage_metadata=usage(25, 9),
            )
        return reply.model_copy(update={"response_metadata": {"model_name": self.model_name}})
