"""Train Roll2Midi: a least-squares GAN refining Video2Roll probabilities into MIDI rolls.

In:  --estimates ESTIMATES  ESTIMATES/estimate_Roll/<split>/<video>/ npz written by Video2Roll_inference.py
                            (--out ESTIMATES) for the training split and the validation split
     --data ROOT            ROOT/midi/<split>/<video>/ reference segments (sustain-extended)
Out: OUT/last.pt   full training state (generator, discriminator, both optimizers, scheduler, epoch,
                   sample, RNG), rewritten every --save-minutes and at each epoch end; a run resumes
                   from it by default
     OUT/best.pt   {config, generator, discriminator, metrics, epoch}: the epoch with the best
                   validation score, (pooled frame F1 + note onset+offset F1) / 2 of the generator output
                   >= --midi-threshold (with the onset channel, --net '{"in_channels": 2}': notes decoded from
                   Video2Roll's onsets, peaks >= --onset-threshold, and the generator output)
     OUT/log.csv   one row per epoch: train G/D losses, validation G/D losses and metrics, learning rate

Recipe (the original's, ../shared/reference/audeo_original.md section 5): MSE everywhere (LSGAN),
  G loss = 0.001 * MSE(D(G(x)), 1) + 0.999 * MSE(G(x), target)
  D loss = 0.5 * [MSE(D(target), 1) + MSE(D(G(x).detach()), 0)]
a G step then a D step per batch; Adam 5e-4, betas (0.9, 0.999) for both; batch 16; 300 epochs;
ReduceLROnPlateau(patience 2) on G only. Changes: the scheduler watches the validation G loss (the
original: training loss), the best model is chosen by the validation score (the original: G + D test loss),
losses are summed as numbers (the original kept their autograd graphs), windows never span two
videos and pad with probability 0 (see Roll2Midi_dataset.py). D scores real and fake windows in one
batch, which equals two calls (D has instance norm only). One process, or several with
    torchrun --nproc_per_node N Roll2Midi_train.py ...
(DistributedDataParallel; gloo on CPU, NCCL on CUDA): each rank trains on its share of every epoch,
validation metrics are computed over all ranks, and only rank 0 logs and writes. Mixed precision
on CUDA only. The loop itself (resume, the mid-epoch and epoch-end last.pt, best.pt, the log) is
audeo_train.fit; on resume every rank restores its own RNG state.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from audeo_cli import parser, run
from audeo_constants import MIDI_THRESHOLD, N_KEYS, ONSET_THRESHOLD, PAPER_N_KEYS, SEGMENT_FRAMES, SPLITS
from audeo_io import AudeoError
from audeo_metrics import video_set_metrics
from audeo_train import Resumable, Stage, add_fit_args, distribute, fit, merge_over_ranks, net_overrides, reduce_sum, unwrap
from Roll2Midi_dataset import Roll2MidiDataset
from Roll2Midi_net import Roll2MidiConfig, build_models, init_output_prior, output_roll

# ----------------------------------------------------------------------------- defaults
DEFAULTS = dict(
    n_keys=N_KEYS, epochs=300, batch_size=16, lr=5e-4, betas=(0.9, 0.999), patience=2, lr_factor=0.1,
    stride=SEGMENT_FRAMES, prior_init=True, midi_threshold=MIDI_THRESHOLD, onset_threshold=ONSET_THRESHOLD, workers=0,
    seed=0, save_minutes=10.0,
)
ADV_WEIGHT = 0.001                 # the original's weight of the adversarial term in the G loss
PIXEL_WEIGHT = 1 - ADV_WEIGHT      # ... and of the pixel-wise MSE to the reference roll


# ----------------------------------------------------------------------------- data

def make_loaders(args, config, rank, world):
    channels = config.in_channels
    train = Roll2MidiDataset(args.estimates, args.data, SPLITS[0], n_keys=args.n_keys, stride=args.stride,
                             channels=channels)
    val = Roll2MidiDataset(args.estimates, args.data, args.val_split, n_keys=args.n_keys, stride=None,
                           channels=channels)
    sampler = Resumable(DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=args.seed))
    # the loader draws its base seed from its own generator, so the global RNG (dropout) resumes exactly
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                        drop_last=False, generator=torch.Generator().manual_seed(args.seed))
    val_index = np.arange(len(val))[rank::world]            # each rank scores its share
    return train, val, loader, sampler, val_index


# ----------------------------------------------------------------------------- steps

def _targets(discriminator, n, device):
    """LSGAN targets shaped like the discriminator's real output: (ones, zeros)."""
    valid = torch.ones((n,) + tuple(unwrap(discriminator).output_shape), device=device)
    return valid, torch.zeros_like(valid)


def generator_loss(discriminator, fake, y, valid):
    """0.001 * MSE(D(G(x)), 1) + 0.999 * MSE(G(x), target).

    D runs as the bare module: its gradients from this loss are cleared before the D step, so under
    DDP they need no synchronisation (and must not start one).
    """
    mse = nn.functional.mse_loss
    return ADV_WEIGHT * mse(unwrap(discriminator)(fake).float(), valid) + PIXEL_WEIGHT * mse(fake.float(), y)


def discriminator_loss(discriminator, y, fake, valid, fake_label):
    """0.5 * [MSE(D(target), 1) + MSE(D(G(x).detach()), 0)], real and fake scored in one batch."""
    mse = nn.functional.mse_loss
    real_score, fake_score = discriminator(torch.cat([y, fake.detach()])).float().split(len(y))
    return 0.5 * (mse(real_score, valid) + mse(fake_score, fake_label))


def train_steps(generator, discriminator, loader, opt_g, opt_d, scaler, device, amp, on_step):
    """One pass over the loader: a G step then a D step per batch, as the original."""
    generator.train()
    discriminator.train()
    for x, y, _ in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        valid, fake_label = _targets(discriminator, len(x), device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            fake = generator(x)
            g_loss = generator_loss(discriminator, fake, y, valid)
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(g_loss).backward()
        scaler.step(opt_g)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            d_loss = discriminator_loss(discriminator, y, fake, valid, fake_label)
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(d_loss).backward()
        scaler.step(opt_d)
        scaler.update()
        on_step(len(x), g_loss.item(), d_loss.item())


@torch.no_grad()
def validate(generator, discriminator, val, val_index, args, device, amp):
    """Validation G/D losses and, through audeo_metrics, the figures evaluation reports: each validation
    video's windows joined again (padding dropped), G(x) >= --midi-threshold (or, for a generator with the onset
    channel, notes decoded from Video2Roll's onsets and G(x)), pooled frame P/R/F1 and note onset and
    onset+offset F1 over all ranks. `val_score` (the model choice) is (frame F1 + onset+offset F1) / 2."""
    g, d = unwrap(generator).eval(), unwrap(discriminator).eval()
    g_sum = d_sum = 0.0
    parts = {}                                       # video -> {window start: (output, onset, target)}
    for start in range(0, len(val_index), args.batch_size):
        idx = [int(i) for i in val_index[start:start + args.batch_size]]
        batch = [val[i] for i in idx]
        x = torch.stack([b[0] for b in batch]).to(device)
        y = torch.stack([b[1] for b in batch]).to(device)
        valid, fake_label = _targets(d, len(x), device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            fake = g(x)
            g_loss = generator_loss(d, fake, y, valid)
            d_loss = discriminator_loss(d, y, fake, valid, fake_label)
        g_sum += g_loss.item() * len(x)
        d_sum += d_loss.item() * len(x)
        out = fake.float()[:, 0].transpose(1, 2).cpu().numpy()                   # (B, frames, K)
        onset = x[:, -1].transpose(1, 2).cpu().numpy()
        target = (y > 0)[:, 0].transpose(1, 2).cpu().numpy()
        for i, o, on, t in zip(idx, out, onset, target):
            v, s = (int(a) for a in val.index[i])
            n = val.valid_frames(i)
            parts.setdefault(v, {})[s] = (o[:n], on[:n], t[:n])
    joined = {v: [np.concatenate([w[s][j] for s in sorted(w)]) for j in range(3)] for v, w in parts.items()}
    two = unwrap(generator).config.in_channels == 2
    rolls = {v: (output_roll(o, on if two else None, args.midi_threshold, args.onset_threshold), t)
             for v, (o, on, t) in joined.items()}
    rolls = merge_over_ranks({"val": ([r for r, _ in rolls.values()], [t for _, t in rolls.values()])})
    g_sum, d_sum, n = reduce_sum([g_sum, d_sum, len(val_index)], device)
    preds, targets = rolls.get("val", ([], []))
    m = video_set_metrics(preds, targets) if preds else {}
    f1, onoff = m.get("frame_pooled_f1", 0.0), m.get("note_onset_offset_f1", 0.0)
    return dict(val_g_loss=g_sum / max(n, 1), val_d_loss=d_sum / max(n, 1),
                val_precision=m.get("frame_pooled_precision", 0.0), val_recall=m.get("frame_pooled_recall", 0.0),
                val_f1=f1, val_onset_f1=m.get("note_onset_f1", 0.0), val_onset_offset_f1=onoff,
                val_score=(f1 + onoff) / 2)


def make_config(args):
    """Roll2MidiConfig from --n-keys, --original-bn-eps and the --net JSON overrides."""
    try:
        return Roll2MidiConfig(n_keys=args.n_keys, original_bn_eps=args.original_bn_eps, **net_overrides(args.net))
    except (TypeError, ValueError) as e:
        raise AudeoError(f"--net {args.net}: {e}") from None


# ----------------------------------------------------------------------------- the stage

def start(args, device, rank, world, resuming):
    """The Roll2Midi Stage for audeo_train.fit: generator and discriminator, an Adam each, the plateau
    schedule on G's validation loss, the data."""
    amp = device.type == "cuda" and not args.no_amp
    config = make_config(args)
    train_set, val, loader, sampler, val_index = make_loaders(args, config, rank, world)
    generator, discriminator = (m.to(device) for m in build_models(config))
    if args.prior_init:
        init_output_prior(generator, train_set.positive_fraction())
    generator, discriminator = distribute(generator, device, world), distribute(discriminator, device, world)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=tuple(args.betas))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr, betas=tuple(args.betas))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_g, "min", patience=args.patience,
                                                           factor=args.lr_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    summary = (f"training Roll2Midi ({config.n_keys} keys, base {config.base_channels}) on {device} x{world}: "
               f"{len(train_set)} train windows from {len(train_set.videos)} videos, {len(val)} validation windows")
    return Stage(config=config, models=dict(generator=generator, discriminator=discriminator),
                 optimizers=dict(optimizer_g=opt_g, optimizer_d=opt_d), scheduler=scheduler, scaler=scaler,
                 dataset=train_set, sampler=sampler,
                 train_pass=lambda on_step: train_steps(generator, discriminator, loader, opt_g, opt_d, scaler, device,
                                                        amp, on_step),
                 validate=lambda: validate(generator, discriminator, val, val_index, args, device, amp),
                 summary=summary, loss_names=("train_g_loss", "train_d_loss"), plateau_metric="val_g_loss",
                 unit="window")


def parse_args(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--estimates", required=True,
                   help="Video2Roll_inference --out folder holding estimate_Roll/<split>/<video>/")
    p.add_argument("--data", required=True, help="dataset root with midi/<split>/<video>/ reference segments")
    p.add_argument("--out", required=True, help="run folder: last.pt, best.pt, log.csv")
    add_fit_args(p, d, "no mixed precision on CUDA")
    p.add_argument("--n-keys", type=int, default=d["n_keys"], choices=(N_KEYS, PAPER_N_KEYS),
                   help="88 keys or the paper's 51")
    p.add_argument("--net", default="", help='JSON overrides of Roll2MidiConfig (e.g. {"base_channels": 8})')
    p.add_argument("--original-bn-eps", action="store_true", help="BatchNorm eps 0.8 as the original")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--lr", type=float, default=d["lr"], help="Adam learning rate of G and D")
    p.add_argument("--betas", type=float, nargs=2, default=d["betas"], help="Adam betas of G and D")
    p.add_argument("--patience", type=int, default=d["patience"], help="ReduceLROnPlateau patience (epochs), G only")
    p.add_argument("--lr-factor", type=float, default=d["lr_factor"])
    p.add_argument("--stride", type=int, default=d["stride"],
                   help="frames between training windows (50 = the original's overlapping segment pairs)")
    p.add_argument("--val-split", default=SPLITS[1], help="split used for validation and model choice")
    p.add_argument("--midi-threshold", type=float, default=d["midi_threshold"],
                   help="on the generator output, for the validation metrics")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="with the onset channel: onset peaks that start a note in validation (pass the Video2Roll "
                        "checkpoint's, which Audeo.py uses)")
    p.add_argument("--original-init", dest="prior_init", action="store_false",
                   help="start the output at 0.5 as the original (default: at the targets' mean, see init_output_prior)")
    return p.parse_args(argv)


def main(argv=None):
    fit(parse_args(argv), start)


if __name__ == "__main__":
    run(main)
