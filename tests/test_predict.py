"""facseg.predict and facseg.export on a real (tiny) trained checkpoint: photos in, label maps out."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from facseg.data.datamodule import FaceDataModule
from facseg.data.labels import LabelMap
from facseg.data.warp import warp_to_photos
from facseg.models.exporting import _export_onnx, export
from facseg.models.factory import build_net
from facseg.models.inference import load_parser
from facseg.models.module import FaceSegModule
from facseg.models.photos import predict
from tests.helpers import CONF_DIR, REAL_SAMPLES


def compose_cli(name, overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def onnx_model(checkpoint, tmp_path_factory):
    output = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export(compose_cli("export", [f"ckpt_path={checkpoint}", f"output={output}"]))
    return output


def run_predict(model, images, output, *extra):
    return predict(compose_cli("predict", [f"ckpt_path={model}", f"input={images}", f"output={output}", *extra]))


def read_label(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_landmark_aligned_prediction_is_the_test_steps_prediction(checkpoint, tiny_root, tmp_path):
    """Cut, parsed and warped back as in evaluation: predict agrees with the module scoring the test split."""
    images = tiny_root / "test" / "images"
    # float32 on both sides: the subject is the cut and the warp (precision=auto: tests/test_precision.py)
    summary = run_predict(checkpoint, images, tmp_path, f"landmarks={tiny_root / 'test' / 'landmarks'}", "precision=32")
    assert {f["source"] for r in summary["images"].values() for f in r["faces"]} == {"landmarks"}
    module = FaceSegModule.load_from_checkpoint(checkpoint, weights_only=True).eval()
    datamodule = FaceDataModule(root=str(tiny_root), image_size=64)
    datamodule.setup("test")
    for i, photo in enumerate(sorted(images.glob("*.jpg"))):
        sample = datamodule.splits["test"][i]
        with torch.no_grad():
            logits = module(sample["image"][None])[0]
        label = sample["original_label"]
        expected = warp_to_photos(logits[None], sample["matrix"][None], [tuple(label.shape)])[0][0].argmax(0)
        predicted = read_label(tmp_path / f"{photo.stem}.png")
        assert predicted.shape == tuple(label.shape) and predicted.dtype == np.uint8
        assert (predicted == expected.numpy()).mean() > 0.999
        overlay = cv2.imread(str(tmp_path / f"{photo.stem}_overlay.jpg"))
        assert overlay.shape == (*predicted.shape, 3)


@pytest.mark.slow
def test_whole_image_mode_and_onnx_runtime_give_the_same_maps(checkpoint, onnx_model, tiny_root, tmp_path):
    images = tiny_root / "test" / "images"
    run_predict(checkpoint, images, tmp_path / "torch", "detect=false", "precision=32")  # as the float32 graph
    summary = run_predict(onnx_model, images, tmp_path / "onnx", "detect=false")
    assert summary["model"] == "unet" and len(summary["images"]) == 4
    for photo in images.glob("*.jpg"):
        a, b = read_label(tmp_path / "torch" / f"{photo.stem}.png"), read_label(tmp_path / "onnx" / f"{photo.stem}.png")
        assert a.shape == (96, 96) and a.max() < 11
        assert (a == b).mean() > 0.999


@pytest.mark.skipif(not REAL_SAMPLES.is_dir(), reason="../shared/real-samples is not beside this checkout")
def test_real_photos_are_detected_and_parsed_at_their_size(checkpoint, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in [
        *REAL_SAMPLES.glob("lapa-landmarks/test/images/*.jpg"),
        *REAL_SAMPLES.glob("celebamask-hq/images/*.jpg"),
    ]:
        shutil.copy(path, photos / path.name)  # into tmp only, never into the project
    summary = run_predict(checkpoint, photos, tmp_path / "out")
    for photo in photos.iterdir():
        label = read_label(tmp_path / "out" / f"{photo.stem}.png")
        assert label.shape == cv2.imread(str(photo)).shape[:2] and label.max() < 11
        faces = summary["images"][photo.name]["faces"]
        assert [f["source"] for f in faces] == ["detector"]  # one frontal face in each sample
        x, y, w, h = faces[0]["box"]
        assert w > 0.15 * label.shape[1]


@pytest.mark.skipif(not REAL_SAMPLES.is_dir(), reason="../shared/real-samples is not beside this checkout")
def test_two_real_faces_in_one_photo_are_both_found(checkpoint, tmp_path):
    faces = sorted(REAL_SAMPLES.glob("celebamask-hq/images/*.jpg"))[:2]
    photo = np.concatenate([cv2.resize(cv2.imread(str(p)), (512, 512)) for p in faces], 1)
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "two.jpg"), photo)  # into tmp only, never into the project
    summary = run_predict(checkpoint, tmp_path / "photos", tmp_path / "out")
    boxes = sorted(f["box"] for f in summary["images"]["two.jpg"]["faces"])
    assert len(boxes) == 2 and boxes[0][0] + boxes[0][2] <= 512 <= boxes[1][0]  # one face in each half
    assert read_label(tmp_path / "out" / "two.png").shape == (512, 1024)


def test_outputs_are_never_overwritten_and_bad_files_are_named(checkpoint, tiny_root, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(tiny_root / "test" / "images", photos)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="1 of 5 images failed.*broken.jpg: unreadable image"):
        run_predict(checkpoint, photos, out, "detect=false")
    assert len(list(out.glob("*.png"))) == 4 and not list(out.glob(".*partial*"))
    assert json.loads((out / "predictions.json").read_text())["failed"].keys() == {"broken.jpg"}
    (photos / "broken.jpg").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(FileExistsError, match="8 outputs exist already.*overwrite=true"):
        run_predict(checkpoint, photos, out, "detect=false")
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    run_predict(checkpoint, photos, out, "detect=false", "overwrite=true")
    with pytest.raises(FileNotFoundError, match="input=.*nowhere: no such image or folder"):
        run_predict(checkpoint, tmp_path / "nowhere", out)


@pytest.mark.slow
def test_export_parity_is_printed_and_bounded(checkpoint, onnx_model, tmp_path, capsys):
    script = export(
        compose_cli("export", [f"ckpt_path={checkpoint}", "format=torchscript", f"output={tmp_path / 'model.pt'}"])
    )
    assert "parity: max |logit difference|" in capsys.readouterr().out and script["image_size"] == 64
    strict = tmp_path / "strict.onnx"
    with pytest.raises(ValueError, match="differs from PyTorch by .* > tolerance=1e-12"):
        export(compose_cli("export", [f"ckpt_path={checkpoint}", f"output={strict}", "tolerance=1e-12"]))
    assert not list(tmp_path.glob("*strict*"))  # a file that failed parity is not left behind
    module = FaceSegModule.load_from_checkpoint(checkpoint, weights_only=True).eval()
    crops = torch.randn(3, 3, 64, 64)  # another batch size than the export's: the batch stays free
    with torch.no_grad():
        expected = module(crops).numpy()
    for path in (onnx_model, tmp_path / "model.pt"):
        parser = load_parser(path, device="cpu", precision="32")  # float32 files compared with the float32 net
        assert (parser.image_size, parser.margin, parser.model) == (64, 0.6, "unet")
        assert np.abs(parser.run(crops.numpy()) - expected).max() <= 1e-4 * max(1, np.abs(expected).max())
    with pytest.raises(FileExistsError, match="model.pt exists"):
        export(
            compose_cli("export", [f"ckpt_path={checkpoint}", "format=torchscript", f"output={tmp_path / 'model.pt'}"])
        )
    with pytest.raises(ValueError, match="format=tflite: expected one of onnx, torchscript"):
        export(compose_cli("export", [f"ckpt_path={checkpoint}", "format=tflite"]))


@pytest.mark.slow
@pytest.mark.parametrize("arch", [{"arch": "segnet", "width": 0.125}, {"arch": "pspnet", "encoder": "resnet18"}])
def test_every_architecture_exports_to_onnx(arch, tmp_path):
    """SegNet's unpooling and PSPNet's adaptive pooling need the dynamo exporter (the TorchScript one refuses)."""
    net = build_net(num_classes=11, **arch).eval()
    path = tmp_path / "net.onnx"
    meta = {
        "model": arch["arch"],
        "image_size": 64,
        "margin": 0.6,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "labels": LabelMap.named("lapa").to_dict(),
    }
    _export_onnx(net, torch.randn(2, 3, 64, 64), path, meta, 18)
    crops = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = net(crops).numpy()
    assert np.abs(load_parser(path).run(crops.numpy()) - expected).max() <= 1e-4 * max(1, np.abs(expected).max())


def test_several_faces_in_one_photo_are_each_parsed(checkpoint, tiny_root):
    """Two test photos side by side, each face aligned from its own landmarks: each half parses as alone."""
    from facseg.data.crop import alignment_matrix
    from facseg.data.formats import read_image, read_landmarks
    from facseg.models.photos import Face, parse_photo

    parser = load_parser(checkpoint, device="cpu")
    photos = sorted((tiny_root / "test" / "images").glob("*.jpg"))[:2]
    images = [read_image(p) for p in photos]
    points = [read_landmarks(tiny_root / "test" / "landmarks" / f"{p.stem}.txt") for p in photos]
    alone = [
        parse_photo(image, [Face(alignment_matrix(pts, 64, 0.6), "landmarks")], parser)
        for image, pts in zip(images, points)
    ]
    both = parse_photo(
        np.concatenate(images, 1),
        [
            Face(alignment_matrix(points[0], 64, 0.6), "landmarks"),
            Face(alignment_matrix(points[1] + [96, 0], 64, 0.6), "landmarks"),
        ],
        parser,
    )
    assert both.shape == (96, 192)
    for half, expected in zip((both[:, :96], both[:, 96:]), alone):
        face = expected > 0
        assert (half[face] == expected[face]).mean() > 0.95  # where each face is, its own parse wins


def test_each_face_is_warped_back_over_its_region_as_over_the_whole_photo(checkpoint, tiny_root):
    """The region-wise warp (what keeps large photos cheap) gives the label map the whole-photo warp gives."""
    from facseg.data.crop import alignment_matrix, warp_to_crop
    from facseg.data.formats import read_image, read_landmarks
    from facseg.models.photos import Face, parse_photo

    parser = load_parser(checkpoint, device="cpu")
    photos = sorted((tiny_root / "test" / "images").glob("*.jpg"))[:2]
    image = np.zeros((160, 260, 3), np.uint8)
    image[10:106, 20:116], image[50:146, 150:246] = (read_image(p) for p in photos)
    points = [read_landmarks(tiny_root / "test" / "landmarks" / f"{p.stem}.txt") for p in photos]
    faces = [
        Face(alignment_matrix(points[0] + [20, 10], 64, 0.6), "landmarks"),
        Face(alignment_matrix(points[1] + [150, 50], 64, 0.6), "landmarks"),
    ]
    crops = np.stack([warp_to_crop(image, None, f.matrix, 64)[0] for f in faces])
    logits = torch.from_numpy(parser.run(parser.normalise(crops)))
    matrices = torch.from_numpy(np.stack([f.matrix for f in faces]))
    probs = warp_to_photos(logits, matrices, [image.shape[:2]] * 2)[0].softmax(1)
    whole = probs.argmax(1).gather(0, probs[:, 0].argmin(0)[None])[0].byte().numpy()
    assert np.array_equal(parse_photo(image, faces, parser), whole)
    alone = probs[0].argmax(0).byte().numpy()  # one face: its parse as it is, background outside its crop
    assert np.array_equal(parse_photo(image, faces[:1], parser), alone)


@pytest.mark.skipif(not REAL_SAMPLES.is_dir(), reason="../shared/real-samples is not beside this checkout")
def test_yunet_aligns_a_face_as_its_landmarks_do():
    """YuNet's 5 points put a real LaPa face where LaPa's own landmarks put it in the training crop."""
    from facseg.data.crop import alignment_matrix
    from facseg.data.formats import read_image, read_landmarks
    from facseg.models.photos import FaceFinder

    finder = FaceFinder(128, 0.6)
    for photo in sorted(REAL_SAMPLES.glob("lapa-landmarks/test/images/*.jpg")):
        image = read_image(photo)
        points = read_landmarks(photo.parent.parent / "landmarks" / f"{photo.stem}.txt")
        (face,) = finder(image)
        assert face.source == "detector" and face.score > 0.7
        by_landmarks = alignment_matrix(points, 128, 0.6)
        # The photo's face outline (LaPa points 0-32) in both crops: within 4 % of the crop side on average.
        outline = np.c_[points[:33], np.ones(33)]
        gap = np.linalg.norm(outline @ face.matrix.T - outline @ by_landmarks.T, axis=1).mean()
        assert gap < 0.04 * 128, gap


def test_a_photo_without_a_face_is_named_and_parsed_whole(checkpoint, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "wall.jpg"), np.full((200, 300, 3), 127, np.uint8))
    summary = run_predict(checkpoint, photos, tmp_path / "out")
    assert summary["no_face_found"] == ["wall.jpg"]
    assert [f["source"] for f in summary["images"]["wall.jpg"]["faces"]] == ["whole image"]
    assert summary["photos_per_second"] > 0


@pytest.mark.slow
def test_the_command_lines_as_documented(checkpoint, tiny_root, tmp_path):
    """python -m facseg.export, then python -m facseg.predict on its ONNX file: as the README types them."""
    import subprocess
    import sys

    from tests.helpers import subprocess_env

    def cli(module, *args):
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    model = tmp_path / "model.onnx"
    assert "parity: max |logit difference|" in cli(
        "facseg.export", f"ckpt_path={checkpoint}", "format=onnx", f"output={model}"
    )
    out = cli(
        "facseg.predict",
        f"ckpt_path={model}",
        f"input={tiny_root / 'test' / 'images'}",
        f"output={tmp_path / 'parsed'}",
    )
    assert "4 images" in out and len(list((tmp_path / "parsed").glob("*_overlay.jpg"))) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "parsed"]  # no run folder, no log file


def test_flip_tta_parses_like_the_checkpoint_on_every_backend(checkpoint, onnx_model, tiny_root, tmp_path):
    images = tiny_root / "test" / "images"
    summaries = {}
    for name, model in (("plain", checkpoint), ("ckpt", checkpoint), ("onnx", onnx_model)):
        extra = ["detect=false", "precision=32"] + ([] if name == "plain" else ["tta=flip"])  # as the float32 graph
        summaries[name] = run_predict(model, images, tmp_path / name, *extra)
    for photo in images.glob("*.jpg"):
        plain, ckpt, onnx = (read_label(tmp_path / name / f"{photo.stem}.png") for name in ("plain", "ckpt", "onnx"))
        assert (ckpt == onnx).mean() > 0.999  # the same two views on every backend
        assert 0.5 < (ckpt == plain).mean() < 1.0  # a second view changes some pixels, not the picture
    with pytest.raises(ValueError, match="tta=rotate: expected flip"):
        run_predict(checkpoint, images, tmp_path / "bad", "tta=rotate")
