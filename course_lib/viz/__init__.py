"""Figures and widgets: plotly + ipywidgets in notebooks, matplotlib PNGs for ``Fig/``.

Each module here that draws a ``Fig/`` file exposes ``FIGURES = {"file name.png": draw}`` where
``draw(path)`` writes the file; :mod:`course_lib.figures` collects them all.
"""
