"""Video2Roll networks: a stack of keyboard crops -> one multi-label key vector per video frame.

In:  (B, STACK_FRAMES, CROP_HEIGHT, CROP_WIDTH) = (B, 5, 100, 900) float in [0, 1]; channel i is the
     grayscale keyboard crop of frame t-2+i (t-2 .. t+2), the original's input without mean/std.
Out: (B, n_keys) logits for frame t, no sigmoid (apply it outside, as the original did). n_keys is 88
     (all keys, column 0 = A0) or 51 (the paper's keys, MIDI 36..86 = 88-key columns 15..65);
     audeo_io.to_88_keys places either into 88 columns.

Two architectures share that contract:
  'paper'  PaperVideo2Roll, the original Video2RollNet exactly (ResNet-18 + FTB/FRB attention,
           ../shared/reference/audeo_original.md section 3). Module names match the original's, so
           its checkpoint (`BCE_5f_FAN.pth`) loads with load_state_dict. 10.4 GFLOPs per frame.
  'fast'   FastVideo2Roll, a CPU real-time variant that uses the keyboard's geometry: a small 2D
           trunk collapses the height while keeping horizontal resolution, a dilated 1D residual
           stack runs along the keyboard, and each key pools the width axis with its own learned
           (content-adaptive) attention before a per-key classifier.
A 'seq' config adds the reference-keyboard channel and a temporal head (frame, onset, offset outputs).

Running a model: load_model reads a checkpoint; iter_outputs / video_outputs run it over a stream of
crops (the one path every script takes from a video or a frame store to Video2Roll outputs);
estimate_arrays / write_estimates turn the outputs into the original's estimate_Roll segments.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from audeo_constants import (CROP_HEIGHT, CROP_WIDTH, INT8_KEY, N_KEYS, N_WHITE_KEYS, ONSET_THRESHOLD, PAPER_N_KEYS,
                             PRECISIONS, ROLL_THRESHOLD, STACK_FRAMES, is_white_key)
from audeo_io import AudeoError, atomic_dir, decode_roll, key_slice, read_torch_file, sigmoid, to_88_keys, write_segments

ARCHS = ("paper", "fast")
HEADS = ("frame", "onset", "offset")      # a sequence model's outputs, in this order


@dataclass(frozen=True)
class Video2RollConfig:
    arch: str = "paper"
    n_keys: int = N_KEYS                 # 88, or PAPER_N_KEYS (51) for the paper's key range
    in_frames: int = STACK_FRAMES        # stacked frames (input channels)
    height: int = CROP_HEIGHT
    width: int = CROP_WIDTH
    # --- 'fast' only ---
    diff_gain: float = 4.0               # frame differences are small: scale them up in the stem
    stem_channels: tuple = (16, 32)      # plain 3x3 conv-BN-ReLU layers ...
    stem_strides: tuple = ((2, 2), (2, 2))                   # ... (height, width) strides
    trunk_channels: tuple = (32, 48, 64)                     # one BasicBlock per entry ...
    trunk_strides: tuple = ((2, 1), (2, 1), (2, 1))          # ... halving only the height
    seq_channels: int = 96               # channels of the 1D stack along the keyboard
    seq_dilations: tuple = (1, 2, 4, 8, 16)                  # one 1D residual block per entry
    attn_channels: int = 16              # size of the content term of the key attention
    key_sigma: float = 1.0               # width of each key's initial position prior, in key spacings
    reference: bool = False              # one more input channel: the online reference keyboard of frame t
    # A sequence model when temporal_dilations is set: per-key features of every frame go through
    # residual (key x time) convs, one per dilation, and three outputs come out per frame and key:
    # frame (key down), onset, offset. A layer with lookahead 1 has time taps (-d, 0, +d), else (-2d, -d, 0).
    temporal_dilations: tuple = ()
    temporal_lookahead: tuple = ()
    temporal_channels: int = 64
    temporal_key_kernel: int = 3         # neighbouring keys each temporal layer sees (odd)
    # the operating point: sigmoid thresholds of the frame output and (sequence models) of onset peaks;
    # a shipped model carries the pair chosen on validation (tools/tune_decoding.py, tools/ship_model.py)
    frame_threshold: float = ROLL_THRESHOLD
    onset_threshold: float = ONSET_THRESHOLD

    @property
    def in_channels(self):
        return self.in_frames + int(self.reference)

    @property
    def is_sequence(self):
        return bool(self.temporal_dilations)

    @property
    def heads(self):
        return HEADS if self.is_sequence else HEADS[:1]

    @property
    def lookahead(self):
        """Future frames each output depends on (the frame stack's, plus the temporal layers')."""
        return self.in_frames // 2 + sum(d for d, a in zip(self.temporal_dilations, self.temporal_lookahead) if a)

    @property
    def lookback(self):
        """Past frames each output depends on."""
        return self.in_frames // 2 + sum(d if a else 2 * d for d, a in zip(self.temporal_dilations,
                                                                            self.temporal_lookahead))

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.n_keys not in (N_KEYS, PAPER_N_KEYS):
            raise ValueError(f"n_keys must be {N_KEYS} or {PAPER_N_KEYS}, got {self.n_keys}")
        if len(self.trunk_channels) != len(self.trunk_strides) or len(self.stem_channels) != len(self.stem_strides):
            raise ValueError("stem/trunk channels and strides need one entry per layer")
        if len(self.temporal_lookahead) != len(self.temporal_dilations):
            raise ValueError("temporal_lookahead needs one entry (0 or 1) per temporal dilation")
        if (self.reference or self.is_sequence) and self.arch != "fast":
            raise ValueError("the reference channel and the temporal layers exist only in the 'fast' arch")


PRESETS = {
    "paper": Video2RollConfig(arch="paper", n_keys=N_KEYS),
    "paper51": Video2RollConfig(arch="paper", n_keys=PAPER_N_KEYS),   # the original, exactly
    "fast": Video2RollConfig(arch="fast", n_keys=N_KEYS),
    "fast51": Video2RollConfig(arch="fast", n_keys=PAPER_N_KEYS),
    # the fast net + the reference keyboard + 1.2 s of temporal context; frame, onset and offset outputs
    "seq": Video2RollConfig(arch="fast", n_keys=N_KEYS, reference=True, temporal_dilations=(1, 2, 4, 8),
                            temporal_lookahead=(1, 0, 0, 0)),
}


def preset(name, **overrides):
    """A copy of PRESETS[name] with fields replaced (e.g. preset('fast', n_keys=51))."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# --------------------------------------------------------------------------- key positions

def key_centres(config):
    """Nominal horizontal centre of each output key as a fraction of the keyboard width.

    White keys are equally wide; a black key sits on the border of its two white neighbours. Used
    only to initialise the fast net's key attention, which is learned afterwards.
    """
    centres = []
    for k in range(N_KEYS)[key_slice(config.n_keys)]:
        whites_before = sum(is_white_key(j) for j in range(k))
        centres.append((whites_before + (0.5 if is_white_key(k) else 0.0)) / N_WHITE_KEYS)
    return torch.tensor(centres)


# --------------------------------------------------------------------------- the original network

class FTB(nn.Module):
    """Feature transform block: 1x1 conv (padding 1 grows H, W by 2), residual 3x3 pair, avg-pool."""

    def __init__(self, in_planes, out_planes):
        super().__init__()
        self.conv0 = nn.Conv2d(in_planes, out_planes, kernel_size=1, padding=1, bias=False)
        self.conv1 = nn.Conv2d(out_planes, out_planes, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, padding=1, bias=False)
        self.avgpool1 = nn.AvgPool2d(kernel_size=2, stride=2)
        self.avgpool2 = nn.AvgPool2d(kernel_size=3, stride=1)

    def forward(self, x, avg=True):
        r = self.conv0(x)
        out = self.conv2(self.relu(self.bn1(self.conv1(r)))) + r   # no BN/ReLU after the sum
        return self.avgpool1(out) if avg else self.avgpool2(out)


class FRB(nn.Module):
    """Feature refinement block: an SE-like channel gate from both inputs, applied to the first."""

    def __init__(self, in_planes1, in_planes2):
        super().__init__()
        self.fc1 = nn.Linear(in_planes1 + in_planes2, in_planes2)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(in_planes2, in_planes2)

    def forward(self, xl, xh):
        z = torch.cat([xl, xh], dim=1).mean(dim=(2, 3))
        gate = torch.sigmoid(self.fc2(self.relu(self.fc1(z))))
        return xl * gate[:, :, None, None]


class PaperVideo2Roll(nn.Module):
    """The original Video2RollNet (`resnet18()`): 12,713,651 parameters at 51 keys."""

    def __init__(self, config=PRESETS["paper51"]):
        super().__init__()
        self.config = config
        self.inplanes = 64
        self.conv1 = nn.Conv2d(config.in_frames, 64, kernel_size=11, stride=2, padding=4, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        # Every scale is brought to 128 x 4 x 29 (at 100 x 900 input).
        self.FTB2_1, self.FTB2_2, self.FRB2 = FTB(128, 128), FTB(128, 128), FRB(128, 128)
        self.FTB3, self.FRB3 = FTB(256, 128), FRB(128, 128)
        self.FTB4, self.FRB4 = FTB(512, 128), FRB(64, 128)
        self.toplayer = nn.Conv2d(512, 64, kernel_size=1)
        self.toplayer_bn = nn.BatchNorm2d(64)
        self.toplayer_relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(128, 128, kernel_size=1)
        self.fc = nn.Linear(128, config.n_keys)
        for m in self.modules():   # the original's init; Linear layers and conv biases keep defaults
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        h = self.maxpool(self.relu1(self.bn1(self.conv1(x))))
        x2 = self.layer2(self.layer1(h))
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        x5 = self.toplayer_relu(self.toplayer_bn(self.toplayer(x4)))
        p4 = self.FRB4(self.FTB4(x4, avg=False), x5)
        p3 = self.FRB3(self.FTB3(x3), p4)
        p2 = self.FRB2(self.FTB2_2(self.FTB2_1(x2)), p3)
        a = p2 * p3
        a = F.softmax(a.flatten(2), dim=2).view_as(a)   # softmax over the spatial positions
        out = self.conv2(a * p4) + p4
        return self.fc(out.mean(dim=(2, 3)))


# --------------------------------------------------------------------------- the fast variant

def _conv_out(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


class TemporalDiffConv2d(nn.Conv2d):
    """A conv that sees [centre frame, diff_gain * (frame i - centre) for i != centre] and, with a
    reference channel (the last input), diff_gain * (centre - reference): what changed since rest.

    The mix is linear, so it is folded into the kernel (no extra pass over the input); the
    parametrisation still makes motion and key depressions the natural features to learn.
    """

    def __init__(self, in_frames, out_channels, diff_gain, reference=False, **kwargs):
        n = in_frames + int(reference)
        super().__init__(n, out_channels, bias=False, **kwargs)
        r = in_frames // 2
        mix = torch.zeros(n, n)                          # row j: input channel j of the conv
        mix[0, r] = 1.0
        for j, i in enumerate(i for i in range(in_frames) if i != r):
            mix[j + 1, i], mix[j + 1, r] = diff_gain, -diff_gain
        if reference:
            mix[in_frames, r], mix[in_frames, in_frames] = diff_gain, -diff_gain
        self.register_buffer("mix", mix)

    def effective_weight(self):
        return torch.einsum("ojhw,ji->oihw", self.weight, self.mix)

    def forward(self, x):
        return self._conv_forward(x, self.effective_weight(), None)

    def to_plain(self):
        """The equivalent nn.Conv2d on raw frames (for inference and conv-BN fusion)."""
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding, bias=False)
        conv.weight.data.copy_(self.effective_weight().detach())
        return conv


class BasicBlock(nn.Module):
    """The ResNet basic block (He et al. 2016) exactly as torchvision.models.resnet.BasicBlock (BSD-3):
    the same parameter names and the same traced graph, so checkpoints and int8 calibrations fit both
    (tested). Written here because importing torchvision costs 1.1-1.9 s in every process, for this class.
    """
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class RowBlock(nn.Module):
    """Residual block along the keyboard: two dilated 1 x 3 convs with BN on (B, C, 1, W) rows.

    A 1-row Conv2d rather than a Conv1d, so the whole net stays 4D and channels-last friendly.
    """

    def __init__(self, channels, dilation):
        super().__init__()
        conv = lambda: nn.Conv2d(channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation),
                                 bias=False)
        self.conv1, self.bn1 = conv(), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = conv(), nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(x + self.bn2(self.conv2(out)), inplace=True)


def _conv_bn_relu(cin, cout, stride, conv=None):
    conv = conv or nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FastVideo2Roll(nn.Module):
    """Keyboard-geometry network for real-time CPU inference.

    1. Stem: the first conv sees the centre frame and the 4 differences (frame i - centre), so
       motion and key depressions stand out against the static keyboard; two stride-2 convs bring
       100 x 900 to 25 x 225 (about 2.5 positions per semitone, neighbouring keys stay apart).
    2. Trunk: BasicBlocks that halve only the height, then one conv spanning the remaining rows
       (a learned weighting of key fronts vs. hands above them): (B, C, 225) features.
    3. 1D stack: dilated residual blocks along the width; the receptive field covers about half
       the keyboard, enough to see the black-key pattern that tells keys and octaves apart.
    4. Key head: key k pools the width axis with softmax(prior_k + q_k . g(features)); the prior
       starts as a Gaussian at the key's nominal position and is learned, and the content term lets
       the attention follow a crop shifted by a few percent. A per-key linear layer gives the logit.
    """

    def __init__(self, config=PRESETS["fast"]):
        super().__init__()
        self.config = c = config
        h, w, cin, stem = c.height, c.width, c.in_channels, []
        for i, (cout, stride) in enumerate(zip(c.stem_channels, c.stem_strides)):
            conv = (TemporalDiffConv2d(c.in_frames, cout, c.diff_gain, c.reference, kernel_size=3, stride=stride,
                                       padding=1) if i == 0 else None)
            stem.append(_conv_bn_relu(cin, cout, stride, conv))
            h, w, cin = _conv_out(h, 3, stride[0], 1), _conv_out(w, 3, stride[1], 1), cout
        self.stem = nn.Sequential(*stem)
        blocks = []
        for cout, stride in zip(c.trunk_channels, c.trunk_strides):
            down = None
            if tuple(stride) != (1, 1) or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            blocks.append(BasicBlock(cin, cout, stride, down))
            h, w, cin = _conv_out(h, 3, stride[0], 1), _conv_out(w, 3, stride[1], 1), cout
        self.trunk = nn.Sequential(*blocks)
        self.collapse = _conv_bn_relu(cin, c.seq_channels, 1, nn.Conv2d(cin, c.seq_channels, (h, 1), bias=False))
        self.seq = nn.Sequential(*[RowBlock(c.seq_channels, d) for d in c.seq_dilations])
        self.positions = w
        # Key attention over the width axis; prior = Gaussian log-density around each key's centre.
        pos = (torch.arange(w) + 0.5) / w
        sigma = c.key_sigma / N_KEYS                                  # ~ one key spacing
        prior = -0.5 * ((pos[None, :] - key_centres(c)[:, None]) / sigma) ** 2
        self.key_prior = nn.Parameter(prior.clamp(min=-30.0))        # (n_keys, positions)
        self.attn_proj = nn.Conv2d(c.seq_channels, c.attn_channels, 1)
        self.key_query = nn.Parameter(torch.randn(c.n_keys, c.attn_channels) * 0.01)
        self.key_weight = nn.Parameter(torch.randn(c.n_keys, c.seq_channels) / math.sqrt(c.seq_channels))
        self.key_bias = nn.Parameter(torch.zeros(c.n_keys))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():   # residual branches start as the identity (stable training)
            if isinstance(m, (BasicBlock, RowBlock)):
                nn.init.zeros_(m.bn2.weight)

    def features(self, x):
        """(B, F, H, W) -> (B, seq_channels, 1, positions): features along the keyboard."""
        return self.seq(self.collapse(self.trunk(self.stem(x))))

    def encode(self, x):
        """(B, in_channels, H, W) -> (key logits (B, K), per-key features (B, K, seq_channels))."""
        f = self.features(x)
        content = torch.einsum("ke,bep->bkp", self.key_query, self.attn_proj(f).flatten(2))
        attn = F.softmax(self.key_prior + content, dim=2)                 # (B, K, P)
        pooled = torch.bmm(attn, f.flatten(2).transpose(1, 2))            # (B, K, C)
        return (pooled * self.key_weight).sum(dim=2) + self.key_bias, pooled

    def forward(self, x):
        return self.encode(x)[0]


class _Encode(nn.Module):
    """`encoder.encode` as a module's forward, so inference_model can trace and fuse it."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder.encode(x)


class TemporalBlock(nn.Module):
    """Pre-activation residual block over (keys, time): a (key_kernel x 3) conv dilated in time, then 1x1.

    Time padding is explicit and one-sided for a causal layer, so a stream processed in chunks with
    enough context gives exactly the whole-sequence result."""

    def __init__(self, channels, dilation, lookahead, key_kernel):
        super().__init__()
        self.pad = (dilation if lookahead else 2 * dilation, dilation if lookahead else 0)
        self.conv = nn.Conv2d(channels, channels, (key_kernel, 3), padding=(key_kernel // 2, 0),
                              dilation=(1, dilation))
        self.mix = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.mix.weight)              # starts as the identity
        nn.init.zeros_(self.mix.bias)

    def forward(self, x):                            # (B, C, K, L)
        h = self.conv(F.pad(F.relu(x), self.pad))
        return x + self.mix(F.relu(h))


class TemporalHead(nn.Module):
    """Per-key features of a run of frames -> frame, onset and offset logits for each frame and key.

    The frame output adds to the encoder's per-frame logit (it starts equal to it); onset and
    offset start at a small prior probability."""

    def __init__(self, c):
        super().__init__()
        t = c.temporal_channels
        self.inp = nn.Conv2d(c.seq_channels, t, 1)
        self.key_embed = nn.Parameter(torch.zeros(t, c.n_keys, 1))
        self.blocks = nn.Sequential(*[TemporalBlock(t, d, a, c.temporal_key_kernel)
                                      for d, a in zip(c.temporal_dilations, c.temporal_lookahead)])
        self.out = nn.Conv2d(t, len(HEADS), 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.key_bias = nn.Parameter(torch.tensor([0.0, -5.0, -5.0])[:, None].repeat(1, c.n_keys))

    def forward(self, logits, pooled):
        """logits (B, L, K), pooled (B, L, K, C) -> (B, 3, L, K)."""
        x = self.inp(pooled.permute(0, 3, 2, 1)) + self.key_embed      # (B, T, K, L)
        y = self.out(self.blocks(x)).transpose(2, 3) + self.key_bias[:, None, :]   # (B, 3, L, K)
        return y + F.pad(logits[:, None], (0, 0, 0, 0, 0, len(HEADS) - 1))


class SeqVideo2Roll(nn.Module):
    """The fast net per frame (with the reference channel) and a TemporalHead over the frames.

    forward(frames (B, L + 4, H, W), refs (B, L, H, W) or None) -> (B, 3, L, K) logits for the L frames
    whose 5-frame stacks fit in `frames` (frame, onset, offset)."""

    def __init__(self, config=PRESETS["seq"]):
        super().__init__()
        self.config = config
        self.frame_encoder = _Encode(FastVideo2Roll(config))
        self.temporal = TemporalHead(config)

    def encode_frames(self, x):
        """(N, in_channels, H, W) stacks -> (logits (N, K), pooled (N, K, C))."""
        return self.frame_encoder(x)

    def head(self, logits, pooled):
        return self.temporal(logits, pooled)

    def forward(self, frames, refs=None):
        c = self.config
        b, n = frames.shape[:2]
        length = n - c.in_frames + 1
        stacks = frames.unfold(1, c.in_frames, 1).permute(0, 1, 4, 2, 3)          # (B, L, 5, H, W)
        if c.reference:
            stacks = torch.cat([stacks, refs[:, :, None]], dim=2)
        logits, pooled = self.encode_frames(stacks.reshape(b * length, *stacks.shape[2:]))
        return self.head(logits.view(b, length, -1), pooled.view(b, length, *pooled.shape[1:]))


# --------------------------------------------------------------------------- helpers

def build_model(config):
    """The nn.Module for `config` (a Video2RollConfig or a PRESETS name)."""
    if isinstance(config, str):
        config = preset(config)
    if config.is_sequence:
        return SeqVideo2Roll(config)
    return PaperVideo2Roll(config) if config.arch == "paper" else FastVideo2Roll(config)


def count_parameters(model):
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_frame(config_or_model):
    """Forward FLOPs for one input sample (2 x multiply-adds of convs and matmuls), in FLOPs.

    Counted with torch.utils.flop_counter on a zero input in eval mode; BN, ReLU, pooling and
    softmax are not counted (as in the usual "GFLOPs" of CNNs).
    """
    from torch.utils.flop_counter import FlopCounterMode
    model = config_or_model if isinstance(config_or_model, nn.Module) else build_model(config_or_model)
    c = model.config
    was_training = model.training
    model.eval()
    length = 25 if c.is_sequence else 1          # a sequence model's temporal layers, spread over its frames
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            if c.is_sequence:
                model(torch.zeros(1, length + c.in_frames - 1, c.height, c.width), torch.zeros(1, length, c.height,
                                                                                              c.width))
            else:
                model(torch.zeros(1, c.in_channels, c.height, c.width))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / length


class KeySubset(nn.Module):
    """A model's outputs restricted to the paper's 51 keys (an 88-key model scored like the paper's)."""

    def __init__(self, model, config):
        super().__init__()
        self.model, self.config = model, config
        self.keys = key_slice(config.n_keys)

    def forward(self, *inputs):
        return self.model(*inputs)[..., self.keys]

    def encode_frames(self, x):
        return self.model.encode_frames(x)

    def head(self, logits, pooled):
        return self.model.head(logits, pooled)[..., self.keys]


def load_compatible(model, state):
    """Start `model` from another Video2Roll's weights (fine-tuning a bigger variant from a smaller one).

    Tensors are matched by name (a frame model's names gain the sequence model's encoder prefix);
    a stem kernel with fewer input channels fills the first ones and the new ones (the reference
    channel) start at zero, so the new model starts computing what the old one did. Returns the
    names that kept their initial values."""
    own = model.state_dict()
    prefix = "frame_encoder.encoder."
    if any(k.startswith(prefix) for k in own) and not any(k.startswith(prefix) for k in state):
        state = {prefix + k: v for k, v in state.items()}
    loaded = {}
    for name, value in state.items():
        if name not in own or name.endswith(".mix") and own[name].shape != value.shape:
            continue
        target = own[name]
        value = value.to(target.dtype)
        if value.shape == target.shape:
            loaded[name] = value
        elif value.dim() == 4 and value.shape[1] < target.shape[1] and value.shape[0] == target.shape[0] \
                and value.shape[2:] == target.shape[2:]:
            padded = torch.zeros_like(target)
            padded[:, :value.shape[1]] = value
            loaded[name] = padded
        else:
            raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(target.shape)}")
    model.load_state_dict({**own, **loaded})
    return sorted(set(own) - set(loaded))


def _config_from_checkpoint(ckpt, path):
    """(config, state_dict) from an Audeo checkpoint {config, model} or the original's bare state_dict."""
    if isinstance(ckpt, dict) and "config" in ckpt and "model" in ckpt:
        fields = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                  for k, v in ckpt["config"].items()}
        try:
            return Video2RollConfig(**fields), ckpt["model"]
        except (TypeError, ValueError) as e:
            raise AudeoError(f"{path}: unusable model config ({e})") from None
    if isinstance(ckpt, dict) and "FTB2_1.conv0.weight" in ckpt and "fc.weight" in ckpt:   # BCE_5f_FAN.pth
        return preset("paper51", n_keys=int(ckpt["fc.weight"].shape[0])), ckpt
    raise AudeoError(f"{path}: not a Video2Roll checkpoint (no config/model, not the original's state_dict)")


def load_model(path, device="cpu", n_keys=None, fuse=True, precision="fp32"):
    """(eval-mode model on `device`, its config) from a checkpoint file.

    Reads this project's checkpoints ({'config': asdict(config), 'model': state_dict}, fp16 or fp32)
    and the original's bare state_dict. n_keys=None keeps the model's keys; n_keys=51 on an 88-key
    model returns only the paper's keys (config.n_keys becomes 51); asking a 51-key model for 88
    is an error. fuse=True returns `inference_model` (BN folded; channels-last on CPU); precision 'int8'
    returns `int8_model` with the checkpoint's calibration (CPU only, fast/seq nets); 'bf16' is autocast
    at run time (autocast_dtype), the model is the fp32 one.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    int8 = precision == "int8"
    ckpt = read_torch_file(path)
    config, state = _config_from_checkpoint(ckpt, path)
    model = build_model(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise AudeoError(f"{path}: weights do not fit a {config.arch} net with {config.n_keys} keys "
                         f"({str(e).splitlines()[0]})") from None
    device = torch.device(device)
    if int8:
        try:
            model = int8_model(model, _int8_observers(ckpt, path, device))
        except ValueError as e:
            raise AudeoError(f"{path}: {e}") from None
    if n_keys is not None and n_keys != config.n_keys:
        if n_keys != PAPER_N_KEYS:
            raise AudeoError(f"{path}: the model predicts {config.n_keys} keys, cannot give {n_keys}")
        config = replace(config, n_keys=PAPER_N_KEYS)
        model = KeySubset(model, config)
    if int8:
        return model, config
    model = inference_model(model, channels_last=device.type == "cpu") if fuse else model.eval()
    return model.to(device), config


def inference_model(model, channels_last=True):
    """A faster, eval-only copy of `model` with the same outputs (up to float rounding).

    Folds every BatchNorm into the conv before it (torch.fx) and, by default, uses the
    channels-last layout that oneDNN convolutions prefer on CPU. Do not train the copy.
    """
    import copy
    model = copy.deepcopy(model).eval()
    if isinstance(model, SeqVideo2Roll):       # fuse the per-frame encoder; the temporal head stays as it is
        model.frame_encoder = inference_model(model.frame_encoder, channels_last)
        return model
    from torch.fx.experimental.optimization import fuse
    fused = fuse(_plain_stem(model))
    fused.config = getattr(model, "config", None)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return fused


def _plain_stem(model):
    """`model` (in place, eval mode) with every TemporalDiffConv2d made the equivalent plain conv, which
    conv-BN fusion and quantization understand."""
    for name, m in list(model.named_modules()):
        if isinstance(m, TemporalDiffConv2d):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, m.to_plain())
    return model.eval()


# --------------------------------------------------------------------------- int8 inference (CPU)
# Post-training static quantization (torch.ao FX, oneDNN/fbgemm kernels): the convolutional body of the
# fast net (stem, trunk, collapse, 1D stack: ~99 % of its FLOPs) runs in int8, 2.4-2.7x faster than fp32 on
# 2 AVX2 / AVX-512 cores; the key attention and key head, and a sequence model's temporal layers, stay fp32. The int8
# activations' ranges come from calibration on real crops, kept in the shipped checkpoint (INT8_KEY).
# torch.ao's FX quantization is deprecated upstream for torchao's pt2e, whose int8 needs torch.compile to be
# fast; requirements.txt caps torch at a release that has it, and its deprecation warnings are silenced.

def autocast_dtype(precision):
    """The autocast dtype of an inference precision (None: none; int8 is a quantized model, load_model)."""
    return torch.bfloat16 if precision == "bf16" else None


def _int8_engine():
    """The quantized engine of this CPU ('x86' where it exists, else 'qnnpack'), made the current one."""
    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"
    torch.backends.quantized.engine = engine
    return engine


@contextlib.contextmanager
def _quiet_quantization():
    """torch.ao's deprecation warnings off (they would print on every model load), and FX tracing without
    recording each node's stack trace (symbolizing it imports torch._dynamo: ~1.5 s of every int8 load)."""
    import torch.fx.config as fx_config
    keep = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*(torch\.ao\.quantization is deprecated|reduce_range "
                                                      r"will be deprecated|quantized tensor creation functions)")
            yield
    finally:
        fx_config.do_not_emit_stack_traces = keep


def _with_observed_body(model):
    """(an eval copy of a float fast or seq `model` whose frame net's convolutional body is one FX
    GraphModule with activation observers, that frame net)."""
    import copy
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx
    model = _plain_stem(copy.deepcopy(model))
    net = model.frame_encoder.encoder if isinstance(model, SeqVideo2Roll) else model
    if not isinstance(net, FastVideo2Roll):
        raise ValueError("int8 inference exists for the 'fast' arch (fast and seq nets) only")
    c = net.config
    body = nn.Sequential(net.stem, net.trunk, net.collapse, net.seq).eval()
    example = torch.zeros(1, c.in_channels, c.height, c.width)
    with _quiet_quantization():
        observed = prepare_fx(body, get_default_qconfig_mapping(_int8_engine()), (example,))
    net.stem, net.trunk, net.collapse, net.seq = observed, nn.Identity(), nn.Identity(), nn.Identity()
    return model, net


def calibrate_int8(model, crop_streams, batch_size=32):
    """{observer name: tensor}: the activation statistics of a float fast or seq `model` run (through
    iter_outputs, reference keyboard included) over each stream of uint8 crops; int8_model's input."""
    observed, net = _with_observed_body(model)
    for crops in crop_streams:
        for _ in iter_outputs(observed, crops, batch_size):
            pass
    return {k: v for k, v in net.stem.state_dict().items() if "activation_post_process" in k}


def int8_model(model, observers):
    """An eval-only int8 copy of a float fast or seq `model` for the CPU, its body quantized with the
    activation statistics `observers` (calibrate_int8)."""
    from torch.ao.quantization.quantize_fx import convert_fx
    model, net = _with_observed_body(model)
    state = net.stem.state_dict()
    if set(observers) != {k for k in state if "activation_post_process" in k}:
        raise ValueError("the int8 calibration does not fit this network")
    net.stem.load_state_dict({**state, **observers})
    with _quiet_quantization():
        net.stem = convert_fx(net.stem)
    return model


def _int8_observers(ckpt, path, device):
    """The int8 calibration of checkpoint `ckpt` (read from `path`), or a one-line error."""
    if device.type != "cpu":
        raise AudeoError(f"{path}: int8 inference runs on the CPU only (asked for {device})")
    if not isinstance(ckpt, dict) or INT8_KEY not in ckpt:
        raise AudeoError(f"{path}: no int8 calibration in this checkpoint (tools/calibrate_int8.py adds one)")
    return ckpt[INT8_KEY]


# --------------------------------------------------------------------------- running a model over a stream

def iter_stacks(frames):
    """Stacks of frames t-2..t+2 for every t of a frame stream, the edge frames repeated."""
    from collections import deque
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return
    radius = STACK_FRAMES // 2
    window = deque([first] * (radius + 1), maxlen=STACK_FRAMES)
    pending = 1                                     # frames seen but not yet the centre of a stack
    for frame in it:
        window.append(frame)
        pending += 1
        if len(window) == STACK_FRAMES and pending > radius:
            yield np.stack(window)
            pending -= 1
    while pending > 0:                              # flush: repeat the last frame
        window.append(window[-1])
        if len(window) == STACK_FRAMES:
            yield np.stack(window)
            pending -= 1


def _autocast(device, dtype):
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def iter_encoded(model, stacks, batch_size, device, dtype=None, idle=None):
    """Lists of (logits (K,), pooled (K, C) or None), one per uint8 (C, H, W) stack of a stream: batches of
    `batch_size`, or of what there is whenever `idle()` says no input is waiting."""
    batch = []
    sequence = hasattr(model, "encode_frames")

    def run_batch():
        x = torch.from_numpy(np.stack(batch)).to(device, dtype=torch.float32).div_(255)
        with torch.inference_mode(), _autocast(device, dtype):
            if sequence:
                logits, pooled = model.encode_frames(x)
                out = list(zip(logits.float().cpu().numpy(), pooled.float().cpu().numpy()))
            else:
                out = [(row, None) for row in model(x).float().cpu().numpy()]
        batch.clear()
        return out

    for stack in stacks:
        batch.append(stack)
        if len(batch) == batch_size or (idle is not None and idle()):
            yield run_batch()
    if batch:
        yield run_batch()


def operating_point(config, threshold=None, onset_threshold=None):
    """(frame threshold, onset threshold): the given values, else the model's own."""
    return (config.frame_threshold if threshold is None else threshold,
            config.onset_threshold if onset_threshold is None else onset_threshold)


def iter_outputs(model, crops, batch_size=32, device="cpu", dtype=None, chunk=200, idle=None):
    """Run a Video2Roll model over a stream of uint8 (H, W) crops at 25 fps.

    Yields (logits float32 (n_heads, n_keys), hand over the keys: bool or None) per frame, in order;
    heads are config.heads (frame only, or frame/onset/offset for a sequence model). A model with the
    reference channel keeps the online reference keyboard (audeo_video.iter_with_references); a
    sequence model runs its temporal layers on chunks of `chunk` frames with all the context they
    depend on, so the result equals the whole-sequence one and memory stays flat. dtype=torch.bfloat16
    runs the net under autocast (about 3x faster on CPUs with AMX). `idle` (a callable: no input waiting)
    also runs the encoder and the temporal layers on what they have whenever it says so (live streams)."""
    from collections import deque
    from audeo_video import iter_with_references
    config = model.config
    hands = deque()
    if config.reference:
        refs = deque()

        def crop_stream():
            for crop, ref, hand in iter_with_references(crops):
                refs.append(ref)
                hands.append(hand)
                yield crop
        stacks = (np.concatenate([s, refs.popleft()[None]]) for s in iter_stacks(crop_stream()))
    else:
        stacks = iter_stacks(crops)
    encoded = iter_encoded(model, stacks, batch_size, device, dtype, idle)
    pop_hand = lambda: hands.popleft() if hands else None
    if not config.is_sequence:
        for batch in encoded:
            for logits, _ in batch:
                yield logits[None], pop_hand()
        return
    ahead = config.lookahead - config.in_frames // 2       # the temporal layers' own context
    back = config.lookback - config.in_frames // 2
    logits, pooled = [], []                                # buffered frames, first = absolute `base`
    base = done = 0

    def run(end):
        nonlocal base, done
        lo = max(done - back, base)
        hi = min(end + ahead, base + len(logits))
        lg = torch.from_numpy(np.stack(logits[lo - base:hi - base]))[None].to(device)
        pl = torch.from_numpy(np.stack(pooled[lo - base:hi - base]))[None].to(device)
        with torch.inference_mode(), _autocast(device, dtype):
            out = model.head(lg, pl).float()[0].cpu().numpy()           # (3, hi - lo, K)
        rows = out[:, done - lo:end - lo].transpose(1, 0, 2)
        done = end
        drop = max(done - back - base, 0)
        del logits[:drop], pooled[:drop]
        base += drop
        return rows

    for batch in encoded:
        for lg, pl in batch:
            logits.append(lg)
            pooled.append(pl)
            ready = base + len(logits) - ahead             # frames whose temporal context is all there
            if ready >= done + chunk:
                for row in run(done + chunk):
                    yield row, pop_hand()
        ready = base + len(logits) - ahead
        if idle is not None and ready > done and idle():
            for row in run(ready):
                yield row, pop_hand()
    if base + len(logits) > done:
        for row in run(base + len(logits)):
            yield row, pop_hand()


def video_outputs(model, crops, batch_size=32, device="cpu", dtype=None, source="video"):
    """A whole stream of crops through iter_outputs: (logits float32 (T, n_heads, n_keys), hand over the
    keys bool (T,)); a stream with no frames is a one-line error naming `source`."""
    rows, hands = [], []
    for logits, hand in iter_outputs(model, crops, batch_size, device, dtype):
        rows.append(logits)
        hands.append(bool(hand))
    if not rows:
        raise AudeoError(f"{source}: no frames could be decoded")
    return np.stack(rows), np.array(hands)


# --------------------------------------------------------------------------- estimate_Roll segments

def estimate_arrays(logits, hands, config, threshold=None, onset_threshold=None):
    """{npz key: (T, 88) array} of a video's logits (T, n_heads, n_keys) and hand flags (T,); thresholds
    default to the model's operating point. `roll` is sigmoid(logit) >= threshold for a frame model, and
    the notes decoded from onsets and frames (audeo_io.decode_roll) for a sequence model, which also has
    `onset_logit`, `offset_logit` and (with the reference channel) `hand` (1 where a hand is over the keys)."""
    threshold, onset_threshold = operating_point(config, threshold, onset_threshold)
    probs = sigmoid(logits)
    if config.is_sequence:
        roll = decode_roll(probs[:, 0], probs[:, 1], threshold, onset_threshold)
    else:
        roll = (probs[:, 0] >= threshold).astype(np.uint8)
    arrays = dict(logit=to_88_keys(logits[:, 0].astype(np.float32)), roll=to_88_keys(roll))
    if config.is_sequence:
        arrays.update(onset_logit=to_88_keys(logits[:, 1].astype(np.float32)),
                      offset_logit=to_88_keys(logits[:, 2].astype(np.float32)))
    if config.reference:
        arrays["hand"] = hands.astype(np.uint8)[:, None]
    return arrays


def write_estimates(folder, logits, hands, config, threshold=None, onset_threshold=None, first_frame=0):
    """Write a video's estimate_Roll segments (estimate_arrays) into `folder`, atomically."""
    with atomic_dir(folder) as tmp:
        write_segments(tmp, first_frame=first_frame, **estimate_arrays(logits, hands, config, threshold,
                                                                         onset_threshold))
