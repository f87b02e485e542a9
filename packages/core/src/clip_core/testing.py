"""A conformance kit for tower authors: properties every tower must have, written once.

Subclass :class:`TowerConformanceTests` in a pytest module and set ``config`` (a validated tower config) and,
optionally, ``embed_dim``. Needs the ``testing`` extra (``pip install clip-core[testing]``)::

    class TestMyTower(TowerConformanceTests):
        config = MyTowerConfig(width=32, ...)
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from clip_core import registry
from clip_core.cards import TowerConfig
from clip_core.intermediates import TowerIntermediates
from clip_core.towers import build_tower

__all__ = ["TowerConformanceTests", "randomize_batch_norms"]

# Each subclass runs the same inherited property with its own tower: that is the design, not a flaky executor.
# Derandomised and without the example database, so a run never depends on a previous one.
_SETTINGS = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.differing_executors],
)


class TowerConformanceTests:
    """Properties of a tower: output shape, dtype, batch independence, determinism, strict state-dict round trip,
    and, for a tower providing ``forward_intermediates`` (optional), that its features are the forward's output and
    that "the last n blocks" and the list of those blocks select the same outputs."""

    #: The tower configuration under test (subclasses set it).
    config: ClassVar[TowerConfig]
    #: Width of the embedding the tower projects to.
    embed_dim: ClassVar[int] = 24
    #: Tolerance for comparing a sample's output alone and inside a batch.
    atol: ClassVar[float] = 1e-5

    def make_tower(self, seed: int = 0) -> nn.Module:
        """Build the tower with a fixed seed, in eval mode."""
        torch.manual_seed(seed)
        return build_tower(self.config, self.embed_dim).eval()

    def make_input(self, batch: int, seed: int = 0) -> torch.Tensor:
        """Random pixels ``[B, 3, S, S]`` for image towers, random ids ``[B, L]`` for text towers."""
        generator = torch.Generator().manual_seed(seed)
        if registry.tower_kind(self.config.kind).modality == "image":
            size = int(getattr(self.config, "image_size", 32))
            return torch.randn(batch, 3, size, size, generator=generator)
        vocab = int(getattr(self.config, "vocab_size", 1000))
        length = int(getattr(self.config, "context_length", 16))
        ids = torch.randint(1, vocab - 1, (batch, length), generator=generator)
        ids[:, -1] = vocab - 1  # an end-of-text-like id, the highest, where towers that pool at argmax read
        return ids

    @_SETTINGS
    @given(batch=st.integers(1, 4), seed=st.integers(0, 2**16))
    def test_output_has_batch_and_embed_dim(self, batch: int, seed: int) -> None:
        """For any batch size, the tower maps its input to finite ``[batch, embed_dim]`` features."""
        with torch.no_grad():
            out = self.make_tower()(self.make_input(batch, seed))
        assert out.shape == (batch, self.embed_dim)
        assert torch.isfinite(out).all()

    def test_dtype_follows_the_model(self) -> None:
        """A tower converted to float64 computes in float64."""
        tower = self.make_tower().double()
        inputs = self.make_input(2)
        with torch.no_grad():
            out = tower(inputs.double() if inputs.is_floating_point() else inputs)
        assert out.dtype == torch.float64

    @_SETTINGS
    @given(batch=st.integers(2, 4), seed=st.integers(0, 2**16))
    def test_samples_do_not_affect_each_other(self, batch: int, seed: int) -> None:
        """Each sample's features are the same alone as inside a batch."""
        tower, inputs = self.make_tower(), self.make_input(batch, seed)
        with torch.no_grad():
            together = tower(inputs)
            alone = torch.cat([tower(inputs[i : i + 1]) for i in range(batch)])
        torch.testing.assert_close(alone, together, atol=self.atol, rtol=1e-4)

    def test_deterministic_in_eval_mode(self) -> None:
        """In eval mode, the same input gives bit-identical features."""
        tower, inputs = self.make_tower(), self.make_input(3)
        with torch.no_grad():
            assert torch.equal(tower(inputs), tower(inputs))

    def test_state_dict_round_trip_is_strict_and_exact(self) -> None:
        """Weights saved from one tower load strictly into another built from the same config, giving equal output."""
        source, target = self.make_tower(seed=1), self.make_tower(seed=2)
        buffer = io.BytesIO()
        torch.save(source.state_dict(), buffer)
        buffer.seek(0)
        result = target.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        inputs = self.make_input(2)
        with torch.no_grad():
            assert torch.equal(source(inputs), target(inputs))

    def test_intermediates_agree_with_forward_and_indices(self) -> None:
        """``forward_intermediates`` (when the tower provides it) returns the forward's features, one output per
        requested block in the requested format, the same outputs for ``n`` and for the last ``n`` block numbers,
        and no features with ``intermediates_only``."""
        tower: Any = self.make_tower()
        inputs = self.make_input(2)
        if not callable(getattr(tower, "forward_intermediates", None)):
            pytest.skip("the tower does not provide forward_intermediates (optional)")
        image = registry.tower_kind(self.config.kind).modality == "image"
        with torch.no_grad():
            every = tower.forward_intermediates(inputs)
            assert isinstance(every, TowerIntermediates) and every.features is not None
            torch.testing.assert_close(every.features, tower(inputs), atol=self.atol, rtol=1e-4)
            count = len(every.intermediates)
            assert count >= 1
            last = tower.forward_intermediates(inputs, 1, intermediates_only=True)
            listed = tower.forward_intermediates(inputs, [count - 1], intermediates_only=True, stop_early=True)
            assert last.features is None and len(last.intermediates) == len(listed.intermediates) == 1
            torch.testing.assert_close(last.intermediates[0], every.intermediates[-1])
            torch.testing.assert_close(listed.intermediates[0], every.intermediates[-1])
            for output in every.intermediates:
                assert output.shape[0] == 2 and output.dim() == (4 if image else 3)
            if image:
                flat = tower.forward_intermediates(inputs, 1, intermediates_only=True, output_fmt="NLC").intermediates
                torch.testing.assert_close(flat[0], every.intermediates[-1].flatten(2).transpose(1, 2))


def randomize_batch_norms(module: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm of ``module`` random statistics and affine parameters, for parity tests.

    Freshly initialised ResNets zero the weight of each block's last BatchNorm (and keep unit statistics), which
    hides the residual branches from any comparison of outputs; randomising them first makes a parity test see
    every convolution."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if not isinstance(layer, nn.modules.batchnorm._BatchNorm):
                continue
            shape = layer.num_features
            for tensor, values in (
                (layer.weight, torch.rand(shape, generator=generator) * 0.8 + 0.2),
                (layer.bias, torch.randn(shape, generator=generator) * 0.1),
                (layer.running_mean, torch.randn(shape, generator=generator) * 0.1),
                (layer.running_var, torch.rand(shape, generator=generator) * 1.5 + 0.5),
            ):
                if tensor is not None:
                    tensor.copy_(values)
