"""Any network as a denoiser (issue 20, item 4): blocks tapped by forward hooks on named
submodules, the forward pass stopped after the last block asked for."""

import numpy as np
import pytest
import torch
from torch import nn

from denoiserlens.data import disks
from denoiserlens.errors import UserError
from denoiserlens.models import TappedModel, UNet, at_noise_level, build_model, preset_config
from denoiserlens.represent import phi
from denoiserlens.represent.store import RepresentConfig, represent


def _unet_and_tapped():
    torch.manual_seed(0)
    unet = UNet(preset_config("tiny")).eval()
    tapped = TappedModel(
        unet,
        {n: f"blocks.{n}" for n in unet.block_names},
        image_channels=1,
        size_multiple=unet.size_multiple,
    ).eval()
    return unet, tapped


def _count_calls(modules) -> list[int]:
    counts = [0]

    def count(*_):
        counts[0] += 1

    for m in modules:
        m.register_forward_pre_hook(count)
    return counts


def test_tapped_unet_gives_exactly_its_own_blocks_phi_and_output():
    unet, tapped = _unet_and_tapped()
    y = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert tapped.block_names == unet.block_names and tapped.middle_block == "M"
    ours, theirs = unet.blocks_until(y, "M"), tapped.blocks_until(y, "M")
    assert list(ours) == list(theirs) == ["E1", "E2", "E3", "M"]
    for name in ours:
        assert torch.equal(ours[name].input, theirs[name].input)
        assert torch.equal(ours[name].output, theirs[name].output)
    assert torch.equal(phi(unet, y, 0.1, n_noise=3), phi(tapped, y, 0.1, n_noise=3))
    assert torch.equal(unet(y), tapped(y))
    every = list(tapped.iter_blocks(y))
    assert [b.name for b in every] == unet.block_names
    assert torch.equal(every[-1].output, unet(y))  # the last block's output is the output


def test_only_phi_never_runs_the_decoder():
    unet, tapped = _unet_and_tapped()
    decoder = [unet.blocks[n] for n in unet.block_names if n.startswith("D")] + list(
        unet.up.values()
    )
    calls = _count_calls(decoder)
    y = torch.rand(2, 1, 16, 16)
    phi(tapped, y, 0.1, n_noise=2)
    assert calls[0] == 0
    tapped(y)  # the whole forward pass runs them: the counter works
    assert calls[0] == len(decoder)


def test_represent_store_of_a_tapped_unet_equals_the_unets(tmp_path):
    unet, tapped = _unet_and_tapped()
    images = disks(6, 16, seed=3)
    cfg = RepresentConfig(sigmas=(0.1, 0.2), n_noise=2, blocks=("E2", "M"), batch_size=4)
    a = represent(unet, images, tmp_path / "a", cfg)
    b = represent(tapped, images, tmp_path / "b", cfg)
    assert np.array_equal(a.phi(), b.phi()) and np.array_equal(a.array("E2"), b.array("E2"))
    assert b.phi_key == "M" and b.meta["model"]["arch"]["arch"] == "tapped"


class NoiseConditionalNet(nn.Module):
    """A diffusion-style network, model(x, t) -> an object with .sample (the predicted noise),
    with names of its own and a time embedding that scales the middle features."""

    class Output:
        def __init__(self, sample: torch.Tensor) -> None:
            self.sample = sample

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(1, 8, 3, padding=1)
        self.down = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
        self.mid = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1))
        self.conv_out = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> "NoiseConditionalNet.Output":
        h = self.mid(self.down(self.conv_in(x)))
        h = h * (1 + t.float().view(-1, 1, 1, 1) / 100)
        return self.Output(self.conv_out(self.up(h)))


def test_a_noise_conditional_network_at_a_fixed_level():
    torch.manual_seed(0)
    net = NoiseConditionalNet().eval()
    model = TappedModel(
        net, ["down", "mid", "up"], call=at_noise_level(40, "epsilon", sigma=0.2), size_multiple=2
    ).eval()
    y = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    assert model.middle_block == "mid"
    with torch.no_grad():
        eps = net(y, torch.full((2,), 40)).sample
        assert torch.allclose(model(y), y - 0.2 * eps)  # x_hat from the predicted noise
        # phi: spatial means of the tapped middle module's output, noise-averaged
        expected = net.mid(net.down(net.conv_in(y))).mean(dim=(2, 3))
        assert torch.allclose(phi(model, y, 0.0), expected)
    calls = _count_calls([net.up, net.conv_out])
    phi(model, y, 0.1, n_noise=2)
    assert calls[0] == 0  # stopped after "mid": neither the up path nor the output layer ran


def test_tapped_model_errors():
    net = NoiseConditionalNet()
    with pytest.raises(UserError, match="no submodule 'midd'.*did you mean mid"):
        TappedModel(net, ["down", "midd"])
    with pytest.raises(UserError, match="middle block 'conv_in' is not one of the taps"):
        TappedModel(net, ["down", "mid"], middle="conv_in")
    model = TappedModel(
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 1, 1)), ["0", "1"]
    )
    with pytest.raises(UserError, match="unknown block 'M'"):
        model.blocks_until(torch.zeros(1, 1, 4, 4), "M")
    with pytest.raises(UserError, match="cannot rebuild"):
        build_model(model.arch_config())
    with pytest.raises(ValueError, match="needs sigma"):
        at_noise_level(10, "epsilon")


def test_tapped_phi_is_differentiable_for_guidance_and_eq4():
    from denoiserlens.sampling.distance import phi_jacobian
    from denoiserlens.sampling.reconstruct import middle_means

    unet, tapped = _unet_and_tapped()
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    ours = phi_jacobian(middle_means(unet), x)  # torch.func through the early-stopped pass
    assert torch.equal(ours, phi_jacobian(middle_means(tapped), x)) and ours.abs().sum() > 0


def test_the_docs_example_runs_as_printed():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "any-model.md").read_text()
    code = text.split("```python\n")[1].split("```")[0]
    lines = []
    exec(compile(code, "any-model.md", "exec"), {"print": lambda *a: lines.append(a)})
    assert lines == [(torch.Size([8, 32]),)]


def test_represent_takes_float_tensors_unquantized_and_torch_datasets(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    unet, _ = _unet_and_tapped()
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(5))  # not k / 255
    labels = torch.tensor([0, 1, 0, 1, 1])
    cfg = RepresentConfig(sigmas=(0.1,), n_noise=2, batch_size=2)
    store = represent(unet, x, tmp_path / "t", cfg)
    # the floats as given: the store's phi is phi of the tensor itself, draws seeded by row
    assert np.allclose(store.phi(), phi(unet, x, 0.1, n_noise=2).numpy(), atol=1e-6)
    quantized = represent(unet, (x * 255).round().to(torch.uint8), tmp_path / "q", cfg)
    assert not np.allclose(store.phi(), quantized.phi(), atol=1e-6)
    # a Dataset of (image, label) pairs and a DataLoader of batches give the same store
    ds = TensorDataset(x, labels)
    by_dataset = represent(unet, ds, tmp_path / "d", cfg)
    by_loader = represent(unet, DataLoader(ds, batch_size=2), tmp_path / "l", cfg)
    for s in (by_dataset, by_loader):
        assert np.array_equal(s.phi(), store.phi())
        assert np.array_equal(np.load(s.path / "labels.npy"), labels.numpy())
    with pytest.raises(UserError, match=r"in \[0, 1\].*rescale"):
        represent(unet, 2 * x - 1, tmp_path / "bad", cfg)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(UserError, match="does not record how its images were read"):
        store.images()  # a tensor cannot be reopened from disk
