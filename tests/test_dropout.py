"""ByteDropout: the drop rate, the scaling that keeps the mean, gradients through the mask, eval identity."""

import pytest
import torch

from lightning_seqrec.backbones.dropout import ByteDropout, byte_dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_drop_rate_and_scale(p):
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = byte_dropout(x, p)
    quantised = round(256 * p) / 256
    assert (y == 0).float().mean().item() == pytest.approx(quantised, abs=0.005)
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - quantised)))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_gradient_is_the_scaled_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = byte_dropout(x, 0.5)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.equal(x.grad, kept.float() * 2.0)


def test_layer_is_identity_in_eval_and_reproducible_under_a_seed():
    layer = ByteDropout(0.5)
    x = torch.randn(10, 7)
    assert torch.equal(layer.eval()(x), x)
    layer.train()
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)
    assert not torch.equal(first, x)
    with pytest.raises(ValueError, match="dropout probability"):
        ByteDropout(1.5)
