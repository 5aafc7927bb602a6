"""``Fig/`` figures of chapter 01 (Transformer), drawn with matplotlib.

- ``Transformer模块结构.png``: the two building modules (attention, feed-forward), each with a
  residual connection and LayerNorm.
- ``Transformer结构示意图.png``: the encoder–decoder stack, layer counts read from :class:`TransformerConfig`.
- ``Transformer代码class层级.png``: the class hierarchy of :class:`course_lib.transformer.Transformer`,
  found by walking a live model's sub-modules and the sources of its classes, so it cannot drift.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from torch import nn

from course_lib import attention, transformer
from course_lib.viz.static import matplotlib_cjk, save

COLORS = {"attn": "#fbd7a6", "ffn": "#b9dcf2", "norm": "#f6f2a6", "embed": "#f4c7d4", "out": "#d6c9f0",
          "class": "#dbe9d4", "func": "#ffffff"}


def class_hierarchy(model: nn.Module) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[str]]]:
    """Walk ``model`` and return ``(edges, leaves)``.

    ``edges[cls]`` lists ``(label, child)``: the course classes (and course functions called in the
    class's source) that ``cls`` uses, labelled by attribute name (``layers ×6`` for a ModuleList).
    ``leaves[cls]`` lists the plain ``torch.nn`` modules it holds, e.g. ``LayerNorm ×2``.
    """
    functions = {name: fn for module in (attention, transformer) for name, fn in vars(module).items()
                 if inspect.isfunction(fn) and fn.__module__.startswith("course_lib") and not name.startswith("_")}
    edges: dict[str, list[tuple[str, str]]] = {}
    leaves: dict[str, list[str]] = {}

    def visit(module: nn.Module) -> None:
        name = type(module).__name__
        if name in edges:
            return
        children: dict[str, list[str]] = {}
        plain: dict[str, int] = {}
        for attr, child in module.named_children():
            items = list(child) if isinstance(child, nn.ModuleList) else [child]
            for item in items:
                if type(item).__module__.startswith("course_lib"):
                    label = f"{attr} ×{len(items)}" if isinstance(child, nn.ModuleList) else attr
                    children.setdefault(type(item).__name__, [])
                    if label not in children[type(item).__name__]:
                        children[type(item).__name__].append(label)
                else:
                    plain[type(item).__name__] = plain.get(type(item).__name__, 0) + 1
        source = "".join(inspect.getsource(c) for c in type(module).__mro__ if c.__module__.startswith("course_lib"))
        called = [f for f in functions if re.search(rf"\b{f}\(", source)]
        edges[name] = [(", ".join(labels), child) for child, labels in children.items()]
        edges[name] += [("calls", f"{f}()") for f in called]
        leaves[name] = [f"{k} ×{n}" if n > 1 else k for k, n in plain.items()]
        for attr_child in module.children():
            for item in (attr_child if isinstance(attr_child, nn.ModuleList) else [attr_child]):
                if type(item).__module__.startswith("course_lib"):
                    visit(item)

    visit(model)
    return edges, leaves


def _box(ax, x, y, w, h, text, color, fontsize=10, dashed=False):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=color, edgecolor="#333333", linestyle="--" if dashed else "-", lw=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, x0, y0, x1, y1, style="-|>", color="#333333", rad=0.0):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops=dict(arrowstyle=style, color=color, lw=1.2, connectionstyle=f"arc3,rad={rad}"))


def _module_column(ax, x, y0, sublayer, color, title):
    """input → sub-layer → Add → LayerNorm, with the residual path drawn around the sub-layer."""
    ys = [y0, y0 + 1.2, y0 + 2.3, y0 + 3.3]
    ax.text(x, y0 - 0.8, "输入 x", ha="center", fontsize=10)
    _box(ax, x, ys[1], 3.3, 0.8, sublayer, color, fontsize=9)
    _box(ax, x, ys[2], 3.3, 0.5, "Add: x + Sublayer(x)", COLORS["norm"], fontsize=9)
    _box(ax, x, ys[3], 3.3, 0.5, "LayerNorm", COLORS["norm"])
    _arrow(ax, x, y0 - 0.6, x, ys[1] - 0.4)
    _arrow(ax, x, ys[1] + 0.4, x, ys[2] - 0.25)
    _arrow(ax, x, ys[2] + 0.25, x, ys[3] - 0.25)
    _arrow(ax, x, ys[3] + 0.25, x, ys[3] + 0.9)
    ax.plot([x, x - 1.95, x - 1.95], [y0 + 0.3, y0 + 0.3, ys[2]], color="#c0392b", lw=1.2)
    _arrow(ax, x - 1.95, ys[2], x - 1.65, ys[2], color="#c0392b")
    ax.text(x - 2.05, y0 + 1.3, "残差连接\n(Residual)", ha="right", va="center", fontsize=9, color="#c0392b")
    ax.text(x, ys[3] + 1.2, title, ha="center", fontsize=12, weight="bold")


def draw_modules(path: Path) -> Path:
    """The attention module and the feed-forward module of the notes, post-norm as in the paper."""
    plt = matplotlib_cjk()
    fig, ax = plt.subplots(figsize=(10, 5.2))
    _module_column(ax, 2.5, 0.0, "多头自注意力\n(Multi-Head Self-Attention)", COLORS["attn"], "注意力模块 (Attention)")
    _module_column(ax, 7.5, 0.0, "全连接前馈层\nFFN(x)=max(0, xW1+b1)W2+b2", COLORS["ffn"],
                   "全连接前馈模块 (Feed-Forward)")
    ax.text(5.0, -1.5, "post-norm (原论文): LayerNorm(x + Sublayer(x));  pre-norm: x + Sublayer(LayerNorm(x))",
            ha="center", fontsize=9, color="#555555")
    ax.set_xlim(-1.2, 10)
    ax.set_ylim(-1.8, 5)
    ax.axis("off")
    return save(fig, path)


def draw_architecture(path: Path) -> Path:
    """Encoder (left) and decoder (right) stacks with the cross-attention link, N from the config defaults."""
    n_enc = transformer.TransformerConfig(1, 1).num_encoder_layers
    n_dec = transformer.TransformerConfig(1, 1).num_decoder_layers
    plt = matplotlib_cjk()
    fig, ax = plt.subplots(figsize=(9, 9.5))
    enc = [("多头自注意力\nMulti-Head Self-Attention", "attn"), ("Add & LayerNorm", "norm"),
           ("前馈 Feed-Forward", "ffn"), ("Add & LayerNorm", "norm")]
    dec = [("掩码多头自注意力\nMasked Multi-Head Self-Attention", "attn"), ("Add & LayerNorm", "norm"),
           ("交叉注意力 Cross-Attention\nQ: decoder, K/V: encoder", "attn"), ("Add & LayerNorm", "norm"),
           ("前馈 Feed-Forward", "ffn"), ("Add & LayerNorm", "norm")]
    for x, blocks, n, title, inp in ((2.5, enc, n_enc, "Encoder", "源序列 (inputs)"),
                                     (7.5, dec, n_dec, "Decoder", "目标序列右移 (outputs, shifted right)")):
        ax.text(x, -0.3, inp, ha="center", fontsize=10)
        _box(ax, x, 0.5, 3.2, 0.6, "Embedding × √d_model", COLORS["embed"], 9)
        _box(ax, x, 1.4, 3.2, 0.6, "+ 位置编码 (Positional Encoding)", COLORS["embed"], 9)
        _arrow(ax, x, -0.1, x, 0.2)
        _arrow(ax, x, 0.8, x, 1.1)
        y = 2.5
        top = y + 0.9 * len(blocks)
        ax.add_patch(plt.Rectangle((x - 1.9, y - 0.3), 3.8, top - y + 0.1, fill=False, lw=1.5, ec="#666666"))
        ax.text(x - 2.0, (y + top) / 2, f"{n}×", ha="right", va="center", fontsize=14, weight="bold")
        _arrow(ax, x, 1.7, x, y - 0.3)
        for i, (text, kind) in enumerate(blocks):
            yy = y + 0.9 * i + 0.15
            _box(ax, x, yy, 3.2, 0.62, text, COLORS[kind], 8.5)
            if i:
                _arrow(ax, x, yy - 0.59, x, yy - 0.31)
        ax.text(x, top + 0.1, title, ha="center", fontsize=12, weight="bold")
        if title == "Encoder":
            enc_top = top
    _arrow(ax, 2.5, enc_top - 0.2, 5.9, 2.5 + 0.9 * 2 + 0.15, color="#c0392b", rad=-0.2)
    ax.text(4.2, enc_top + 0.2, "encoder 输出 → K, V", color="#c0392b", fontsize=9, ha="center")
    top = 2.5 + 0.9 * len(dec)
    _box(ax, 7.5, top + 0.8, 3.2, 0.55, "Linear → Softmax", COLORS["out"], 9)
    _arrow(ax, 7.5, top - 0.15, 7.5, top + 0.52)
    ax.text(7.5, top + 1.4, "下一个词的概率 (output probabilities)", ha="center", fontsize=10)
    ax.set_xlim(-0.5, 10)
    ax.set_ylim(-0.7, top + 1.8)
    ax.axis("off")
    return save(fig, path)


def draw_class_hierarchy(path: Path) -> Path:
    """Boxes for course classes (with their torch.nn leaves), dashed boxes for course functions."""
    cfg = transformer.TransformerConfig(1, 1)
    edges, leaves = class_hierarchy(transformer.Transformer(transformer.TransformerConfig(
        1, 1, d_model=8, num_heads=2, num_encoder_layers=cfg.num_encoder_layers,
        num_decoder_layers=cfg.num_decoder_layers, d_ff=8, max_len=4)))
    depth = {"Transformer": 0}
    changed = True
    while changed:  # longest-path depth, so shared classes sit below every user
        changed = False
        for parent, kids in edges.items():
            for _, child in kids:
                if parent in depth and depth.get(child, -1) < depth[parent] + 1:
                    depth[child] = depth[parent] + 1
                    changed = True
    levels: dict[int, list[str]] = {}
    for node, d in sorted(depth.items(), key=lambda kv: kv[1]):
        levels.setdefault(d, []).append(node)
    width = 3.0 * max(len(nodes) for nodes in levels.values())
    plt = matplotlib_cjk()
    fig, ax = plt.subplots(figsize=(width, 2.2 * len(levels)))
    pos = {}
    for d, nodes in levels.items():
        for i, node in enumerate(nodes):
            pos[node] = (width * (i + 0.5) / len(nodes), -2.2 * d)
    for parent, kids in edges.items():
        for label, child in kids:
            (x0, y0), (x1, y1) = pos[parent], pos[child]
            _arrow(ax, x0, y0 - 0.45, x1, y1 + 0.45, color="#555555")
            ax.text(0.35 * x0 + 0.65 * x1, 0.35 * y0 + 0.65 * y1, label, fontsize=8, color="#1f4e79", ha="center",
                    bbox=dict(facecolor="white", edgecolor="none", pad=1))
    for node, (x, y) in pos.items():
        is_func = node.endswith("()")
        text = node if is_func or not leaves.get(node) else node + "\nnn: " + ", ".join(leaves[node])
        _box(ax, x, y, 2.7, 0.8, text, COLORS["func" if is_func else "class"],
             fontsize=8.5, dashed=is_func)
    ax.set_title("course_lib.transformer 的 class 调用层级 (由代码自省生成)", fontsize=12)
    ax.set_xlim(0, width)
    ax.set_ylim(-2.2 * (len(levels) - 1) - 0.8, 0.8)
    ax.axis("off")
    return save(fig, path)


FIGURES = {
    "Transformer模块结构.png": draw_modules,
    "Transformer结构示意图.png": draw_architecture,
    "Transformer代码class层级.png": draw_class_hierarchy,
}
