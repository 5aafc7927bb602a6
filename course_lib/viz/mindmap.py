"""The notes ask for "一个思维导图" of model families: an interactive plotly mind map, a PNG for
``Fig/``, and a sunburst of the notes' sections and where each is taught.

A mind map is a tree laid out from the centre: the root in the middle, its branches split to the
left and right, every node at ``x = ±depth`` and leaves spaced evenly on ``y`` (parents sit at the
mean ``y`` of their children).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Node:
    """A box of the mind map: its label, hover note, course chapter and children."""
    label: str                 # what the box says
    note: str = ""             # hover text / one-line explanation
    chapter: str = ""          # where the course builds it, e.g. "03"
    children: list[Node] = field(default_factory=list)


MODEL_FAMILIES = Node("大模型架构\n(LLM / VLM)", "the families the notes name", "", [
    Node("Encoder-only\n仅编码器", "bidirectional self-attention; understanding tasks", "02a", [
        Node("BERT", "masked LM (15%, 80/10/10) + NSP, WordPiece", "02a"),
        Node("MiniLM", "all-MiniLM-L6-v2: 6-layer BERT for sentence embeddings", "02a"),
        Node("RoBERTa", "BERT without NSP, more data, dynamic masking"),
    ]),
    Node("Encoder-Decoder\n编码器-解码器", "encoder reads, decoder writes through cross-attention", "01", [
        Node("Transformer", "Vaswani et al. 2017: 6 encoder + 6 decoder layers", "01"),
        Node("T5", "text-to-text, relative position bias, RMS LayerNorm", "02a"),
        Node("BART", "denoising autoencoder, BERT encoder + GPT decoder"),
    ]),
    Node("Decoder-only\n仅解码器", "causal self-attention; next-token prediction", "03", [
        Node("GPT-2 / GPT-3", "learned positions, pre-LN, GELU MLP", "02a"),
        Node("LLaMA / SmolLM2", "RMSNorm, RoPE, SwiGLU, GQA", "03"),
        Node("DeepSeek-V3", "MLA + DeepSeekMoE + MTP, FP8 training", "04"),
    ]),
    Node("非 Transformer\nnon-Transformer", "constant memory per token at inference", "02b", [
        Node("RNN / LSTM", "gated recurrence, sequential", "02b"),
        Node("RWKV / linear attention", "attention as a recurrence: parallel to train, recurrent to run", "02b"),
        Node("Mamba", "selective state-space model (input-dependent Δ, B, C)", "02b"),
    ]),
    Node("VLM\n视觉语言模型", "images into a language model", "02b", [
        Node("ViT", "image as a sequence of 16×16 patches", "02b"),
        Node("CLIP", "contrastive image–text pre-training", "02b"),
        Node("LLaVA", "projector maps image patches into the LLM as prefix tokens", "02b"),
    ]),
])

BRANCH_COLORS = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2")


def layout(root: Node) -> list[tuple[Node, float, float, Node | None, int]]:
    """Place every node: returns ``(node, x, y, parent, branch index)``; branches alternate sides."""
    placed: list[tuple[Node, float, float, Node | None, int]] = []
    sides: dict[int, list[int]] = {-1: [], 1: []}
    for i in range(len(root.children)):
        sides[1 if i < (len(root.children) + 1) // 2 else -1].append(i)

    def leaves(node: Node) -> int:
        return max(1, sum(leaves(c) for c in node.children))

    def place(node: Node, depth: int, y_top: float, side: int, parent: Node, branch: int) -> float:
        if node.children:
            ys, top = [], y_top
            for child in node.children:
                ys.append(place(child, depth + 1, top, side, node, branch))
                top -= leaves(child)
            y = sum(ys) / len(ys)
        else:
            y = y_top
        placed.append((node, side * depth, y, parent, branch))
        return y

    for side, branches in sides.items():
        total = sum(leaves(root.children[i]) for i in branches)
        top = (total - 1) / 2
        for i in branches:
            place(root.children[i], 1, top, side, root, i)
            top -= leaves(root.children[i])
    placed.append((root, 0.0, 0.0, None, -1))
    return placed


def model_family_figure(root: Node = MODEL_FAMILIES):
    """An interactive plotly mind map: hover a box for what it is and which chapter builds it."""
    import plotly.graph_objects as go

    placed = layout(root)
    pos = {id(n): (x, y) for n, x, y, _, _ in placed}
    fig = go.Figure()
    for _, x, y, parent, branch in placed:
        if parent is None:
            continue
        px, py = pos[id(parent)]
        color = BRANCH_COLORS[branch % len(BRANCH_COLORS)]
        fig.add_scatter(x=[px, (px + x) / 2, x], y=[py, y, y], mode="lines", hoverinfo="skip",
                        line=dict(color=color, width=2, shape="spline"), showlegend=False)
    for node, x, y, _, branch in placed:
        color = "#333333" if branch < 0 else BRANCH_COLORS[branch % len(BRANCH_COLORS)]
        where = f"<br>本课程：第 {node.chapter} 章" if node.chapter else ""
        fig.add_annotation(x=x, y=y, text=node.label.replace("\n", "<br>"), showarrow=False,
                           font=dict(color="white", size=12 if node.children else 11),
                           bgcolor=color, bordercolor=color, borderpad=4)
        fig.add_scatter(x=[x], y=[y], mode="markers", marker=dict(size=28, opacity=0), showlegend=False,
                        hovertemplate=f"<b>{node.label.replace(chr(10), ' ')}</b><br>{node.note}{where}<extra></extra>")
    fig.update_layout(title="大模型架构思维导图 (model families)", height=560, plot_bgcolor="white",
                      xaxis=dict(visible=False, range=[-2.7, 2.7]), yaxis=dict(visible=False),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def draw_model_family_png(path: str | Path, root: Node = MODEL_FAMILIES) -> Path:
    """The same mind map as a static PNG (matplotlib), for ``Fig/`` and readers of the notes."""
    from course_lib.viz.static import matplotlib_cjk, save

    plt = matplotlib_cjk()
    placed = layout(root)
    pos = {id(n): (x, y) for n, x, y, _, _ in placed}
    fig, ax = plt.subplots(figsize=(13, 7.5))
    for _, x, y, parent, branch in placed:
        if parent is not None:
            px, py = pos[id(parent)]
            xs = [px + (x - px) * t for t in (0, 0.5, 0.5, 1)]
            ax.plot(xs, [py, py, y, y], color=BRANCH_COLORS[branch % len(BRANCH_COLORS)], lw=1.8, zorder=1)
    for node, x, y, _, branch in placed:
        color = "#333333" if branch < 0 else BRANCH_COLORS[branch % len(BRANCH_COLORS)]
        label = node.label + (f"  [{node.chapter}]" if node.chapter and not node.children else "")
        ax.text(x, y, label, ha="center", va="center", fontsize=12 if node.children else 10.5, color="white",
                bbox=dict(boxstyle="round,pad=0.45", fc=color, ec=color), zorder=2)
    ax.set_xlim(-2.6, 2.6)
    ax.axis("off")
    ax.set_title("大模型架构思维导图 (LLM / VLM model families)  ·  [NN] = 课程章节", fontsize=14)
    return save(fig, path)


def course_sunburst(sections) -> object:
    """A plotly sunburst: the notes' parts → sections → the notebooks that teach them.

    ``sections``: items with ``part``, ``title``, ``builds``, ``notebooks`` (``course_map.NOTES_SECTIONS``).
    """
    import plotly.graph_objects as go

    ids, labels, parents, hover = ["notes"], ["学习笔记"], [""], ["Large Model Learning Note"]
    for section in sections:
        if section.part not in ids:
            ids.append(section.part)
            labels.append(section.part)
            parents.append("notes")
            hover.append(section.part)
        sid = f"{section.part}/{section.title}"
        ids.append(sid)
        labels.append(section.title)
        parents.append(section.part)
        hover.append(section.builds + ("" if section.notebooks else "<br>(章节待写 · coming later)"))
        for nb in section.notebooks:
            ids.append(f"{sid}/{nb}")
            labels.append(nb.removesuffix(".ipynb"))
            parents.append(sid)
            hover.append(f"chapters/{nb}")
    fig = go.Figure(go.Sunburst(ids=ids, labels=labels, parents=parents, hovertext=hover,
                                hoverinfo="label+text", insidetextorientation="radial"))
    fig.update_layout(title="笔记章节 → 课程 notebook (click to zoom)", height=560, margin=dict(t=50, l=0, r=0, b=0))
    return fig


FIGURES = {"LLM架构思维导图.png": draw_model_family_png}
