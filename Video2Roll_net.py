"""Video2Roll networks: a stack of keyboard crops -> one multi-label key vector per video frame.

In:  (B, STACK_FRAMES, CROP_HEIGHT, CROP_WIDTH) = (B, 5, 100, 900) float in [0, 1]; channel i is the
     grayscale keyboard crop of frame t-2+i (t-2 .. t+2), the original's input without mean/std.
Out: (B, n_keys) logits for frame t, no sigmoid (apply it outside, as the original did). n_keys is 88
     (all keys, column 0 = A0) or 51 (the paper's keys, MIDI 36..86 = 88-key columns 15..65);
     `outputs_to_88` places either into 88 columns.

Two architectures share that contract:
  'paper'  PaperVideo2Roll, the original Video2RollNet exactly (ResNet-18 + FTB/FRB attention,
           ../shared/reference/audeo_original.md section 3). Module names match the original's, so
           its checkpoint (`BCE_5f_FAN.pth`) loads with load_state_dict. 10.4 GFLOPs per frame.
  'fast'   FastVideo2Roll, a CPU real-time variant that uses the keyboard's geometry: a small 2D
           trunk collapses the height while keeping horizontal resolution, a dilated 1D residual
           stack runs along the keyboard, and each key pools the width axis with its own learned
           (content-adaptive) attention before a per-key classifier.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

from audeo_constants import (CROP_HEIGHT, CROP_WIDTH, N_KEYS, N_WHITE_KEYS, PAPER_MIN_KEY, PAPER_N_KEYS,
                             STACK_FRAMES, is_white_key)

ARCHS = ("paper", "fast")


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

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.n_keys not in (N_KEYS, PAPER_N_KEYS):
            raise ValueError(f"n_keys must be {N_KEYS} or {PAPER_N_KEYS}, got {self.n_keys}")
        if len(self.trunk_channels) != len(self.trunk_strides) or len(self.stem_channels) != len(self.stem_strides):
            raise ValueError("stem/trunk channels and strides need one entry per layer")


PRESETS = {
    "paper": Video2RollConfig(arch="paper", n_keys=N_KEYS),
    "paper51": Video2RollConfig(arch="paper", n_keys=PAPER_N_KEYS),   # the original, exactly
    "fast": Video2RollConfig(arch="fast", n_keys=N_KEYS),
    "fast51": Video2RollConfig(arch="fast", n_keys=PAPER_N_KEYS),
}


def preset(name, **overrides):
    """A copy of PRESETS[name] with fields replaced (e.g. preset('fast', n_keys=51))."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# --------------------------------------------------------------------------- key range

def first_key(config):
    """88-key column of the model's output 0: 0 for 88 keys, PAPER_MIN_KEY (15) for 51."""
    return 0 if config.n_keys == N_KEYS else PAPER_MIN_KEY


def key_columns(config):
    """The 88-key columns covered by the model's outputs, as a range."""
    return range(first_key(config), first_key(config) + config.n_keys)


def outputs_to_88(values, config, fill=0):
    """(..., n_keys) numpy array or tensor -> (..., 88), other columns set to `fill`.

    The original wrote 0 outside the paper keys in both `logit` and `roll` of its estimate npz.
    """
    cols = key_columns(config)
    shape = tuple(values.shape[:-1]) + (N_KEYS,)
    if isinstance(values, torch.Tensor):
        full = torch.full(shape, fill, dtype=values.dtype, device=values.device)
    else:
        full = np.full(shape, fill, dtype=values.dtype)
    full[..., cols.start:cols.stop] = values
    return full


def key_centres(config):
    """Nominal horizontal centre of each output key as a fraction of the keyboard width.

    White keys are equally wide; a black key sits on the border of its two white neighbours. Used
    only to initialise the fast net's key attention, which is learned afterwards.
    """
    centres = []
    for k in key_columns(config):
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
    """A conv that sees [centre frame, diff_gain * (frame i - centre) for i != centre].

    The mix is linear, so it is folded into the kernel (no extra pass over the input); the
    parametrisation still makes motion and key depressions the natural features to learn.
    """

    def __init__(self, in_frames, out_channels, diff_gain, **kwargs):
        super().__init__(in_frames, out_channels, bias=False, **kwargs)
        r = in_frames // 2
        mix = torch.zeros(in_frames, in_frames)          # row j: input channel j of the conv
        mix[0, r] = 1.0
        for j, i in enumerate(i for i in range(in_frames) if i != r):
            mix[j + 1, i], mix[j + 1, r] = diff_gain, -diff_gain
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
        h, w, cin, stem = c.height, c.width, c.in_frames, []
        for i, (cout, stride) in enumerate(zip(c.stem_channels, c.stem_strides)):
            conv = (TemporalDiffConv2d(cin, cout, c.diff_gain, kernel_size=3, stride=stride, padding=1)
                    if i == 0 else None)
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

    def forward(self, x):
        f = self.features(x)
        content = torch.einsum("ke,bep->bkp", self.key_query, self.attn_proj(f).flatten(2))
        attn = F.softmax(self.key_prior + content, dim=2)                 # (B, K, P)
        pooled = torch.bmm(attn, f.flatten(2).transpose(1, 2))            # (B, K, C)
        return (pooled * self.key_weight).sum(dim=2) + self.key_bias


# --------------------------------------------------------------------------- helpers

def build_model(config):
    """The nn.Module for `config` (a Video2RollConfig or a PRESETS name)."""
    if isinstance(config, str):
        config = preset(config)
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
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, c.in_frames, c.height, c.width))
    finally:
        model.train(was_training)
    return counter.get_total_flops()


class KeySubset(nn.Module):
    """A model's outputs restricted to the paper's 51 keys (an 88-key model scored like the paper's)."""

    def __init__(self, model, config):
        super().__init__()
        self.model, self.config = model, config
        self.first = first_key(config)

    def forward(self, x):
        return self.model(x)[:, self.first:self.first + self.config.n_keys]


def _config_from_checkpoint(ckpt, path):
    """(config, state_dict) from an Audeo checkpoint {config, model} or the original's bare state_dict."""
    from audeo_io import AudeoError
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


def load_model(path, device="cpu", n_keys=None, fuse=True):
    """(eval-mode model on `device`, its config) from a checkpoint file.

    Reads this project's checkpoints ({'config': asdict(config), 'model': state_dict}, fp16 or fp32)
    and the original's bare state_dict. n_keys=None keeps the model's keys; n_keys=51 on an 88-key
    model returns only the paper's keys (config.n_keys becomes 51); asking a 51-key model for 88
    is an error. fuse=True returns `inference_model` (BN folded; channels-last on CPU).
    """
    from audeo_io import AudeoError
    from audeo_train import read_torch_file
    ckpt = read_torch_file(path)
    config, state = _config_from_checkpoint(ckpt, path)
    model = build_model(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise AudeoError(f"{path}: weights do not fit a {config.arch} net with {config.n_keys} keys "
                         f"({str(e).splitlines()[0]})") from None
    if n_keys is not None and n_keys != config.n_keys:
        if n_keys != PAPER_N_KEYS:
            raise AudeoError(f"{path}: the model predicts {config.n_keys} keys, cannot give {n_keys}")
        config = replace(config, n_keys=PAPER_N_KEYS)
        model = KeySubset(model, config)
    device = torch.device(device)
    model = inference_model(model, channels_last=device.type == "cpu") if fuse else model.eval()
    return model.to(device), config


def inference_model(model, channels_last=True):
    """A faster, eval-only copy of `model` with the same outputs (up to float rounding).

    Folds every BatchNorm into the conv before it (torch.fx) and, by default, uses the
    channels-last layout that oneDNN convolutions prefer on CPU. Do not train the copy.
    """
    import copy
    from torch.fx.experimental.optimization import fuse
    model = copy.deepcopy(model).eval()
    for name, m in list(model.named_modules()):
        if isinstance(m, TemporalDiffConv2d):     # make the stem a plain conv so it can be fused
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, m.to_plain())
    fused = fuse(model.eval())
    fused.config = model.config
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return fused
