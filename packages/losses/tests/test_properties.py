"""Properties of the three losses over any batch (hypothesis): symmetries, bounds, limits and finiteness."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_losses import ClipLoss, NTXentLoss, SigLipLoss

SETTINGS = settings(max_examples=40, deadline=None)
scales = st.floats(0.0, 100.0)
biases = st.floats(-20.0, 20.0)
temperatures = st.floats(0.05, 10.0)


@st.composite
def unit_pairs(draw: st.DrawFn, max_batch: int = 6, max_dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``[B, D]`` batches of unit vectors (rows drawn near zero become the first basis vector)."""
    batch, dim = draw(st.integers(1, max_batch)), draw(st.integers(1, max_dim))
    values = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    tensors = []
    for _ in range(2):
        raw = torch.tensor(draw(st.lists(values, min_size=batch * dim, max_size=batch * dim)), dtype=torch.float64)
        raw = raw.reshape(batch, dim)
        raw[raw.norm(dim=1) < 1e-3] = F.one_hot(torch.tensor(0), dim).to(raw.dtype)
        tensors.append(F.normalize(raw, dim=1))
    return tensors[0], tensors[1]


@st.composite
def permuted_pairs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, texts = draw(unit_pairs())
    order = torch.tensor(draw(st.permutations(range(images.shape[0]))))
    return images, texts, order


def clip_loss(images: torch.Tensor, texts: torch.Tensor, scale: float) -> float:
    return float(ClipLoss()(images, texts, scale))


def siglip_loss(images: torch.Tensor, texts: torch.Tensor, scale: float, bias: float) -> float:
    return float(SigLipLoss()(images, texts, scale, bias))


def ntxent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    return float(NTXentLoss(temperature)(z1, z2))


# -- symmetries -----------------------------------------------------------------------------------------------------
@SETTINGS
@given(pair=unit_pairs(), scale=scales, bias=biases, temperature=temperatures)
def test_swapping_images_and_texts_changes_no_loss(
    pair: tuple[torch.Tensor, torch.Tensor], scale: float, bias: float, temperature: float
) -> None:
    """For any batch, ClipLoss(images, texts) = ClipLoss(texts, images), and likewise SigLIP and NT-Xent (which
    treat the two sides alike)."""
    images, texts = pair
    assert math.isclose(clip_loss(images, texts, scale), clip_loss(texts, images, scale), rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(
        siglip_loss(images, texts, scale, bias), siglip_loss(texts, images, scale, bias), rel_tol=1e-12, abs_tol=1e-12
    )
    assert math.isclose(
        ntxent_loss(images, texts, temperature), ntxent_loss(texts, images, temperature), rel_tol=1e-12, abs_tol=1e-12
    )


@SETTINGS
@given(case=permuted_pairs(), scale=scales, bias=biases, temperature=temperatures)
def test_permuting_the_pairs_jointly_changes_no_loss(
    case: tuple[torch.Tensor, torch.Tensor, torch.Tensor], scale: float, bias: float, temperature: float
) -> None:
    """For any batch and any permutation p, the loss of (images[p], texts[p]) is the loss of (images, texts): the
    order of the pairs in a batch does not matter."""
    images, texts, order = case
    shuffled = images[order], texts[order]
    assert math.isclose(clip_loss(*shuffled, scale), clip_loss(images, texts, scale), rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(
        siglip_loss(*shuffled, scale, bias), siglip_loss(images, texts, scale, bias), rel_tol=1e-12, abs_tol=1e-12
    )
    assert math.isclose(
        ntxent_loss(*shuffled, temperature), ntxent_loss(images, texts, temperature), rel_tol=1e-12, abs_tol=1e-12
    )


@SETTINGS
@given(pair=unit_pairs(), factor=st.floats(1e-3, 1e3), temperature=temperatures)
def test_ntxent_ignores_the_length_of_the_embeddings(
    pair: tuple[torch.Tensor, torch.Tensor], factor: float, temperature: float
) -> None:
    """For any batch and any c > 0, NTXent(c·z1, c·z2) = NTXent(z1, z2): it scores cosine similarities."""
    z1, z2 = pair
    assert math.isclose(
        ntxent_loss(factor * z1, factor * z2, temperature), ntxent_loss(z1, z2, temperature), rel_tol=1e-9, abs_tol=1e-9
    )


# -- bounds -----------------------------------------------------------------------------------------------------------
@SETTINGS
@given(pair=unit_pairs(), scale=scales, bias=biases, temperature=temperatures)
def test_losses_lie_between_zero_and_their_worst_case(
    pair: tuple[torch.Tensor, torch.Tensor], scale: float, bias: float, temperature: float
) -> None:
    """For unit embeddings, logits lie in [-s, s], so each cross-entropy is at most log(B) + 2s:
    0 ≤ ClipLoss ≤ log(B) + 2s; each of SigLIP's B² terms is at most s + |b| + log 2, so
    0 ≤ SigLIP ≤ B·(s + |b| + log 2); and 0 ≤ NT-Xent ≤ log(2B - 1) + 2/t."""
    images, texts = pair
    batch = images.shape[0]
    slack = 1e-9
    assert 0 <= clip_loss(images, texts, scale) <= math.log(batch) + 2 * scale + slack
    assert 0 <= siglip_loss(images, texts, scale, bias) <= batch * (scale + abs(bias) + math.log(2)) + slack
    assert 0 <= ntxent_loss(images, texts, temperature) <= math.log(2 * batch - 1) + 2 / temperature + slack


@SETTINGS
@given(batch=st.integers(1, 8), extra=st.integers(0, 3), scale=st.floats(50.0, 200.0))
def test_aligned_orthogonal_pairs_at_a_large_scale_cost_almost_nothing(batch: int, extra: int, scale: float) -> None:
    """When image i = text i and the pairs are orthogonal, every matching logit is s and every other 0: with a
    large scale (or a small temperature) ClipLoss and NT-Xent are within exp(-s)·B of 0, and SigLIP too once the
    bias sits between the two (b = -s/2)."""
    embeds = torch.eye(batch, batch + extra, dtype=torch.float64)
    bound = batch * math.exp(-scale / 2)
    assert clip_loss(embeds, embeds, scale) <= bound
    assert ntxent_loss(embeds, embeds.clone(), 1 / scale) <= bound
    assert siglip_loss(embeds, embeds, scale, -scale / 2) <= 2 * batch * bound


# -- limits ---------------------------------------------------------------------------------------------------------
@SETTINGS
@given(pair=unit_pairs())
def test_at_zero_scale_every_pairing_is_equally_likely(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    """With logit_scale 0 all logits are equal: ClipLoss = log(B) (a uniform guess among B texts), and SigLIP
    with bias 0 = B·log 2 (B² coin flips, divided by B), whatever the embeddings."""
    images, texts = pair
    batch = images.shape[0]
    assert math.isclose(clip_loss(images, texts, 0.0), math.log(batch), rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(siglip_loss(images, texts, 0.0, 0.0), batch * math.log(2), rel_tol=1e-12)


@SETTINGS
@given(pair=unit_pairs())
def test_ntxent_at_a_high_temperature_is_a_uniform_guess_among_2b_minus_1(
    pair: tuple[torch.Tensor, torch.Tensor],
) -> None:
    """As t grows, every similarity / t tends to 0 and NT-Xent to log(2B - 1); at t = 1e6 it is within
    2/t of it (similarities lie in [-1, 1])."""
    z1, z2 = pair
    temperature = 1e6
    expected = math.log(2 * z1.shape[0] - 1)
    assert abs(ntxent_loss(z1, z2, temperature) - expected) <= 2 / temperature


@SETTINGS
@given(pair=unit_pairs(max_batch=1), scale=scales, temperature=temperatures)
def test_a_batch_of_one_pair_has_no_contrastive_loss(
    pair: tuple[torch.Tensor, torch.Tensor], scale: float, temperature: float
) -> None:
    """With a single pair there is nothing to contrast against: ClipLoss = 0 (its only text is the right one),
    and NT-Xent = 0 (each view's only candidate is its positive)."""
    images, texts = pair
    assert clip_loss(images, texts, scale) == 0.0
    assert ntxent_loss(images, texts, temperature) == 0.0


# -- finiteness -----------------------------------------------------------------------------------------------------
@SETTINGS
@given(
    pair=unit_pairs(),
    scale=st.floats(0.0, 1e4),
    bias=st.floats(-1e4, 1e4),
    temperature=st.floats(1e-4, 1e4),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_values_and_gradients_are_finite_even_at_extreme_scales(
    pair: tuple[torch.Tensor, torch.Tensor], scale: float, bias: float, temperature: float, dtype: torch.dtype
) -> None:
    """For any unit embeddings, scale up to 1e4, bias within ±1e4 and temperature down to 1e-4, every loss and its
    gradients with respect to the embeddings, the scale and the bias are finite (no overflow in exp)."""
    images, texts = (p.to(dtype).requires_grad_() for p in pair)
    s = torch.tensor(scale, dtype=dtype, requires_grad=True)
    b = torch.tensor(bias, dtype=dtype, requires_grad=True)
    losses = [ClipLoss()(images, texts, s), SigLipLoss()(images, texts, s, b), NTXentLoss(temperature)(images, texts)]
    for loss in losses:
        assert loss.shape == () and torch.isfinite(loss)
    torch.stack(losses).sum().backward()
    for tensor in (images, texts, s, b):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
