"""Fixtures for the LangChain integration tests (scripted chat models, the real SmolLM2)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from langchain_core.language_models import BaseChatModel
from lc_helpers import ScriptedChatModel, scripted

import routellm_base

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def random_router() -> routellm_base.RandomRouter:
    return routellm_base.RandomRouter(seed=0)


@pytest.fixture
def make_scripted() -> Callable[..., ScriptedChatModel]:
    return scripted


@pytest.fixture(scope="session")
def smollm2_loader() -> Callable[..., BaseChatModel]:
    """Loads SmolLM2-135M-Instruct once per session (~25 s); returns a factory of chat models
    sharing the weights."""
    pytest.importorskip("transformers")
    from langchain_routellm.local_models import load_smollm2

    start = time.perf_counter()
    load_smollm2()
    print(f"\nSmolLM2 loaded in {time.perf_counter() - start:.1f}s")
    return load_smollm2
