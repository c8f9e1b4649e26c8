"""evaluate_reconstruction on a stub tokenizer equals the metrics computed directly, image by image."""

from __future__ import annotations

import lpips
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vq_eval import (
    ReferenceStats,
    evaluate_reconstruction,
    frechet_distance,
    to_8bit_levels,
)


@pytest.fixture(scope="module")
def lpips_model() -> lpips.LPIPS:
    torch.manual_seed(0)
    return lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False).eval()


def _numpy_images(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).double().numpy()


def test_all_metrics_match_direct_computation(stub_tokenizer, photo_batches, cheap_inception, lpips_model) -> None:
    batches = photo_batches(6, 4)  # batches of 4 and 2
    seen = []
    result = evaluate_reconstruction(
        stub_tokenizer, batches, inception=cheap_inception, lpips_model=lpips_model,
        on_batch=lambda o, r, i: seen.append((o, r, i)),
    )  # fmt: skip

    originals = torch.cat(batches)
    with torch.no_grad():
        tokens = stub_tokenizer.encode(originals)
        recon = to_8bit_levels(stub_tokenizer.decode(tokens))
    o_np, r_np = _numpy_images(originals), _numpy_images(recon)
    expected_psnr = np.mean([peak_signal_noise_ratio(o, r, data_range=2.0) for o, r in zip(o_np, r_np)])
    expected_ssim = np.mean(
        [
            structural_similarity(o, r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0, channel_axis=2)
            for o, r in zip(o_np, r_np)
        ]
    )
    with torch.no_grad():
        expected_lpips = lpips_model(recon, originals).mean().item()
    f_orig = cheap_inception.pool_features(originals).double().numpy()
    f_recon = cheap_inception.pool_features(recon).double().numpy()
    expected_rfid = frechet_distance(f_orig.mean(0), np.cov(f_orig, rowvar=False), f_recon.mean(0), np.cov(f_recon, rowvar=False))
    counts = np.bincount(tokens.flatten().numpy(), minlength=16)
    p = counts[counts > 0] / counts.sum()
    entropy = -(p * np.log(p)).sum()

    assert result["num_images"] == 6
    assert result["psnr"] == pytest.approx(expected_psnr, rel=1e-9)
    assert 10 < result["psnr"] < 40
    assert result["ssim"] == pytest.approx(expected_ssim, abs=1e-6)
    assert result["lpips"] == pytest.approx(expected_lpips, rel=1e-5)
    assert result["rfid"] == pytest.approx(expected_rfid, rel=1e-6) and result["rfid"] > 0
    assert result["rfid_against"] == "originals"
    assert result["codebook_size"] == 16 and result["codes_used"] == int((counts > 0).sum())
    assert result["codebook_usage"] == pytest.approx((counts > 0).mean())
    assert result["codebook_entropy"] == pytest.approx(entropy, rel=1e-6)
    assert result["codebook_perplexity"] == pytest.approx(np.exp(entropy), rel=1e-6)
    assert [o.shape[0] for o, _, _ in seen] == [4, 2] and seen[0][2].shape == (4, 4, 4)


def test_rfid_against_reference_equals_against_originals(stub_tokenizer, photo_batches, cheap_inception) -> None:
    batches = photo_batches(5, 3)
    originals = torch.cat(batches)
    features = cheap_inception.pool_features(originals).double().numpy()
    reference = ReferenceStats(features.mean(0), np.cov(features, rowvar=False), len(features), {"source": "val"})
    against_ref = evaluate_reconstruction(stub_tokenizer, batches, metrics=["rfid"], inception=cheap_inception, reference=reference)
    against_orig = evaluate_reconstruction(stub_tokenizer, batches, metrics=["rfid"], inception=cheap_inception)
    assert against_ref["rfid"] == pytest.approx(against_orig["rfid"], rel=1e-6)
    assert against_ref["rfid_against"] == "reference val (5 images)"
    assert against_ref["rfid_n"] == 5 and against_ref["rfid_n_reference"] == 5 and against_ref["rfid_resolution"] == "32x32"
    assert against_ref["rfid_weights_sha256"] == cheap_inception.weights_sha256
    assert against_ref["rfid_preprocessing"] == cheap_inception.preprocessing


def test_rfid_reference_of_another_resolution_or_crop_is_refused(tmp_path, stub_tokenizer, cheap_inception, make_photos) -> None:
    """rFID per split and resolution: a cache records its crop and size and scores only images made the same way."""
    from vq_eval import ReferenceError, open_images
    from vq_eval.generation import reference_from_images

    make_photos(tmp_path / "val", 4, size=(48, 40))
    reference = reference_from_images(cheap_inception, open_images(tmp_path / "val", image_size=32))
    result = evaluate_reconstruction(stub_tokenizer, open_images(tmp_path / "val", image_size=32), metrics=["rfid"],
                                     inception=cheap_inception, reference=reference)  # fmt: skip
    assert result["rfid_resolution"] == "32x32" and result["rfid_transform"].startswith("resize shorter side to 32")
    with pytest.raises(ReferenceError, match=r"resolution '16x16' differs from the reference's '32x32'"):
        evaluate_reconstruction(stub_tokenizer, open_images(tmp_path / "val", image_size=16), metrics=["rfid"],
                                inception=cheap_inception, reference=reference)  # fmt: skip
    make_photos(tmp_path / "native", 4, size=(32, 32))
    with pytest.raises(ReferenceError, match=r"transform 'none' differs from the reference's 'resize shorter side to 32"):
        evaluate_reconstruction(stub_tokenizer, open_images(tmp_path / "native"), metrics=["rfid"], inception=cheap_inception,
                                reference=reference)  # fmt: skip


def test_quantisation_to_8_bit_levels(photo_batches) -> None:
    """quantize=True scores what a PNG would hold: equal to skimage on uint8 images with data_range 255."""
    batches = photo_batches(3, 3)
    shift = lambda images: (images + 0.013, None)  # noqa: E731  # an off-grid change
    quantized = evaluate_reconstruction(shift, batches, metrics=["psnr"])
    raw = evaluate_reconstruction(shift, batches, metrics=["psnr"], quantize=False)
    u8 = lambda images: np.round((_numpy_images(images) + 1) * 127.5)  # noqa: E731
    expected = np.mean(
        [peak_signal_noise_ratio(o, r, data_range=255) for o, r in zip(u8(batches[0]), u8((batches[0] + 0.013).clamp(-1, 1)))]
    )
    assert quantized["psnr"] == pytest.approx(expected, rel=1e-6)  # float32 vs float64 rounding ties
    assert raw["psnr"] != pytest.approx(quantized["psnr"], rel=1e-4)


def test_usage_only_needs_no_decoder(photo_batches, stub_tokenizer) -> None:
    class EncodeOnly(torch.nn.Module):
        codebook_size = 16

        def encode(self, images: torch.Tensor) -> torch.Tensor:
            return stub_tokenizer.encode(images)

        def decode(self, indices: torch.Tensor) -> torch.Tensor:
            raise NotImplementedError("no pixel decoder")

    result = evaluate_reconstruction(EncodeOnly(), photo_batches(2, 2), metrics=["usage"])
    assert result["num_images"] == 2 and 0 < result["codebook_usage"] <= 1


def test_misuse_is_reported(photo_batches, stub_tokenizer) -> None:
    batches = photo_batches(2, 2)
    with pytest.raises(ValueError, match=r"unknown reconstruction metrics \['fid'\]"):
        evaluate_reconstruction(stub_tokenizer, batches, metrics=["fid"])
    with pytest.raises(ValueError, match="'lpips' needs lpips_model"):
        evaluate_reconstruction(stub_tokenizer, batches, metrics=["lpips"])


def test_usage_without_indices_is_reported(photo_batches) -> None:
    with pytest.raises(ValueError, match="needs token indices"):
        evaluate_reconstruction(lambda x: (x, None), photo_batches(2, 2), metrics=["usage"], codebook_size=4)
