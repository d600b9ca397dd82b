"""Writing an evaluation ``Report``: ``results.json``, ``results.md`` and a self-contained ``report.html``
(tables, and the report's images and plots embedded as PNG data; plots need matplotlib, the ``eval``
extra, and are left out with a note without it)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import platform
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .. import __version__
from .suite import Report


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """Write the report's files under ``out`` (created) and return their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "gradiance": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    paths = {"json": out / "results.json", "markdown": out / "results.md", "html": out / "report.html"}
    payload = {"kind": report.kind, "meta": meta, "rows": report.rows, "tables": report.tables}
    paths["json"].write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
    pictures: dict[str, bytes] = {}
    for name, img in report.images.items():
        pictures[name] = _png(Image.fromarray(img.cpu().numpy()))
        (out / name).write_bytes(pictures[name])
    for name, source in report.files.items():
        pictures[name] = source.read_bytes()
        if source.resolve() != (out / name).resolve():
            (out / name).write_bytes(pictures[name])
    plot_note = ""
    if report.plots:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            plot_note = "Plots need matplotlib: pip install 'gradiance[eval]'."
        else:
            for name, draw in report.plots.items():
                fig, ax = plt.subplots(figsize=(6, 4))
                draw(ax)
                buf = io.BytesIO()
                fig.tight_layout()
                fig.savefig(buf, format="png", dpi=100)
                plt.close(fig)
                pictures[name] = buf.getvalue()
                (out / name).write_bytes(pictures[name])
    md = [f"# {report.heading()}", "", _meta_line(meta), ""]
    for title, rows in report.tables.items():
        md += [f"## {title}", "", *_markdown_table(rows), ""]
    md += [f"![{name}]({name})" for name in pictures]
    if plot_note:
        md += ["", plot_note]
    paths["markdown"].write_text("\n".join(md) + "\n")
    paths["html"].write_text(_html(report, meta, pictures, plot_note))
    return paths


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _meta_line(meta: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in meta.items())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def _markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return lines


def _html(report: Report, meta: dict[str, Any], pictures: dict[str, bytes], note: str) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.heading())}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}"
        "img{image-rendering:pixelated;max-width:100%}</style></head><body>",
        f"<h1>{html.escape(report.heading())}</h1><p>{html.escape(_meta_line(meta))}</p>",
    ]
    for title, rows in report.tables.items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if not rows:
            parts.append("<p>(none)</p>")
            continue
        keys = list(rows[0])
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>" for k in keys) + "</tr>")
        parts.append("</table>")
    for name, data in pictures.items():
        mime = "image/gif" if name.endswith(".gif") else "image/png"
        src = f"data:{mime};base64," + base64.b64encode(data).decode()
        parts.append(f"<h3>{html.escape(name)}</h3><img src='{src}' alt='{html.escape(name)}'>")
    if note:
        parts.append(f"<p>{html.escape(note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x
