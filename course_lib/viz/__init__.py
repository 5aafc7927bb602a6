"""Figures and widgets: plotly + ipywidgets in notebooks, matplotlib PNGs for ``Fig/``.

Each module here that draws a ``Fig/`` file exposes ``FIGURES = {"file name.png": draw}`` where
``draw(path)`` writes the file; :mod:`course_lib.figures` collects them all.

Names are imported lazily (``from course_lib import viz; viz.chain_figure(...)`` imports only
:mod:`.chain_graph`): the modules load plotly, ipywidgets or matplotlib, which take seconds and which
a test of one figure should not pay for all of them.
"""

from course_lib.lazy import lazy_exports

_HOME = {"AttentionMaps": "attention_data", "AttentionWidget": "attention", "RetrievalInspector": "rag",
         "add_static_images": "snapshot", "attention_figure": "attention", "attention_widget": "attention",
         "chain_figure": "chain_graph", "collect_attentions": "attention", "course_sunburst": "mindmap",
         "draw_architecture": "transformer_figures", "draw_class_hierarchy": "transformer_figures",
         "figure_pngs": "snapshot", "inspector": "rag", "matplotlib_cjk": "static",
         "model_family_figure": "mindmap", "plot_history": "curves", "plot_scalars": "curves",
         "save_attention_png": "attention", "show_attention": "attention", "trace_table": "agent_trace",
         "trace_timeline": "agent_trace"}
__all__ = sorted(_HOME)

__getattr__ = lazy_exports(__name__, _HOME)
