"""Build ``data/bpe_corpus.txt``, the mixed corpus the BPE tests compare against HF ``tokenizers``.

    python data/make_bpe_corpus.py

Parts (each a few KB to ~100 KB): Python documentation topics (``pydoc_data.topics``), source code
of a few stdlib modules, Chinese prose written for the course, emoji (ZWJ sequences, flags, skin
tones), whitespace runs (spaces, tabs, newlines, NBSP, ideographic space) and special tokens in
context. Deterministic: same Python version, same file.
"""

from __future__ import annotations

import inspect
import json
import random
import textwrap
from pathlib import Path

CHINESE = """\
大语言模型（Large Language Model, LLM）是在海量文本上训练的神经网络，它的任务看起来很简单：根据前面的词，预测下一个词。
LLaMA 是 Meta 发布的一系列开源大模型。与原始的 Transformer 相比，它只保留了解码器（Decoder-only），并做了几处改动：
用 RMSNorm 代替 LayerNorm 并放在每个子层之前（Pre-Norm）；用旋转位置编码（RoPE）代替绝对位置编码；
用 SwiGLU 代替 ReLU 前馈网络；在较新的版本里，用分组查询注意力（GQA）减少 KV 缓存的大小。
分词器（Tokenizer）把文本切成“词元”（token）。字节级 BPE 先把文本变成 UTF-8 字节，再反复合并出现次数最多的相邻字节对。
所以一个汉字通常占三个字节，常见的汉字会被合并成一个词元，生僻字则可能被拆成两到三个词元。
推理时，模型每一步只需要计算最新一个词元的查询向量，之前所有词元的键和值都可以缓存起来，这就是 KV 缓存。
采样策略决定了生成文本的风格：贪心解码总是选择概率最大的词元；温度（temperature）让分布更尖锐或更平坦；
Top-k 只在概率最大的 k 个词元中采样；Top-p（核采样）只在累计概率达到 p 的最小集合中采样。
“手撕大模型”的意思是：不依赖现成的框架，从零开始把每一个组件写出来，并且和参考实现逐位对齐。
春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。床前明月光，疑是地上霜。举头望明月，低头思故乡。
数字和标点：２０２４年１１月，价格为￥１２８．５０元；温度约为 37.5℃；比例是 3:2；网址 https://example.com/路径?查询=值。
"""

EMOJI = [
    "😀", "😂", "🥲", "🤗", "🚀", "🔥", "✨", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇨🇳", "🇺🇸", "🇯🇵",
    "❤️", "☕", "🧑🏿‍🔬", "🤖", "📚", "✅", "❌", "⚠️", "🙏", "🎉",
]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>", "<jupyter_code>"]
MODULES = ["textwrap", "json.decoder", "heapq", "bisect", "string", "fnmatch", "colorsys", "shlex"]


def build(seed: int = 0) -> str:
    from pydoc_data.topics import topics

    rng = random.Random(seed)
    parts = [topics[name] for name in sorted(topics)][:30]
    for name in MODULES:
        module = __import__(name, fromlist=["_"])
        parts.append(inspect.getsource(module))
    parts += [CHINESE] * 4
    for _ in range(200):
        words = [rng.choice(EMOJI) for _ in range(rng.randint(1, 6))]
        parts.append(rng.choice(["", " ", "  "]).join(words) + rng.choice([" 好的！", " great!", "\n", "", "。"]))
    for _ in range(200):
        ws = "".join(rng.choice([" ", "  ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", "    "]) for _ in range(rng.randint(1, 8)))
        parts.append(f"x{ws}y{ws}")
    for _ in range(100):
        role = rng.choice(["user", "assistant", "system"])
        parts.append(f"{rng.choice(SPECIALS)}{role}\n{rng.choice(CHINESE.splitlines())}{rng.choice(SPECIALS)}\n")
    parts.append(json.dumps({"名字": "SmolLM2", "layers": 30, "emoji": "🤖"}, ensure_ascii=False, indent=2))
    parts.append(textwrap.dedent("""
        def greet(name: str) -> str:
        \treturn f"你好, {name}! 👋"   # tab-indented, trailing spaces   \n
        x = [i ** 2 for i in range(10)]  ;;  y = {'a': 1, "b": 2.5e-3}
    """))
    rng.shuffle(parts)
    return "\n".join(parts)


if __name__ == "__main__":
    out = Path(__file__).with_name("bpe_corpus.txt")
    out.write_text(build(), encoding="utf-8")
    print(f"{out}: {out.stat().st_size / 1e3:.0f} kB")
