"""Parity with torch-fidelity (the TF-exact PyTorch port used for ADM-style numbers), same random weights.

torch-fidelity's ``FeatureExtractorInceptionV3`` uses the very parameter names of pytorch-fid's layout, so
one random state dict saved once is both libraries' weight file.  With ``resize="tf1"`` our network
does what its forward does (TF1 bilinear resize of uint8 values, ``(x - 128) / 128``), so features agree
on any input size; FID, IS and KID are then computed by each library from its own features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from vq_eval import FeatureStatistics, frechet_distance, load_fid_inception
from vq_eval.inception import INPUT_SIZE, resize_tf1
from vq_eval.inception_score import inception_score_of_logits
from vq_eval.kid import kernel_inception_distance
from vq_eval.precision_recall import precision_recall


@pytest.fixture(scope="module")
def both_features(inception_weights: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Pool features and unbiased logits of 8 uint8 images (45x37, resized to 299 by each network)."""
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-12, 13, size=(8, 3, 37, 45)), axis=3) + 128  # image-like structure, not white noise
    images = torch.from_numpy(np.clip(smooth, 0, 255).astype(np.uint8))
    theirs_net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(inception_weights))
    ours_net = load_fid_inception(inception_weights, resize="tf1")
    with torch.inference_mode():
        pool, logits = theirs_net(images)
        features = ours_net.features(images.float() / 127.5 - 1)
        ours = {"pool": features.pool, "logits": ours_net.unbiased_logits(features.pool)}
    return {"theirs": {"pool": pool.double(), "logits": logits.double()}, "ours": {k: v.double() for k, v in ours.items()}}


def test_tf1_resize_equals_torch_fidelitys() -> None:
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(0)) * 255
    expected = interpolate_bilinear_2d_like_tensorflow1x(x, size=(INPUT_SIZE, INPUT_SIZE), align_corners=False)
    torch.testing.assert_close(resize_tf1(x, INPUT_SIZE), expected, rtol=0, atol=1e-4)


def test_features_equal_torch_fidelitys(both_features) -> None:
    ours, theirs = both_features["ours"], both_features["theirs"]
    assert theirs["pool"].std() > 0.1
    torch.testing.assert_close(ours["pool"], theirs["pool"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours["logits"], theirs["logits"], rtol=1e-4, atol=1e-4)


def test_fid_equals_torch_fidelitys_on_full_rank_statistics(both_features) -> None:
    """FID from each library's own statistics code, on 600 points whose covariance has full rank.

    On the 8 Inception features above the 2048-d covariances have rank 3: torch-fidelity's
    ``eigvals`` of the non-symmetric product then returns ~2045 noise eigenvalues whose square roots
    add ~1e-3 relative noise, so an equality test there would test the noise.  Full-rank features
    are lifted from the Inception features so they keep their scale; the 2,048-image benchmark
    compares the two end to end.
    """
    rng = np.random.default_rng(0)
    basis = both_features["theirs"]["pool"][:, :64].numpy().T  # (64, 8) directions of real features
    samples = rng.normal(size=(600, 8)) @ basis.T + rng.normal(scale=0.05, size=(600, 64))
    reference = rng.normal(loc=0.2, size=(600, 8)) @ basis.T + rng.normal(scale=0.05, size=(600, 64))
    s1, s2 = fid_features_to_statistics(torch.from_numpy(samples)), fid_features_to_statistics(torch.from_numpy(reference))
    their_fid = fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]
    ours = FeatureStatistics()
    ours.update(samples)
    ref = FeatureStatistics()
    ref.update(reference)
    our_fid = frechet_distance(ours.mean, ours.covariance, ref.mean, ref.covariance)
    assert their_fid > 1 and our_fid == pytest.approx(their_fid, rel=1e-6)


def test_is_kid_prc_equal_torch_fidelitys(both_features) -> None:
    ours, theirs = both_features["ours"], both_features["theirs"]
    gen, ref = ours["pool"][:4].numpy(), ours["pool"][4:].numpy()
    # IS with one split: the split convention (ADM's consecutive 5000s, torch-fidelity's shuffled tenths) drops out
    their_is = isc_features_to_metric(theirs["logits"], splits=1)["inception_score_mean"]
    assert inception_score_of_logits(ours["logits"].numpy())[0] == pytest.approx(their_is, rel=1e-4)
    # KID: same seed, same subsets drawn in the same order.  Fed float64 features: with float32 ones its
    # kernel sums of ~1e4-sized terms lose ~1e-3 of a KID of ~0.5 to float32 cancellation (we sum in float64)
    kwargs = {"kid_subsets": 10, "kid_subset_size": 3, "verbose": False, "rng_seed": 2020, "kid_kernel": "poly",
              "kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None, "kid_kernel_poly_coef0": 1}  # fmt: skip
    their_kid = kid_features_to_metric(theirs["pool"][:4], theirs["pool"][4:], **kwargs)
    mean, std, _ = kernel_inception_distance(gen, ref, subsets=10, subset_size=3, seed=2020)
    assert mean == pytest.approx(their_kid["kernel_inception_distance_mean"], rel=1e-4, abs=1e-7)
    assert std == pytest.approx(their_kid["kernel_inception_distance_std"], rel=1e-4, abs=1e-7)
    # precision/recall, k = 1 on 4 + 4 points (torch-fidelity: features_1 generated, features_2 real)
    their_prc = prc_features_to_metric(theirs["pool"][:4].float(), theirs["pool"][4:].float(), prc_neighborhood=1, prc_batch_size=10000,
                                       save_cpu_ram=False, verbose=False)  # fmt: skip
    assert precision_recall(ref, gen, 1) == pytest.approx((their_prc["precision"], their_prc["recall"]))
