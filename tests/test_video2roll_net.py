"""Video2Roll networks: the original's exact size and shapes, the fast variant's contract and cost."""
import pytest
import torch

import Video2Roll_net as vn
from audeo_constants import CROP_HEIGHT, CROP_WIDTH, N_KEYS, PAPER_MAX_KEY, PAPER_MIN_KEY, PAPER_N_KEYS, STACK_FRAMES

PAPER_PARAMETERS = 12_713_651          # reference section 3, derived from the original's layers
PAPER_GFLOPS = 10.4                    # reference environment notes, per 5 x 100 x 900 sample


def batch(n=2, seed=0):
    return torch.rand(n, STACK_FRAMES, CROP_HEIGHT, CROP_WIDTH, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def paper51():
    torch.manual_seed(0)
    return vn.build_model("paper51")


def test_paper_net_has_the_originals_parameter_count(paper51):
    assert vn.count_parameters(paper51) == PAPER_PARAMETERS
    # the reference's breakdown: FTBs 1,311,744; FRBs 140,032; top 32,960; head 23,091
    part = lambda *names: sum(vn.count_parameters(getattr(paper51, n)) for n in names)
    assert part("FTB2_1", "FTB2_2", "FTB3", "FTB4") == 1_311_744
    assert part("FRB2", "FRB3", "FRB4") == 140_032
    assert part("toplayer", "toplayer_bn") == 32_960
    assert part("conv2", "fc") == 23_091


def test_paper_net_keeps_the_originals_state_dict_names(paper51):
    keys = set(paper51.state_dict())
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.1.running_var", "FTB2_1.conv0.weight",
              "FTB4.bn1.running_mean", "FRB4.fc1.weight", "toplayer_bn.bias", "conv2.bias", "fc.weight"):
        assert k in keys
    assert paper51.conv1.weight.shape == (64, STACK_FRAMES, 11, 11)
    assert paper51.fc.weight.shape == (PAPER_N_KEYS, 128)


@pytest.mark.parametrize("stride", [1, 2])
def test_basic_block_is_torchvisions(stride):
    """Video2Roll_net.BasicBlock has torchvision's parameter names, outputs and FX graph (checkpoints
    and int8 calibrations are keyed by them)."""
    from torchvision.models.resnet import BasicBlock as Theirs
    down = lambda: torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1, stride, bias=False), torch.nn.BatchNorm2d(16))
    torch.manual_seed(0)
    theirs = Theirs(8, 16, stride, down())
    ours = vn.BasicBlock(8, 16, stride, down())
    ours.load_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 8, 12, 20)
    for mode in (True, False):
        torch.testing.assert_close(ours.train(mode)(x), theirs.train(mode)(x))
    graph = lambda m: [(n.op, str(n.target)) for n in torch.fx.symbolic_trace(m).graph.nodes]
    assert graph(ours) == graph(theirs)


def test_paper_net_shapes(paper51):
    seen = {}
    hooks = [getattr(paper51, n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.shape[1:]))
             for n in ("maxpool", "layer1", "layer2", "layer3", "layer4", "toplayer_relu", "FRB2", "FRB3", "FRB4")]
    paper51.eval()
    with torch.no_grad():
        out = paper51(batch())
    for h in hooks:
        h.remove()
    assert out.shape == (2, PAPER_N_KEYS)
    assert seen["maxpool"] == (64, 25, 225) and seen["layer1"] == (64, 25, 225)
    assert seen["layer2"] == (128, 13, 113) and seen["layer3"] == (256, 7, 57) and seen["layer4"] == (512, 4, 29)
    assert seen["toplayer_relu"] == (64, 4, 29)
    assert seen["FRB2"] == seen["FRB3"] == seen["FRB4"] == (128, 4, 29)


def test_paper_net_88_keys_output():
    model = vn.build_model("paper").eval()
    with torch.no_grad():
        assert model(batch()).shape == (2, N_KEYS)


def test_paper_flops_match_the_reference(paper51):
    assert vn.flops_per_frame(paper51) / 1e9 == pytest.approx(PAPER_GFLOPS, rel=0.05)


@pytest.mark.parametrize("name,n_keys", [("fast", N_KEYS), ("fast51", PAPER_N_KEYS)])
def test_fast_net_forward_backward(name, n_keys):
    torch.manual_seed(0)
    model = vn.build_model(name)
    x = batch()
    out = model(x)
    assert out.shape == (2, n_keys)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_fast_net_is_cheap():
    cfg = vn.preset("fast")
    assert vn.flops_per_frame(cfg) < 1e9                       # vs 10.4 GFLOPs for the paper net
    assert vn.count_parameters(vn.build_model(cfg)) < 1_000_000


def test_fast_key_prior_starts_at_each_keys_position():
    model = vn.build_model("fast51")
    peak = model.key_prior.argmax(dim=1).float() / model.positions       # fraction of the width
    assert torch.all(peak[1:] >= peak[:-1])                                # keys left to right
    assert torch.allclose(peak, vn.key_centres(model.config), atol=2.0 / model.positions)


def test_temporal_difference_stem_equals_a_conv_on_centre_and_differences():
    conv = vn.TemporalDiffConv2d(STACK_FRAMES, 4, 3.0, kernel_size=3, padding=1)
    x = torch.rand(1, STACK_FRAMES, 8, 12)
    r = STACK_FRAMES // 2
    mixed = torch.cat([x[:, r:r + 1], 3.0 * (torch.cat([x[:, :r], x[:, r + 1:]], 1) - x[:, r:r + 1])], 1)
    expected = torch.nn.functional.conv2d(mixed, conv.weight, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-5)
    assert torch.allclose(conv.to_plain()(x), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["fast", "paper51"])
def test_inference_model_gives_the_same_outputs(name):
    torch.manual_seed(0)
    model = vn.build_model(name)
    model.train()
    with torch.no_grad():
        model(batch(2, seed=1))          # move BN running statistics away from their defaults
    model.eval()
    x = batch()
    with torch.no_grad():
        ref = model(x)
        out = vn.inference_model(model)(x)
    assert torch.allclose(ref, out, atol=1e-4, rtol=1e-4)


def test_config_rejects_other_key_counts_and_archs():
    with pytest.raises(ValueError):
        vn.Video2RollConfig(n_keys=60)
    with pytest.raises(ValueError):
        vn.Video2RollConfig(arch="resnet")


def _save(path, obj):
    torch.save(obj, path)
    return path


def test_load_model_round_trip_and_key_subset(tmp_path):
    import dataclasses
    torch.manual_seed(0)
    cfg = vn.preset("fast")
    model = vn.build_model(cfg).eval()
    path = _save(tmp_path / "m.pt", dict(config=dataclasses.asdict(cfg), model=model.state_dict()))
    x = batch()
    with torch.no_grad():
        ref = model(x)
        loaded, config = vn.load_model(path)
        assert config == cfg
        assert torch.allclose(loaded(x), ref, atol=1e-4)
        sub, sub_cfg = vn.load_model(path, n_keys=PAPER_N_KEYS, fuse=False)    # 88-key model on the paper's keys
        assert sub_cfg.n_keys == PAPER_N_KEYS
        assert torch.allclose(sub(x), ref[:, PAPER_MIN_KEY:PAPER_MAX_KEY + 1], atol=1e-5)


def test_load_model_reads_the_originals_bare_state_dict_and_rejects_garbage(tmp_path, paper51):
    from audeo_io import AudeoError
    model, config = vn.load_model(_save(tmp_path / "BCE_5f_FAN.pth", paper51.state_dict()), fuse=False)
    assert config.arch == "paper" and config.n_keys == PAPER_N_KEYS
    assert torch.equal(model.fc.weight, paper51.fc.weight)
    with pytest.raises(AudeoError):
        vn.load_model(tmp_path / "BCE_5f_FAN.pth", n_keys=N_KEYS)             # 51 keys cannot give 88
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AudeoError):
        vn.load_model(tmp_path / "junk.pt")
    with pytest.raises(AudeoError):
        vn.load_model(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- int8 (CPU)

def _crops(n=24, seed=0):
    import numpy as np
    return np.random.default_rng(seed).integers(0, 256, (n, CROP_HEIGHT, CROP_WIDTH), dtype=np.uint8)


def _trained_like(name):
    """A random-weight net whose BatchNorm statistics moved away from their defaults."""
    torch.manual_seed(0)
    model = vn.build_model(name)
    if name == "fast":
        model.train()
        with torch.no_grad():
            model(batch(4, seed=1))
    return model.eval()


@pytest.mark.parametrize("name", ["fast", "seq"])
def test_int8_model_is_quantized_and_follows_the_float_model(name):
    model = _trained_like(name)
    observers = vn.calibrate_int8(model, [_crops(seed=1)])
    int8 = vn.int8_model(model, observers)
    assert any("quantized" in type(m).__module__ for m in int8.modules())
    ref, _ = vn.video_outputs(model, _crops(seed=2))
    got, _ = vn.video_outputs(int8, _crops(seed=2))
    assert ref.shape == got.shape
    corr = float(torch.corrcoef(torch.stack([torch.from_numpy(ref.ravel()), torch.from_numpy(got.ravel())]))[0, 1])
    assert corr > 0.99, corr
    assert not torch.equal(torch.from_numpy(ref), torch.from_numpy(got))      # it is not the float model


def test_load_model_int8_needs_a_calibration_and_the_cpu(tmp_path):
    import dataclasses
    from audeo_io import AudeoError, save_checkpoint
    model = _trained_like("fast")
    plain = dict(config=dataclasses.asdict(model.config), model=model.state_dict())
    save_checkpoint(tmp_path / "plain.pt", **plain)
    with pytest.raises(AudeoError, match="plain.pt: no int8 calibration"):
        vn.load_model(tmp_path / "plain.pt", precision="int8")
    save_checkpoint(tmp_path / "calibrated.pt", **plain, **{vn.INT8_KEY: vn.calibrate_int8(model, [_crops()])})
    with pytest.raises(AudeoError, match="calibrated.pt: int8 inference runs on the CPU only"):
        vn.load_model(tmp_path / "calibrated.pt", device="cuda", precision="int8")
    int8, config = vn.load_model(tmp_path / "calibrated.pt", precision="int8")
    assert config == model.config and any("quantized" in type(m).__module__ for m in int8.modules())
    with pytest.raises(ValueError):
        vn.load_model(tmp_path / "calibrated.pt", precision="int4")


def test_calibrate_int8_tool_adds_a_calibration_in_place(tmp_path, tiny_dataset):
    import dataclasses
    import runpy
    from audeo_io import save_checkpoint
    model = _trained_like("fast")
    path = tmp_path / "m.pt"
    save_checkpoint(path, config=dataclasses.asdict(model.config), model=model.state_dict())
    tool = runpy.run_path(str(vn.__file__).replace("Video2Roll_net.py", "tools/calibrate_int8.py"))
    tool["main"]([str(path), "--data", str(tiny_dataset), "--every", "1", "--frames", "30"])
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"config", "model", vn.INT8_KEY}
    assert torch.equal(ckpt["model"]["key_bias"], model.state_dict()["key_bias"])
    vn.load_model(path, precision="int8")
