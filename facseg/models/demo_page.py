"""The local demo page: a photo in, its parse, each class's share and the time out (`facseg.demo` is its
command; gradio, the [demo] extra)."""

from __future__ import annotations

import time

import numpy as np

from facseg.models.inference import Parser, ensemble, load_parser
from facseg.models.photos import FaceFinder, overlay, parse_photo

AREA_HEADERS = ["class", "pixels", "% of non-background"]


class Demo:
    """What the page does, without the page: load the models once, parse a photo with the ones picked."""

    def __init__(
        self,
        paths: list[str],
        device: str = "auto",
        precision: str = "auto",
        tta: str | None = None,
        detect: bool = True,
    ) -> None:
        if not paths:
            raise ValueError("give models=[A.ckpt,...]: the model files (.ckpt, .onnx or .pt) to offer on the page")
        self.parsers = {str(p): load_parser(p, device, precision, tta=tta) for p in paths}
        self.detect = detect

    def parser(self, chosen: list[str]) -> Parser:
        unknown = [name for name in chosen if name not in self.parsers]
        if not chosen or unknown:
            raise ValueError(f"pick one or more of the models: {', '.join(self.parsers)}")
        parsers = [self.parsers[name] for name in chosen]
        return parsers[0] if len(parsers) == 1 else ensemble(parsers)

    def parse(self, image: np.ndarray, chosen: list[str]) -> tuple[np.ndarray, list[list], str]:
        """An RGB photo -> (the overlay, each class's pixels and share of the non-background ones, a summary line)."""
        parser = self.parser(chosen)
        start = time.perf_counter()
        finder = FaceFinder(parser.image_size, parser.margin, self.detect, align=parser.align)
        faces = finder(image)
        label = parse_photo(image, faces, parser)
        seconds = time.perf_counter() - start
        counts = np.bincount(label.ravel(), minlength=len(parser.labels.names)).tolist()
        parsed = max(sum(counts[1:]), 1)
        areas = [
            [name, count, round(100 * count / parsed, 1)]
            for name, count in zip(parser.labels.names[1:], counts[1:])
            if count
        ]
        found = "no face found: parsed whole" if faces[0].source == "whole image" else f"{len(faces)} face(s)"
        summary = f"{parser.model}: {found}, {1000 * seconds:.0f} ms (detection, parsing, warping back)"
        return overlay(image, label, parser.labels.colour_table()), areas, summary


def build_page(demo: Demo):
    import gradio as gr

    def parse(image, chosen):
        if image is None:
            raise gr.Error("upload a photo first")
        try:
            return demo.parse(image, list(chosen or []))
        except ValueError as e:
            raise gr.Error(str(e)) from e

    names = list(demo.parsers)
    with gr.Blocks(title="facseg: face parsing") as page:
        gr.Markdown("# facseg: face parsing\nUpload a photo, pick a model (several: their ensemble), then Parse.")
        with gr.Row():
            photo = gr.Image(type="numpy", label="photo", sources=["upload", "clipboard"], elem_id="photo")
            parsed = gr.Image(type="numpy", label="parse", interactive=False, elem_id="parse")
        models = gr.Dropdown(names, value=names[:1], multiselect=True, label="model(s)", elem_id="models")
        button = gr.Button("Parse", variant="primary", elem_id="parse-button")
        summary = gr.Markdown(elem_id="summary")
        areas = gr.Dataframe(headers=AREA_HEADERS, label="classes", interactive=False, elem_id="areas")
        button.click(parse, inputs=[photo, models], outputs=[parsed, areas, summary])
    return page
