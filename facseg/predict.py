"""Parse faces in your own photos: a label map (the net's class ids, the photo's resolution) and a colour overlay.

    python -m facseg.predict ckpt_path=model.ckpt input=photo.jpg output=parsed/
    python -m facseg.predict ckpt_path=model.onnx input=photos/ output=parsed/         (ONNX Runtime)
    python -m facseg.predict ckpt_path=model.ckpt input=photos/ output=parsed/ detect=false   (pre-cropped faces)
    python -m facseg.predict ckpt_path=model.ckpt input=LaPa/test/images output=parsed/ landmarks=LaPa/test/landmarks

Faces are found by the YuNet detector (vendored in facseg/assets/yunet, run by OpenCV), whose 5 points (eye centres,
nose tip, mouth corners) align each face exactly as training aligns from landmarks: the same template and margin;
or from LaPa's 106-point landmark files when `landmarks` names them. A net trained on whole aligned photos
(data.align=false, e.g. CelebA-HQ's) gets each face framed as those photos frame theirs. `detect=false` parses the
whole image. Each face is cut into the crop the net was trained on, parsed, and warped back over its own region of
the photo only; where faces overlap, the more confident one wins. Per image: NAME.png (uint8 class ids) and
NAME_overlay.jpg; predictions.json lists the faces found (or that none was).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.runtime.errors import user_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@user_errors
def main(cfg: DictConfig) -> None:
    from facseg.models.photos import predict  # torch, once the config has composed

    summary = predict(cfg)
    faces = sum(len(r["faces"]) for r in summary["images"].values())
    missed = f" (no face found in {len(summary['no_face_found'])})" if summary["no_face_found"] else ""
    rate = summary["photos_per_second"]
    print(f"{len(summary['images'])} images, {faces} faces parsed{missed} -> {cfg.output}; {rate:.2f} photos/s")


if __name__ == "__main__":
    main()
