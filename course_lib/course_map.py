"""Which section of the study notes each notebook teaches (the README's chapter table, chapter 00's map).

The notes ("Large Model Learning Note") have four parts; each section maps to one or more notebooks
under ``chapters/``. Sections without a notebook yet are listed with ``notebooks=()`` so the map
shows honestly what is still to come.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """One section of the study notes and the notebooks that teach it."""
    part: str                  # the notes' part heading, e.g. "手撕大模型"
    title: str                 # the notes' section heading, e.g. "Transformer"
    notebooks: tuple[str, ...]  # notebook file names under chapters/ ("" when not written yet)
    builds: str                # what the learner builds, one line


NOTES_SECTIONS: tuple[Section, ...] = (
    Section("课程导览", "课程导览 (course map)", ("00_course_map.ipynb", "00b_attention_widget.ipynb"),
            "environment check, course map, model-family mind map, attention widgets"),
    Section("手撕大模型", "Transformer", ("01_transformer.ipynb",),
            "attention, multi-head, PE, encoder/decoder, toy seq2seq training"),
    Section("手撕大模型", "LLM、VLM基本框架", ("02a_bert_t5_gpt.ipynb", "02b_beyond_transformer.ipynb"),
            "BERT + WordPiece, T5, GPT, RNN/LSTM, RWKV, Mamba, ViT/CLIP/LLaVA"),
    Section("手撕大模型", "LLaMa", ("03_llama.ipynb",),
            "byte-level BPE, RMSNorm, RoPE, SwiGLU, GQA, KV cache, sampling, SmolLM2 chat"),
    Section("手撕大模型", "DeepSeek", ("04a_deepseek_mla.ipynb", "04b_deepseek_moe_mtp.ipynb", "04c_fp8.ipynb",
                                       "04d_post_training.ipynb"),
            "MLA, DeepSeekMoE, MTP, FP8 block scaling; R1's post-training: SFT, DPO, GRPO with verifiable rewards"),
    Section("手撕大模型", "WebGPT", ("11_webgpt.ipynb",), "text browser, quoting answers, AutoGPT loop"),
    Section("微调技术 PEFT", "LoRA", ("05_lora.ipynb",),
            "LoRALinear, rsLoRA, DoRA, Q4_1 (QLoRA-style) base, merge/unmerge, tool-call fine-tune of SmolLM2"),
    Section("微调技术 PEFT", "P-Tuning", ("06_p_tuning.ipynb",),
            "prompt tuning, P-Tuning prompt encoder (MLP / LSTM), prefix tuning; sentiment task on frozen SmolLM2"),
    Section("知识检索增强", "embedding", ("07_embedding.ipynb",),
            "word2vec SGNS vs gensim, MiniLM sentence embeddings, InfoNCE fine-tune"),
    Section("知识检索增强", "向量数据库", ("08_vector_db.ipynb",),
            "exact search, k-means IVF, PQ / IVF-PQ (ADC), HNSW, a crash-safe vector store, Qdrant side by side"),
    Section("知识检索增强", "RAG", ("09_rag.ipynb",),
            "chunking, BM25 vs rank_bm25, MiniLM dense + RRF hybrid, SmolLM2 yes/no rerank, HyDE, cited answers"),
    Section("知识检索增强", "agent", ("10_agent.ipynb",),
            "ReAct parser and loop, OpenAI function calling, constrained decoding, Python sandbox, AutoGPT loop with memory"),
    Section("大模型工具", "langchain", ("12_langchain.ipynb",),
            "Runnables (invoke/batch/stream, |), prompts, SmolLM2 chat step, JSON repair, RAG and tool chains, "
            "memory, chain graph, interop with langchain-core"),
    Section("大模型工具", "DevOps工具", ("13_devops.ipynb",),
            "OpenAI-compatible server, DDP / FSDP with torchrun, expert-parallel all-to-all, checkpoints, tracking"),
)


def notebooks() -> list[str]:
    """Every notebook named in the map, in course order."""
    return [nb for section in NOTES_SECTIONS for nb in section.notebooks]
