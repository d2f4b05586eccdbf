"""Roll2Midi generator / discriminator: sizes, shapes, BatchNorm eps switch, trainability."""
import pytest
import torch
from torch import nn

import Roll2Midi_net as rn
from audeo_constants import N_KEYS, PAPER_N_KEYS, ROLL2MIDI_FRAMES, SEGMENT_FRAMES

TINY = 8  # base_channels of the fast test models
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(n_keys, **kw):
    return rn.Roll2MidiConfig(n_keys=n_keys, base_channels=TINY, **kw)


@pytest.mark.parametrize("n_keys", [PAPER_N_KEYS, N_KEYS])
def test_original_parameter_counts(n_keys):
    g, d = rn.build_models(rn.Roll2MidiConfig(n_keys=n_keys))
    assert rn.count_parameters(g) == 25_103_665  # reference section 5; independent of n_keys
    assert rn.count_parameters(d) == 1_554_433


@pytest.mark.parametrize("n_keys", [PAPER_N_KEYS, N_KEYS])
def test_generator_keeps_shape_and_range(n_keys):
    torch.manual_seed(0)
    g = rn.Generator(tiny(n_keys)).eval()
    x = torch.rand(2, 1, n_keys, ROLL2MIDI_FRAMES)
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("n_keys, patch", [(PAPER_N_KEYS, (1, 7, 13)), (N_KEYS, (1, 11, 13))])
def test_discriminator_patch_shape(n_keys, patch):
    d = rn.Discriminator(tiny(n_keys))
    with torch.no_grad():
        out = d(torch.rand(3, 1, n_keys, ROLL2MIDI_FRAMES))
    assert tuple(out.shape) == (3,) + patch == (3,) + d.output_shape


def test_discriminator_instance_norm_has_no_affine():
    norms = [m for m in rn.Discriminator(tiny(PAPER_N_KEYS)).modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 and not any(m.affine for m in norms)


@pytest.mark.parametrize("original, eps", [(True, 0.8), (False, 1e-5)])
def test_batchnorm_eps_switch(original, eps):
    g = rn.Generator(tiny(PAPER_N_KEYS, original_bn_eps=original))
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 10  # down2..down6 + up1..up5
    assert all(m.eps == eps for m in bns)


def test_init_matches_original():
    torch.manual_seed(0)
    g = rn.Generator(rn.Roll2MidiConfig(n_keys=PAPER_N_KEYS, base_channels=32))
    w = g.down6.model[0].weight
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bn = g.down6.model[1]
    assert torch.all(bn.bias == 0) and abs(bn.weight.mean().item() - 1) < 0.01


def test_tiny_generator_overfits_one_batch():
    # one batch of one 2 s segment keeps this at a few seconds
    torch.manual_seed(0)
    g = rn.Generator(tiny(PAPER_N_KEYS)).train()
    target = (torch.rand(1, 1, PAPER_N_KEYS, SEGMENT_FRAMES) < 0.1).float()
    x = (0.7 * target + 0.3 * torch.rand_like(target)).clamp(0, 1)  # noisy probabilities
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.mse_loss(g(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses  # ~0.3x observed over several seeds


def test_output_prior_init_starts_at_the_target_mean():
    torch.manual_seed(0)
    g = rn.Generator(rn.Roll2MidiConfig(base_channels=8)).eval()
    x = torch.rand(2, 1, N_KEYS, ROLL2MIDI_FRAMES)
    with torch.no_grad():
        assert abs(g(x).mean().item() - 0.5) < 0.05          # the original init: every output near 0.5
        rn.init_output_prior(g, 0.04)
        assert abs(g(x).mean().item() - 0.04) < 0.01
