"""Image sources: record order, labels, keys and the errors for bad layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vq_data import (
    BUNDLED_CLASSES,
    BundledSource,
    FolderSource,
    ImageDecodeError,
    ImageNetSource,
    ListSource,
    SourceError,
    available_photos,
    check_key,
    make_source,
)


def test_folder_source_is_recursive_sorted_and_labelled_by_subfolder(image_folder):
    source = FolderSource(image_folder)
    records = source.records()
    assert source.class_names == ["cat", "dog", "emu"]
    # brute force: walk the folder ourselves
    expected = sorted(p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*") if p.is_file())
    assert [r.source_id for r in records] == expected
    assert [r.label for r in records] == [["cat", "dog", "emu"].index(s.split("/")[0]) for s in expected]
    assert records[0].key == "cat/a_png" and "cat/deep/c_png" in {r.key for r in records}
    for record in records:
        check_key(record.key)
        image = record.open()
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), np.asarray(Image.open(image_folder / record.source_id).convert("RGB")))


def test_folder_source_errors_name_the_folder(tmp_path, image_folder, write_image):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"empty.*no image files"):
        FolderSource(tmp_path / "empty")
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource(tmp_path / "nope")
    write_image(image_folder / "stray.png", 99)
    with pytest.raises(SourceError, match=r"stray\.png"):
        FolderSource(image_folder)
    flat = tmp_path / "flat"
    write_image(flat / "x.png", 1)
    assert FolderSource(flat).class_names == ["flat"] and FolderSource(flat).records()[0].label == 0


def test_folder_source_refuses_colliding_keys(tmp_path, write_image):
    write_image(tmp_path / "c" / "a b.png", 1)
    write_image(tmp_path / "c" / "a_b.png", 2)
    with pytest.raises(SourceError, match="both map to sample key"):
        FolderSource(tmp_path).records()


def test_corrupt_image_error_names_the_file(tmp_path, write_image):
    write_image(tmp_path / "c" / "good.png", 1)
    full = (tmp_path / "c" / "good.png").read_bytes()
    (tmp_path / "c" / "trunc.png").write_bytes(full[: len(full) // 2])
    write_image(tmp_path / "c" / "cut.jpg", 2, size=(64, 64))
    jpeg = (tmp_path / "c" / "cut.jpg").read_bytes()
    (tmp_path / "c" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "c" / "text.png").write_text("not an image")
    records = {r.source_id: r for r in FolderSource(tmp_path).records()}
    records["c/good.png"].open()
    for name in ("c/trunc.png", "c/cut.jpg", "c/text.png"):
        with pytest.raises(ImageDecodeError, match=name.split("/")[1]):
            records[name].open()


def _imagenet(root, write_image, *, val_flat: bool):
    wnids = ["n01440764", "n01443537", "n02102040"]
    (root / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn02102040 English springer\n"
    )
    seed = 0
    for wnid in wnids:
        for i in range(2):
            write_image(root / "train" / wnid / f"{wnid}_{i}.JPEG", seed)
            seed += 1
    rows = []
    for i, wnid in enumerate([wnids[2], wnids[0], wnids[1], wnids[0]]):
        name = f"ILSVRC2012_val_{i + 1:08d}"
        write_image(root / "val" / (f"{name}.JPEG" if val_flat else f"{wnid}/{name}.JPEG"), 100 + i)
        rows.append((name, wnid))
    return wnids, rows


def test_imagenet_train_and_class_folder_val(tmp_path, write_image):
    wnids, rows = _imagenet(tmp_path, write_image, val_flat=False)
    train = make_source(tmp_path)
    assert isinstance(train, ImageNetSource) and train.split == "train"
    assert train.class_names == ["tench", "goldfish", "English springer"]
    assert [(r.label, r.meta["wnid"]) for r in train.records()] == [(i, w) for i, w in enumerate(wnids) for _ in range(2)]
    val = ImageNetSource(tmp_path, split="val")
    expected = sorted((f"val/{w}/{n}.JPEG", wnids.index(w)) for n, w in rows)
    assert [(r.source_id, r.label) for r in val.records()] == expected


@pytest.mark.parametrize("label_file", ["csv", "list-wnid", "list-index"])
def test_imagenet_flat_val_with_label_file(tmp_path, label_file, write_image):
    wnids, rows = _imagenet(tmp_path, write_image, val_flat=True)
    if label_file == "csv":
        lines = ["ImageId,PredictionString"] + [f"{n},{w} 1 2 30 40 {w} 5 6 7 8" for n, w in rows]
        (tmp_path / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
        labels = None
    else:
        labels = tmp_path / "val.txt"
        column = (lambda w: w) if label_file == "list-wnid" else (lambda w: str(wnids.index(w)))
        labels.write_text("".join(f"{n}.JPEG {column(w)}\n" for n, w in rows))
    val = ImageNetSource(tmp_path, split="val", val_labels=labels)
    assert [(r.key, r.label) for r in val.records()] == [
        (f"val/{n}_JPEG", wnids.index(w)) for n, w in sorted(rows)
    ]


def test_imagenet_errors(tmp_path, write_image):
    _imagenet(tmp_path, write_image, val_flat=True)
    with pytest.raises(SourceError, match=r"LOC_val_solution\.csv"):
        ImageNetSource(tmp_path, split="val")
    devkit = tmp_path / "gt.txt"
    devkit.write_text("65\n970\n")
    with pytest.raises(SourceError, match=r"gt\.txt:1.*meta\.mat"):
        ImageNetSource(tmp_path, split="val", val_labels=devkit)
    unknown = tmp_path / "bad.txt"
    unknown.write_text("ILSVRC2012_val_00000001 n09999999\n")
    with pytest.raises(SourceError, match="n09999999"):
        ImageNetSource(tmp_path, split="val", val_labels=unknown).records()
    with pytest.raises(SourceError, match="no 'test' folder"):
        ImageNetSource(tmp_path, split="test")


def test_list_source(tmp_path, image_folder):
    listing = tmp_path / "train.txt"
    listing.write_text(f"# comment\nimages/dog/d.png 4\n\n{image_folder / 'cat/a.png'} 0\nimages/cat/deep/c.png 2\n")
    source = ListSource(listing)
    records = source.records()
    assert [(r.source_id, r.label) for r in records] == [
        ("images/dog/d.png", 4), (str(image_folder / "cat/a.png").lstrip("/"), 0), ("images/cat/deep/c.png", 2)
    ]
    assert len(source.class_names) == 5
    np.testing.assert_array_equal(np.asarray(records[0].open()), np.asarray(Image.open(image_folder / "dog/d.png").convert("RGB")))
    listing.write_text("images/dog/d.png dog\n")
    with pytest.raises(SourceError, match=r"train\.txt:1"):
        ListSource(listing)


def test_bundled_photos_are_offline_labelled_and_cropped_deterministically():
    photos = available_photos()
    assert {"astronaut", "coffee", "chelsea", "china", "flower"} <= set(photos)
    whole = BundledSource(photos=["astronaut", "camera", "china"])
    records = whole.records()
    assert [r.key for r in records] == ["astronaut", "camera", "china"]
    assert whole.class_names == ["person", "scene"] and [r.label for r in records] == [0, 0, 1]
    camera = records[1].open()
    assert camera.mode == "RGB" and camera.size == (512, 512)
    import skimage.data

    gray = skimage.data.camera()
    np.testing.assert_array_equal(np.asarray(camera), np.repeat(gray[..., None], 3, axis=2))

    crops = BundledSource(crops_per_image=5, seed=3, photos=["coffee", "flower"])
    again = BundledSource(crops_per_image=5, seed=3, photos=["coffee", "flower"])
    other = BundledSource(crops_per_image=5, seed=4, photos=["coffee", "flower"])
    assert len(crops) == 10 and [r.meta for r in crops.records()] == [r.meta for r in again.records()]
    assert [r.meta for r in crops.records()] != [r.meta for r in other.records()]
    coffee = np.asarray(skimage.data.coffee())
    for record in crops.records()[:5]:
        left, top, right, bottom = record.meta["crop"]
        assert right - left == bottom - top >= round(0.35 * 400) - 1
        np.testing.assert_array_equal(np.asarray(record.open()), coffee[top:bottom, left:right])
    assert {BundledSource(crops_per_image=2).class_names[i] for i in range(3)} <= set(BUNDLED_CLASSES)
    with pytest.raises(SourceError, match="unknown bundled photos"):
        BundledSource(photos=["lena"])
