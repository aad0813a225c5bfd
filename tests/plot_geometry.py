"""Geometry checks of the plots, shared by the report's and ``eval --pool``'s tests: what a reader
would see cut at the edge of the PNG, or hidden under another text or a marker."""

from __future__ import annotations

from typing import Any


def texts_outside(fig: Any, dpi: float | None = None) -> list[str]:
    """Every drawn text of ``fig`` (titles, labels, legends and their frames, annotations, tick
    labels) whose extent leaves the figure at the PNG's resolution ``dpi`` (default the report
    plot's): a reader would see it cut."""
    from matplotlib.text import Text

    if dpi is None:
        from routellm_base.log.report_plot import DPI

        dpi = DPI
    fig.set_dpi(dpi)  # text extents do not scale exactly with the resolution: measure the PNG's
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    hidden = set()  # labels of ticks outside the axis' view, which matplotlib does not draw
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    hidden.update({id(tick.label1), id(tick.label2)})
    outside = []
    artists = [t for t in fig.findobj(Text) if id(t) not in hidden and t.get_visible()]
    artists += [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for artist in artists:
        if isinstance(artist, Text) and not artist.get_text().strip():
            continue
        box = artist.get_window_extent(renderer)
        if not (fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
                and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1):  # fmt: skip
            outside.append(artist.get_text() if isinstance(artist, Text) else repr(artist))
    return outside


def overlapping_pairs(boxes: list[Any]) -> list[tuple[int, int]]:
    """Index pairs of the extents (matplotlib ``Bbox``) that overlap."""
    return [(i, j) for i, a in enumerate(boxes) for j in range(i + 1, len(boxes))
            if a.overlaps(boxes[j])]  # fmt: skip
