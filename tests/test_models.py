import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import BFCNN_GRAY, need
from denoiserlens import UserError
from denoiserlens.models import (
    BFCNN,
    UNet,
    UNetConfig,
    import_lab_checkpoint,
    load_model,
    preset_config,
    receptive_field,
)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_paper_preset_parameter_count():
    # Appendix A says ~13m; with one gain per normalized channel, exactly: bias-free
    assert n_params(UNet(preset_config("paper", bias=False, norm="batch"))) == 13_117_440
    # + 5056 conv biases (no bias on D1's last conv or the up-convolutions)
    assert n_params(UNet(preset_config("paper", up_bias=False, out_bias=False))) == 13_122_496
    # + the authors' biases on D2's and D3's up-convolutions (128 + 256) and D1's last conv (1)
    assert n_params(UNet(preset_config("paper"))) == 13_122_881
    assert n_params(UNet(preset_config("paper", image_channels=3))) == 13_122_881 + 2304 + 2


def test_paper_block_shapes_and_names():
    m = UNet(preset_config("paper", image_channels=3)).eval()
    y = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        shapes = {
            b.name: (tuple(b.input.shape[1:]), tuple(b.output.shape[1:])) for b in m.iter_blocks(y)
        }
    assert list(shapes) == ["E1", "E2", "E3", "M", "D3", "D2", "D1"] == m.block_names
    assert shapes["E1"] == ((3, 64, 64), (64, 64, 64))
    assert shapes["E3"] == ((128, 16, 16), (256, 16, 16))
    assert shapes["M"] == ((256, 8, 8), (512, 8, 8))
    assert shapes["D3"] == ((512, 16, 16), (256, 16, 16))
    assert shapes["D1"] == ((128, 64, 64), (3, 64, 64))


def test_receptive_field_paper_is_84():
    assert receptive_field(preset_config("paper"), "M") == 84
    assert receptive_field(preset_config("paper"), "E1") == 5


def test_receptive_field_matches_gradient_support():
    cfg = UNetConfig(
        channels=(4, 4, 4, 4),
        enc_convs=(1, 2, 1),
        mid_convs=2,
        dec_convs=(2, 2, 2),
        bias=False,
        norm="none",
    )
    m = UNet(cfg)
    with torch.no_grad():  # all-positive weights: every ReLU is active, no path cancels
        for p in m.parameters():
            p.abs_().add_(0.01)
    y = torch.rand(1, 1, 128, 128, requires_grad=True)
    out = m.blocks_until(y, "M")["M"].output
    out[0, 0, 8, 8].backward()
    rows = (y.grad[0, 0].abs().sum(1) > 0).nonzero()
    cols = (y.grad[0, 0].abs().sum(0) > 0).nonzero()
    extent = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    assert extent == (receptive_field(cfg, "M"),) * 2


def test_stop_after_middle_block_skips_decoder_and_matches_full_pass():
    m = UNet(preset_config("tiny")).eval()
    calls = []
    for name in ("D3", "D2", "D1"):
        m.blocks[name].register_forward_hook(lambda *a, n=name: calls.append(n))
    y = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        partial = m.blocks_until(y, "M")
        assert calls == [] and list(partial) == ["E1", "E2", "E3", "M"]
        full = {b.name: b.output for b in m.iter_blocks(y)}
    assert torch.equal(partial["M"].output, full["M"])
    with pytest.raises(UserError, match="unknown block"):
        m.blocks_until(y, "M9")


@pytest.mark.parametrize("factor", [0.3, 2.5])
def test_bias_free_unet_is_homogeneous(factor):
    m = UNet(preset_config("tiny", bias=False, norm="batch"))
    m.train()
    m(torch.rand(8, 1, 32, 32))  # move the running statistics away from 1
    m.eval()
    y = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(factor * y), factor * m(y), rtol=1e-4, atol=1e-6)


def test_biased_unet_is_not_homogeneous():
    m = UNet(preset_config("tiny")).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d) and mod.bias is not None:
                mod.bias.fill_(0.1)
        y = torch.rand(1, 1, 32, 32)
        assert not torch.allclose(m(2 * y), 2 * m(y), rtol=1e-3)


def test_bias_free_layer_norm_is_refused():
    with pytest.raises(ValueError, match="scale invariant"):
        UNetConfig(bias=False, norm="layer")


def test_size_and_channel_errors():
    m = UNet(preset_config("tiny"))
    with pytest.raises(UserError, match="not divisible by 8"):
        m(torch.rand(1, 1, 30, 32))
    with pytest.raises(UserError, match="1-channel"):
        m(torch.rand(1, 3, 32, 32))


def test_bfcnn_import_matches_published_layout_and_is_homogeneous():
    m = load_model(need(BFCNN_GRAY))
    assert isinstance(m, BFCNN) and n_params(m) == 665_856 and not m.training
    y = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(m(3 * y), 3 * m(y), rtol=1e-4, atol=1e-5)
        # the published network predicts the noise: x_hat = y - f(y)
        residual = list(m.iter_blocks(y))[-1].output
        torch.testing.assert_close(m(y), y - residual)


def _to_lab_layout(model: UNet) -> dict[str, torch.Tensor]:
    """Our UNet's weights under the lab's key names (encoder.b.i, mid_block.i, decoder.b.i)."""
    out = {}
    levels = model.config.levels
    prefixes = {f"E{b + 1}": f"encoder.{b}" for b in range(levels)}
    prefixes["M"] = "mid_block"
    prefixes.update({f"D{b + 1}": f"decoder.{b}" for b in range(levels)})
    for name, prefix in prefixes.items():
        idx = 0
        for mod in model.blocks[name].modules():
            if isinstance(mod, nn.Conv2d):
                out[f"{prefix}.{idx}.weight"] = mod.weight.detach().clone()
                idx += 1
            elif hasattr(mod, "running_sd"):
                out[f"{prefix}.{idx}.gammas"] = mod.gain.detach().clone()
                out[f"{prefix}.{idx}.running_sd"] = mod.running_sd.clone()
                idx += 2  # the lab's Sequential: conv, BF_batchNorm, ReLU
    for b in range(levels):
        out[f"upsample.{b}.weight"] = model.up[f"D{b + 1}"].weight.detach().clone()
    return {f"module.{k}": v for k, v in out.items()}  # saved through DataParallel


def test_lab_unet_import_round_trip(tmp_path):
    ours = UNet(preset_config("tiny", bias=False, norm="batch", dec_convs=(3, 2, 4))).eval()
    with torch.no_grad():
        for mod in ours.modules():
            if hasattr(mod, "running_sd"):
                mod.running_sd.uniform_(0.5, 2)
    path = tmp_path / "lab_unet.pt"
    torch.save(_to_lab_layout(ours), path)
    imported = import_lab_checkpoint(path).eval()
    assert imported.config.dec_convs == (3, 2, 4) and imported.config.norm == "batch"
    y = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(imported(y), ours(y))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"conv_layers.0.weight": _Exploit(marker)}, f)
    with pytest.raises(UserError, match="refused"):
        load_model(path)
    assert not marker.exists()


def test_block_means_are_spatial_means_of_the_block_outputs():
    m = UNet(preset_config("tiny")).eval()
    y = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        means = m.block_means(y, stop_after="E2")
        blocks = {b.name: b for b in m.iter_blocks(y)}
    assert list(means) == ["E1", "E2"]
    torch.testing.assert_close(means["E2"][1], blocks["E2"].output.mean(dim=(2, 3)))
    torch.testing.assert_close(means["E1"][0], y.mean(dim=(2, 3)))
    assert means["E2"][1].shape == (2, 16) and (means["E2"][1] >= 0).all()  # after the ReLU


def test_residual_parametrization_outputs_y_plus_the_last_block():
    m = UNet(preset_config("tiny", bias=False, norm="batch", residual=True)).eval()
    y = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        last = list(m.iter_blocks(y))[-1].output
        torch.testing.assert_close(m(y), y + last)
        torch.testing.assert_close(m(2 * y), 2 * m(y), rtol=1e-4, atol=1e-6)


def test_colour_bfcnn_imports_and_denoises():
    from conftest import DATA

    m = load_model(need(DATA / "peers/bf_cnn/BSD300_color/noise_range_0to100/model.pt"))
    assert m.image_channels == 3
    g = torch.Generator().manual_seed(0)
    x = torch.full((1, 3, 48, 48), 0.5)
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    err_in = (y - x).pow(2).mean()
    assert (m.denoise(y) - x).pow(2).mean() < 0.1 * err_in  # a flat image is easy


@pytest.mark.parametrize("dim", [(1, 2, 3), (0, 2, 3)])
def test_float_var_is_the_biased_variance_in_float32(dim):
    from denoiserlens.models.norms import float_var

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 8, 5, 6, generator=g) * 3 + 100).to(torch.bfloat16)  # mean >> sd
    x = x.contiguous(memory_format=torch.channels_last)
    v = float_var(x, dim)
    assert v.dtype == torch.float32 and v.shape == x.float().var(dim=dim, keepdim=True).shape
    torch.testing.assert_close(v, x.double().var(dim=dim, keepdim=True, unbiased=False).float())


@pytest.mark.parametrize("kind, dims", [("layer", (1, 2, 3)), ("instance", (2, 3))])
@pytest.mark.parametrize("scale", [1e-4, 1e-3, 1.0, 30.0])
def test_per_sample_norms_are_the_authors_formula(kind, dims, scale):
    """x / (std + 1e-5) * gain (texture_model's ``normalization``), checked in float64, down to
    inputs whose variance (1e-8) is far below the epsilon: 1 / sqrt(var + eps) would scale those
    by 316 instead of normalizing them by 1e4."""
    from denoiserlens.models.norms import make_norm

    g = torch.Generator().manual_seed(0)
    norm = make_norm(kind, 6)
    x = torch.randn(3, 6, 5, 7, generator=g) * scale + 0.3 * scale
    sd = x.double().std(dim=dims, keepdim=True, unbiased=False)
    want = x.double() / (sd + 1e-5) * norm.gain.detach().double()
    torch.testing.assert_close(norm(x).double(), want, rtol=2e-6, atol=0)


def test_layer_norm_gradient_is_finite_on_a_constant_input():
    from denoiserlens.models.norms import make_norm

    norm = make_norm("layer", 4)
    x = torch.zeros(2, 4, 3, 3, requires_grad=True)
    norm(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(norm.gain.grad).all()


def _authors_unet_state(enc, mid, dec, widths, c, norm_keys, up_bias, seed=0):
    """A state dict in the layout of the authors' UNet_flex (texture_model/code/network.py),
    written from its layer description: Sequentials encoder.{b}, mid, upsample.{b}, decoder.{b};
    conv, norm, ReLU per layer (E1's first layer: conv, ReLU), biases on every conv and on the
    up-convolutions above the finest level; saved through DataParallel ("module." prefix)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(key, c_in, c_out):
        state[f"{key}.weight"] = (
            torch.randn(c_out, c_in, 3, 3, generator=g) * (2 / (9 * c_in)) ** 0.5
        )
        state[f"{key}.bias"] = 0.05 * torch.randn(c_out, generator=g)

    def norm(key, ch):
        state[f"{key}.gammas"] = 1 + 0.2 * torch.randn(1, ch, 1, 1, generator=g)
        if "running_sd" in norm_keys:
            state[f"{key}.running_sd"] = 0.5 + torch.rand(1, ch, 1, 1, generator=g)

    def layers(prefix, c_in, c_out, n, first_plain=False):
        i = 0
        for layer in range(n):
            conv(f"{prefix}.{i}", c_in if layer == 0 else c_out, c_out)
            if first_plain and layer == 0:  # conv, ReLU
                i += 2
                continue
            norm(f"{prefix}.{i + 1}", c_out)  # conv, norm, ReLU
            i += 3

    c_in = c
    for b, n in enumerate(enc):
        layers(f"encoder.{b}", c_in, widths[b], n, first_plain=b == 0)
        c_in = widths[b]
    layers("mid", widths[-2], widths[-1], mid)
    for b in range(len(enc)):
        state[f"upsample.{b}.weight"] = 0.1 * torch.randn(
            widths[b + 1], widths[b], 2, 2, generator=g
        )
        if up_bias and b > 0:
            state[f"upsample.{b}.bias"] = 0.05 * torch.randn(widths[b], generator=g)
        if b == 0:  # D1: n - 1 normalized layers, then the output conv
            layers("decoder.0", 2 * widths[0], widths[0], dec[0] - 1)
            conv(f"decoder.0.{3 * (dec[0] - 1)}", widths[0], c)
        else:
            layers(f"decoder.{b}", 2 * widths[b], widths[b], dec[b])
    return {f"module.{k}": v for k, v in state.items()}


def _authors_forward(state, x, levels, norm):
    """The authors' forward, written from their layer description with torch.nn.functional."""
    state = {k.removeprefix("module."): v for k, v in state.items()}

    def seq(prefix, h):
        idx = sorted({int(k.split(".")[-2]) for k in state if k.startswith(prefix + ".")})
        for j, i in enumerate(idx):
            key = f"{prefix}.{i}"
            if f"{key}.weight" in state:  # a conv; a ReLU follows unless a norm does
                h = F.conv2d(h, state[f"{key}.weight"], state.get(f"{key}.bias"), padding=1)
                output_conv = prefix == "decoder.0" and j == len(idx) - 1
                if f"{prefix}.{i + 1}.gammas" not in state and not output_conv:
                    h = F.relu(h)
            else:  # norm, then ReLU
                if norm == "batch":
                    sd = state[f"{key}.running_sd"]
                else:
                    dims = (1, 2, 3) if norm == "layer" else (2, 3)
                    sd = h.std(dim=dims, keepdim=True, unbiased=False) + 1e-5
                h = F.relu(h / sd * state[f"{key}.gammas"])
        return h

    skips, h = [], x
    for b in range(levels):
        h = seq(f"encoder.{b}", h)
        skips.append(h)
        h = F.avg_pool2d(h, 2)
    h = seq("mid", h)
    for b in reversed(range(levels)):
        h = F.conv_transpose2d(h, state[f"upsample.{b}.weight"], state.get(f"upsample.{b}.bias"), 2)
        h = seq(f"decoder.{b}", torch.cat([h, skips[b]], dim=1))
    return h


@pytest.mark.parametrize(
    "norm, up_bias", [("layer", True), ("instance", True), ("batch", False), ("layer", False)]
)
def test_authors_unet_flex_import_reproduces_their_forward(tmp_path, norm, up_bias):
    keys = ("gammas", "running_sd") if norm == "batch" else ("gammas",)
    state = _authors_unet_state((2, 1, 2), 2, (3, 2, 4), (8, 16, 24, 32), 1, keys, up_bias)
    path = tmp_path / "authors.pt"
    torch.save(state, path)
    model = load_model(path, norm=None if norm == "batch" else norm)
    cfg = model.config
    assert (cfg.norm, cfg.bias, cfg.out_bias, cfg.up_bias) == (norm, True, True, up_bias)
    assert (cfg.enc_convs, cfg.mid_convs, cfg.dec_convs) == ((2, 1, 2), 2, (3, 2, 4))
    y = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    want = _authors_forward(state, y, 3, norm)
    torch.testing.assert_close(model.denoise(y), want, rtol=1e-5, atol=1e-5)


def test_authors_unet_import_errors(tmp_path):
    state = _authors_unet_state((2, 1, 2), 2, (3, 2, 4), (8, 16, 24, 32), 1, ("gammas",), True)
    path = tmp_path / "authors.pt"
    torch.save(state, path)
    with pytest.raises(UserError, match="--norm layer.instance"):
        load_model(path)
    torch.save({**state, "module.extra.weight": torch.zeros(3)}, path)
    with pytest.raises(UserError, match="not used.*extra.weight"):
        load_model(path, norm="layer")
    odd = dict(state)
    odd["module.mid.1.running_mean"] = torch.zeros(1, 32, 1, 1)  # a torch BatchNorm's buffer
    torch.save(odd, path)
    with pytest.raises(UserError, match="unknown layer in block M"):
        load_model(path, norm="layer")
