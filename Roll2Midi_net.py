"""Roll2Midi networks: the original Audeo generator (a "U-Net" without resampling) and PatchGAN, and
running a generator over whole videos (load_generator, refine_probs / refine, write_results).

Shapes:
- input: (B, 1, n_keys, frames) probabilities in [0, 1], the sigmoid of Video2Roll logits over a
  4 s window (frames = ROLL2MIDI_FRAMES = 100); n_keys is 88 here, PAPER_N_KEYS = 51 in the paper.
  With in_channels = 2 the second channel holds a sequence Video2Roll's onset probabilities.
- Generator output: (B, 1, n_keys, frames) in [0, 1] (sigmoid), the refined MIDI roll.
- Discriminator output: (B, 1, h, w) PatchGAN scores, no sigmoid (trained with LSGAN MSE);
  h, w = n_keys, frames halved (rounding up) three times, i.e. 7 x 13 for 51 x 100.

Architecture as in the original (reference section 5): every generator conv is 3x3 stride 1 pad 1
without bias, so the map keeps its size; skips are concatenated [upsampled, skip]; dropout 0.5 on
down3..down6 and up1..up3; a biased 1x1 conv and a sigmoid at the end. With base_channels = 64 the
generator has 25,103,665 parameters (independent of n_keys) and the discriminator 1,554,433.
Module and Sequential names follow the original, so its checkpoints' state dicts load as they are.

Deliberate change: the original writes ``nn.BatchNorm2d(c, 0.8)``, whose second positional argument
is eps, not momentum (the PyTorch-GAN idiom), so it normalises with eps = 0.8. Here eps defaults to
PyTorch's 1e-5; ``Roll2MidiConfig(original_bn_eps=True)`` restores eps = 0.8, e.g. to run original
checkpoints exactly as they were trained.

Running a generator: each video is cut into non-overlapping 100-frame windows from its first frame;
the last window is zero-padded (probability 0) and the padding trimmed again, so no frame is dropped
(the original dropped an odd last segment) and no window spans two videos.
"""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audeo_constants import MIDI_THRESHOLD, N_KEYS, ONSET_THRESHOLD, PAPER_N_KEYS, ROLL2MIDI_FRAMES
from audeo_io import AudeoError, atomic_dir, decode_roll, float_state, read_torch_file, save_npz, segment_name
from Roll2Midi_dataset import cut_window, to_model_input, window_starts

ROLL_CHANNELS = 1               # the generator's output and the discriminator's input: one roll
ORIGINAL_BN_EPS = 0.8           # what BatchNorm2d(c, 0.8) really sets
DEFAULT_BN_EPS = 1e-5           # PyTorch's default eps
ORIGINAL_BASE_CHANNELS = 64     # width of the original's first conv; all widths scale with it
DROPOUT = 0.5
LEAKY_SLOPE = 0.2
INIT_STD = 0.02
N_STRIDED = 3                   # discriminator blocks with stride 2
BATCH_SIZE = 16                 # windows a forward pass in inference (the original's batch)


@dataclass
class Roll2MidiConfig:
    n_keys: int = N_KEYS                    # PAPER_N_KEYS (51) for the paper preset
    frames: int = ROLL2MIDI_FRAMES
    original_bn_eps: bool = False           # True: BatchNorm eps 0.8 as in the original
    base_channels: int = ORIGINAL_BASE_CHANNELS  # 64 = original; small values for tiny test models
    in_channels: int = 1                    # 1: Video2Roll's frame probabilities (the original); 2: and its onsets

    def __post_init__(self):
        if self.n_keys < 1 or self.frames < 1:
            raise ValueError(f"n_keys and frames must be positive, got {self.n_keys}, {self.frames}")
        # up5 has base/4 channels (16 in the original), so base must be a multiple of 4
        if self.in_channels not in (1, 2):
            raise ValueError(f"in_channels must be 1 (frame probabilities) or 2 (and onsets), got {self.in_channels}")
        if self.base_channels < 4 or self.base_channels % 4:
            raise ValueError(f"base_channels must be a positive multiple of 4, got {self.base_channels}")

    @property
    def bn_eps(self) -> float:
        return ORIGINAL_BN_EPS if self.original_bn_eps else DEFAULT_BN_EPS


def init_weights(module: nn.Module) -> None:
    """The original's weights_init_normal: conv weights N(0, 0.02); BN gamma N(1, 0.02), beta 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


class UNetDown(nn.Module):
    """3x3 conv (no bias) -> [BN] -> LeakyReLU -> [dropout]; keeps the spatial size."""

    def __init__(self, c_in, c_out, bn_eps, normalize=True, dropout=0.0):
        super().__init__()
        layers = [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)]
        if normalize:
            layers.append(nn.BatchNorm2d(c_out, eps=bn_eps))
        layers.append(nn.LeakyReLU(LEAKY_SLOPE))
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UNetUp(nn.Module):
    """3x3 stride-1 ConvT (no bias) -> BN -> ReLU -> [dropout], then concatenate the skip."""

    def __init__(self, c_in, c_out, bn_eps, dropout=0.0):
        super().__init__()
        layers = [nn.ConvTranspose2d(c_in, c_out, 3, 1, 1, bias=False),
                  nn.BatchNorm2d(c_out, eps=bn_eps), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip):
        # order [x, skip] as in the original, so its checkpoints' weights line up
        return torch.cat((self.model(x), skip), 1)


class Generator(nn.Module):
    """Original Roll2Midi generator: (B, in_channels, K, T) probabilities -> (B, 1, K, T) in [0, 1]."""

    def __init__(self, config: Roll2MidiConfig = None):
        super().__init__()
        cfg = config or Roll2MidiConfig()
        self.config = cfg
        b, eps = cfg.base_channels, cfg.bn_eps
        self.down1 = UNetDown(cfg.in_channels, b, eps, normalize=False)
        self.down2 = UNetDown(b, 2 * b, eps)
        self.down3 = UNetDown(2 * b, 4 * b, eps, dropout=DROPOUT)
        self.down4 = UNetDown(4 * b, 8 * b, eps, dropout=DROPOUT)
        self.down5 = UNetDown(8 * b, 16 * b, eps, dropout=DROPOUT)
        self.down6 = UNetDown(16 * b, 16 * b, eps, dropout=DROPOUT)
        # each up input = previous up output + its skip (channel counts of the concatenations)
        self.up1 = UNetUp(16 * b, 8 * b, eps, dropout=DROPOUT)
        self.up2 = UNetUp(8 * b + 16 * b, 4 * b, eps, dropout=DROPOUT)
        self.up3 = UNetUp(4 * b + 8 * b, 2 * b, eps, dropout=DROPOUT)
        self.up4 = UNetUp(2 * b + 4 * b, b, eps)
        self.up5 = UNetUp(b + 2 * b, b // 4, eps)
        self.conv1d = nn.Conv2d(b // 4 + b, ROLL_CHANNELS, kernel_size=1)  # biased, as original
        self.apply(init_weights)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        d5 = self.down5(d4)
        d6 = self.down6(d5)
        u = self.up1(d6, d5)
        u = self.up2(u, d4)
        u = self.up3(u, d3)
        u = self.up4(u, d2)
        u = self.up5(u, d1)
        return torch.sigmoid(self.conv1d(u))


def init_output_prior(generator: Generator, positive_fraction: float) -> None:
    """Start the generator's output at the targets' mean instead of 0.5 (the final bias = its log-odds).

    With the original init every output starts at sigmoid(0) = 0.5 while only a few % of target cells are on;
    Adam moves the bias about one learning rate per step, so the original needs thousands of steps just
    to get there (it trained 300 epochs). Starting at the prior lets training spend its steps on the roll.
    """
    p = min(max(float(positive_fraction), 1e-4), 1 - 1e-4)
    with torch.no_grad():
        generator.conv1d.bias.fill_(math.log(p / (1 - p)))


def _halve(n: int) -> int:
    """Output size of a 3x3 stride-2 pad-1 conv (rounds up)."""
    return (n - 1) // 2 + 1


def patch_shape(n_keys: int, frames: int) -> tuple:
    """Discriminator output (1, h, w). The original's int(n/8)+1 is wrong when 8 divides n."""
    h, w = n_keys, frames
    for _ in range(N_STRIDED):
        h, w = _halve(h), _halve(w)
    return (1, h, w)


class Discriminator(nn.Module):
    """Original PatchGAN: (B, 1, K, T) roll -> (B, 1, h, w) raw scores (LSGAN, no sigmoid)."""

    def __init__(self, config: Roll2MidiConfig = None):
        super().__init__()
        cfg = config or Roll2MidiConfig()
        b = cfg.base_channels
        self.output_shape = patch_shape(cfg.n_keys, cfg.frames)
        layers, c_in = [], ROLL_CHANNELS
        # (width, stride, instance norm): the last block keeps the size (stride 1)
        for c_out, stride, norm in [(b, 2, False), (2 * b, 2, True), (4 * b, 2, True), (8 * b, 1, True)]:
            layers.append(nn.Conv2d(c_in, c_out, 3, stride, 1))
            if norm:
                layers.append(nn.InstanceNorm2d(c_out))  # affine off (PyTorch default)
            layers.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
            c_in = c_out
        layers.append(nn.Conv2d(c_in, ROLL_CHANNELS, 3, 1, 1))
        self.model = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x):
        return self.model(x)


def build_models(config: Roll2MidiConfig = None) -> tuple:
    """(Generator, Discriminator) for one config, initialised as the original."""
    cfg = config or Roll2MidiConfig()
    return Generator(cfg), Discriminator(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- checkpoints

_FIRST_WEIGHT = "down1.model.0.weight"      # present in every generator state dict (ours and the original's)


def _generator_state(ckpt, path, n_keys):
    """(config, generator state dict) of this project's checkpoint or the original's."""
    if isinstance(ckpt, dict) and "config" in ckpt and "generator" in ckpt:
        try:
            return Roll2MidiConfig(**ckpt["config"]), ckpt["generator"]
        except (TypeError, ValueError) as e:
            raise AudeoError(f"{path}: not a Roll2Midi checkpoint config ({e})") from None
    state = None
    if isinstance(ckpt, dict) and _FIRST_WEIGHT in ckpt:                 # the original's bare state dict
        state = ckpt
    elif isinstance(ckpt, dict):                                           # the original's .tar: a nested one
        state = next((v for v in ckpt.values() if isinstance(v, dict) and _FIRST_WEIGHT in v), None)
    if state is None or not isinstance(state[_FIRST_WEIGHT], torch.Tensor):
        raise AudeoError(f"{path}: not a Roll2Midi generator checkpoint (no config/generator)")
    # the original: 51 keys (unless told), BatchNorm eps 0.8, width from the first conv
    return Roll2MidiConfig(n_keys=n_keys or PAPER_N_KEYS, original_bn_eps=True,
                           base_channels=int(state[_FIRST_WEIGHT].shape[0])), state


def load_generator(path, device="cpu", n_keys=None):
    """(eval-mode Generator on `device`, its Roll2MidiConfig) from a checkpoint file.

    Reads best.pt/last.pt of Roll2Midi_train.py ({'config', 'generator', ...}) with
    weights_only=True, or the original's generator state dict (taken as 51 keys, eps 0.8).
    n_keys, when given, must equal the model's key count. Problems are one-line AudeoErrors.
    """
    ckpt = read_torch_file(path)
    config, state = _generator_state(ckpt, path, n_keys)
    if n_keys is not None and n_keys != config.n_keys:
        raise AudeoError(f"{path}: the generator was trained on {config.n_keys} keys, not {n_keys}")
    generator = Generator(config)
    try:
        generator.load_state_dict(float_state(state))
    except (RuntimeError, AttributeError) as e:
        raise AudeoError(f"{path}: weights do not fit a Roll2Midi generator of width {config.base_channels} "
                         f"({str(e).splitlines()[0]})") from None
    return generator.to(torch.device(device)).eval(), config


# ----------------------------------------------------------------------------- refinement

@torch.no_grad()
def refine_probs(generator, probs, device="cpu", batch_size=BATCH_SIZE, frames=ROLL2MIDI_FRAMES):
    """Generator probabilities (T, K) float32 for Video2Roll probabilities (T, K), any T.

    Non-overlapping `frames`-long windows from frame 0, the last one zero-padded and trimmed.
    `probs` must have the generator's key count (its config.n_keys); the generator is put in eval mode.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim not in (2, 3):
        raise AudeoError(f"probabilities have shape {probs.shape}, expected (frames, keys[, channels])")
    generator.eval()
    device = torch.device(device)
    starts = window_starts(len(probs), frames, frames)
    out = np.zeros((len(starts) * frames, probs.shape[1]), np.float32)
    for b in range(0, len(starts), batch_size):
        chunk = starts[b:b + batch_size]
        x = to_model_input([cut_window(probs, s, frames) for s in chunk]).to(device)
        y = generator(x).float()[:, 0].transpose(1, 2).cpu().numpy()     # (B, frames, K)
        out[chunk[0]:chunk[-1] + frames] = y.reshape(-1, probs.shape[1])
    return out[:len(probs)]


def refine(generator, probs, device="cpu", batch_size=BATCH_SIZE, threshold=MIDI_THRESHOLD,
           frames=ROLL2MIDI_FRAMES, onset_threshold=ONSET_THRESHOLD):
    """Binary roll (T, K) uint8 of the generator's output for `probs` (T, K) or (T, K, 2): output >=
    threshold; with onset probabilities (the second channel), notes start at their peaks and last while
    the output holds (audeo_io.decode_roll)."""
    refined = refine_probs(generator, probs, device, batch_size, frames)
    onsets = np.asarray(probs)[..., 1] if np.ndim(probs) == 3 else None
    return output_roll(refined, onsets, threshold, onset_threshold)


def output_roll(output, onsets, threshold, onset_threshold=ONSET_THRESHOLD):
    """Binary roll (T, K) uint8 of probabilities (T, K): >= threshold; with Video2Roll's onset probabilities
    (T, K), notes start at their peaks >= onset_threshold and last while `output` holds (audeo_io.decode_roll)."""
    if onsets is None:
        return (np.asarray(output) >= threshold).astype(np.uint8)
    return decode_roll(output, onsets, threshold, onset_threshold)


def write_results(folder, roll, segments, first_frame):
    """Write `roll` (frames from `first_frame`) as `midi` segments named like `segments` [(s, e, path)]."""
    with atomic_dir(folder) as tmp:
        for start, end, _ in segments:
            save_npz(Path(tmp) / segment_name(start, end), midi=roll[start - first_frame:end - first_frame])
