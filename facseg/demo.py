"""A local demo page: upload a photo, pick a model (or several: an ensemble), see the parse.

    python -m facseg.demo "models=[logs/.../best.ckpt,logs/.../model.onnx]"     (or: facseg demo ...)

Needs the `demo` extra (Gradio). The page shows the parse as an overlay, each class's pixels and share of the pixels
not parsed as background, and the time taken. Faces are found, aligned, parsed and warped back exactly as
`facseg.predict` does it; several models picked together are an ensemble: the mean of their softmax probabilities,
taken in the crop before the warp back (facseg.evaluate averages after it: the two differ at a pixel here and there).
The page is served on this machine only (127.0.0.1 unless `host=`), with no share link and no analytics.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.runtime.errors import user_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="demo")
@user_errors
def main(cfg: DictConfig) -> None:
    from facseg.models.demo_page import Demo, build_page  # torch and gradio, once the config has composed

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = Demo([str(Path(p)) for p in cfg.models], cfg.device, str(cfg.precision), cfg.tta, cfg.detect)
    build_page(demo).launch(server_name=cfg.host, server_port=cfg.port, share=False, show_error=True)


if __name__ == "__main__":
    main()
