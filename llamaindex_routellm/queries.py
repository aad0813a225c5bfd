"""Routing on the user's query when a LlamaIndex prompt template wraps it in retrieved context.

A query engine hands the LLM its QA template filled with the retrieved chunks and the query
(``"Context information is below. ... Query: {query_str}\\nAnswer: "``). Scored whole, every
question looks like a long reading task. :func:`query_field` reads ``{query_str}`` back out
of such a filled template, so the router scores the question alone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from llama_index.core.prompts import (
    BasePromptTemplate,
    ChatPromptTemplate,
    PromptTemplate,
    SelectorPromptTemplate,
)

from routellm_base import TemplateField

QUERY_FIELD = "query_str"
"""The template variable LlamaIndex's query engines fill with the user's query."""


def _template_strings(prompt: BasePromptTemplate | str) -> Iterator[str]:
    if isinstance(prompt, str):
        yield prompt
    elif isinstance(prompt, PromptTemplate):
        yield prompt.template
    elif isinstance(prompt, ChatPromptTemplate):
        for message in prompt.message_templates:
            if isinstance(message.content, str):
                yield message.content
    elif isinstance(prompt, SelectorPromptTemplate):
        yield from _template_strings(prompt.default_template)
        for _, conditional in prompt.conditionals or []:
            yield from _template_strings(conditional)
    else:
        raise TypeError(
            "query_field takes PromptTemplate, ChatPromptTemplate, SelectorPromptTemplate or "
            f"str.format-style template strings, got {type(prompt).__name__}"
        )


def _wraps_the_query(template: str, field: str) -> bool:
    # A template that is only "{query_str}" adds nothing to read past: the default rule
    # already routes on the whole turn.
    placeholder = "{" + field + "}"
    return placeholder in template and template.strip() != placeholder


def query_field(*prompts: BasePromptTemplate | str, field: str = QUERY_FIELD) -> TemplateField:
    """A ``routing_text_fn`` that routes on ``{field}`` of any of ``prompts`` once filled in.

    ``prompts`` are LlamaIndex prompt templates (``PromptTemplate``, ``ChatPromptTemplate``,
    ``SelectorPromptTemplate``) or template strings, e.g. a query engine's own::

        qa = query_engine.get_prompts()["response_synthesizer:text_qa_template"]
        RouterLLM(strong=..., weak=..., routing_text_fn=query_field(qa))

    A call whose user or system turn matches none of them is routed by the default rule.
    Raises ``RoutingInputError`` when no template has the field.
    """
    templates = [t for p in prompts for t in _template_strings(p) if _wraps_the_query(t, field)]
    return TemplateField(templates, field)


@functools.cache
def stock_query_field() -> TemplateField:
    """:func:`query_field` over every prompt LlamaIndex ships with a ``{query_str}`` (text QA,
    refine, tree summarise, choice select, text-to-SQL, ... in their completion and chat forms):
    what ``RouterLLM(route_on_query=True)``, the default, recognises."""
    from llama_index.core.prompts import chat_prompts, default_prompts

    stock = [
        value
        for module in (default_prompts, chat_prompts)
        for value in vars(module).values()
        # RichPromptTemplate (jinja) is left out: its fields are not str.format fields.
        if isinstance(value, PromptTemplate | ChatPromptTemplate | SelectorPromptTemplate)
    ]
    return query_field(*stock)
