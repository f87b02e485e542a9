"""The three losses in one process: NT-Xent against SimCLR's formula, input errors, and registration with the core."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import clip_core
from clip_core import registry
from clip_losses import ClipLoss, NTXentLoss, SigLipLoss, gather_with_grad
from clip_losses import plugin as losses_plugin


def unit(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=dtype), dim=-1)


def simclr_formula(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's eq. 1, averaged over all 2N anchors, written as the paper writes it."""
    z = torch.cat([z1, z2])
    n = z1.shape[0]

    def sim(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u @ v) / (u.norm() * v.norm())

    total = torch.zeros((), dtype=z.dtype)
    for k in range(2 * n):
        positive = (k + n) % (2 * n)
        numerator = torch.exp(sim(z[k], z[positive]) / temperature)
        denominator = sum(torch.exp(sim(z[k], z[m]) / temperature) for m in range(2 * n) if m != k)
        total = total - torch.log(numerator / denominator)
    return total / (2 * n)


# -- NT-Xent is SimCLR's formula ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("batch", "temperature"), [(1, 0.1), (2, 0.5), (5, 0.1), (7, 1.0)])
def test_ntxent_value_and_gradients_are_simclr_formula(batch: int, temperature: float) -> None:
    generator = torch.Generator().manual_seed(batch)
    raw = [torch.randn(batch, 6, generator=generator, dtype=torch.float64) * 3 for _ in range(2)]
    ours_inputs = [r.clone().requires_grad_() for r in raw]
    formula_inputs = [r.clone().requires_grad_() for r in raw]

    ours = NTXentLoss(temperature)(ours_inputs[0], ours_inputs[1])
    expected = simclr_formula(formula_inputs[0], formula_inputs[1], temperature)
    ours.backward()
    expected.backward()

    assert ours.shape == ()
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(ours_inputs, formula_inputs, strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-10, atol=1e-12)


def test_ntxent_default_temperature_is_simclrs() -> None:
    assert NTXentLoss().temperature == 0.1


# -- conventions ----------------------------------------------------------------------------------------------------
def test_logit_scale_is_the_exponentiated_multiplier() -> None:
    """``logit_scale`` multiplies the cosine similarities as given: no ``exp`` inside the loss."""
    images, texts = unit(4, 8, seed=1), unit(4, 8, seed=2)
    logits = 7.0 * images @ texts.T
    targets = torch.arange(4)
    expected = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    torch.testing.assert_close(ClipLoss()(images, texts, torch.tensor(7.0, dtype=torch.float64)), expected)
    torch.testing.assert_close(ClipLoss()(images, texts, 7.0), expected)
    siglip = -F.logsigmoid((2 * torch.eye(4, dtype=torch.float64) - 1) * (logits - 3.0)).sum() / 4
    torch.testing.assert_close(SigLipLoss()(images, texts, 7.0, -3.0), siglip)


@pytest.mark.parametrize("cls", [ClipLoss, NTXentLoss])
def test_local_loss_changes_nothing_in_one_process(cls: type[ClipLoss] | type[NTXentLoss]) -> None:
    images, texts = unit(5, 8, seed=3), unit(5, 8, seed=4)
    args = (images, texts, 3.0) if cls is ClipLoss else (images, texts)
    torch.testing.assert_close(cls(local_loss=True)(*args), cls(local_loss=False)(*args), rtol=0, atol=0)


def test_gather_with_grad_is_the_identity_in_one_process() -> None:
    embeds = unit(3, 4)
    assert gather_with_grad(embeds) is embeds


def test_text_embeds_are_scored_in_the_image_embeds_dtype() -> None:
    images, texts = unit(3, 4, dtype=torch.float32), unit(3, 4, seed=1, dtype=torch.float64)
    loss = ClipLoss()(images, texts, 2.0)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ClipLoss()(images, texts.float(), 2.0))


# -- errors ---------------------------------------------------------------------------------------------------------
CALLS: dict[str, Callable[..., torch.Tensor]] = {
    "clip": lambda a, b: ClipLoss()(a, b, 1.0),
    "siglip": lambda a, b: SigLipLoss()(a, b, 1.0, 0.0),
    "ntxent": lambda a, b: NTXentLoss()(a, b),
}
NAMES = {"clip": ("image_embeds", "text_embeds"), "siglip": ("image_embeds", "text_embeds"), "ntxent": ("z1", "z2")}


@pytest.mark.parametrize("loss", sorted(CALLS))
@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (torch.ones(4, 8), torch.ones(3, 8), "{0} and {1} must be pairs of one batch size, got 4 and 3"),
        (torch.ones(4, 8), torch.ones(4, 6), "{0} and {1} must have one embedding width, got 8 and 6"),
        (
            torch.ones(8),
            torch.ones(4, 8),
            "{0} must be a tensor [batch, dim], got a torch.float32 tensor of shape (8,)",
        ),
        (torch.ones(4, 8), [[1.0] * 8] * 4, "{1} must be a tensor [batch, dim], got a list"),
        (torch.ones(4, 8, dtype=torch.long), torch.ones(4, 8), "{0} must be floating point, got torch.int64"),
        (torch.ones(0, 8), torch.ones(0, 8), "{0} must hold at least one embedding of at least one value"),
    ],
    ids=["batch-sizes", "widths", "one-dimensional", "not-a-tensor", "integers", "empty"],
)
def test_mismatched_or_malformed_embeddings_raise_input_error_naming_them(
    loss: str, first: Any, second: Any, message: str
) -> None:
    with pytest.raises(clip_core.InputError) as excinfo:
        CALLS[loss](first, second)
    assert message.format(*NAMES[loss]) in str(excinfo.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda a: ClipLoss()(a, a, torch.ones(2)),
            "logit_scale must be a number or a one-element floating-point tensor, got a torch.float32 tensor of "
            "shape (2,)",
        ),
        (
            lambda a: SigLipLoss()(a, a, 1.0, None),
            "logit_bias must be a number or a one-element floating-point tensor, got None; SigLIP learns a logit bias",
        ),
        (lambda a: NTXentLoss(0.0), "temperature must be a finite number greater than 0, got 0.0"),
        (lambda a: NTXentLoss(math.inf), "temperature must be a finite number greater than 0, got inf"),
        (lambda a: SigLipLoss(exchange="bidir"), "exchange must be 'ring' or 'gather', got 'bidir'"),  # type: ignore[arg-type]
    ],
    ids=["scale-shape", "no-bias", "zero-temperature", "infinite-temperature", "unknown-exchange"],
)
def test_invalid_scalars_and_options_raise_input_error(call: Callable[[torch.Tensor], object], message: str) -> None:
    with pytest.raises(clip_core.InputError) as excinfo:
        call(torch.ones(2, 3))
    assert message in str(excinfo.value)


# -- registered with the core ---------------------------------------------------------------------------------------
@pytest.fixture
def registered() -> Iterator[None]:
    """The plugin as the core sees it: from its entry point if installed, else registered at run time."""
    if "losses" in {info.name for info in registry.plugins()}:
        yield
        return
    clip_core.register_plugin(losses_plugin, name="losses")
    yield
    clip_core.unregister_plugin("losses")


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize(
    ("name", "options", "cls"),
    [
        ("clip", {"local_loss": True}, ClipLoss),
        ("siglip", {"exchange": "gather"}, SigLipLoss),
        ("ntxent", {"temperature": 0.2}, NTXentLoss),
    ],
)
def test_a_training_config_names_each_loss_and_its_options(name: str, options: dict[str, Any], cls: type) -> None:
    entry = registry.loss(name)
    assert entry.plugin == "losses"
    built = entry.loss(**options)
    assert type(built) is cls
    assert all(getattr(built, key) == value for key, value in options.items())


def test_plugin_declares_the_plugin_api_of_the_core() -> None:
    assert losses_plugin.CLIP_PLUGIN_API == clip_core.PLUGIN_API_VERSION


def test_the_distribution_names_the_plugin_in_the_clip_core_entry_point_group() -> None:
    """Installed, clip-losses is found by the core without any code: ``losses = "clip_losses.plugin"``."""
    points = metadata.distribution("clip-losses").entry_points
    assert [(ep.group, ep.name, ep.value) for ep in points] == [("clip_core", "losses", "clip_losses.plugin")]
