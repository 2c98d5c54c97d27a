"""Grad-CAM / Grad-CAM++: trained tiny models must point at the informative region, in 1-D and 2-D.

Two tasks where the evidence is local and known: 32x32 noise images with a bright 6x6 square
(class 1) or without (class 0), and 3-channel 256-sample noise with a 24-sample oscillating burst
(class 1) or without. A trained model's CAM for class 1 must concentrate on the square / burst;
an untrained model (checked when these thresholds were set) gives inside/outside ratios of
about 1.9 at the median and above 2 on only half the images, so the thresholds below fail it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resattn.explain import grad_cam, overlay_image, plot_waveform_cam
from resattn.layers import conv_nd, norm_nd
from resattn.models import create_model
from resattn.models.base import Classifier

SQUARE, BURST = 6, 24


class TinyCNN(Classifier):
    """Three conv layers at strides 1, 2, 2: a 32x32 image keeps an 8x8 feature map (a ResNet's
    stride 32 would leave 1x1, nothing to localise)."""

    def __init__(self, dims: int = 2, in_chans: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        layers, chans = [], in_chans
        for width, stride in [(8, 1), (16, 2), (32, 2)]:
            layers += [conv_nd(dims, chans, width, 3, stride=stride), norm_nd(dims, width),
                       nn.ReLU()]
            chans = width
        self.trunk = nn.Sequential(*layers)
        self._init_head(dims, chans, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


def square_images(n: int, g: torch.Generator, size: int = 32):
    """(n, 1, size, size) noise; class 1 adds a bright SQUARE x SQUARE patch at a random place.
    Returns images, labels and the (n, size, size) patch masks."""
    x = 0.3 * torch.randn(n, 1, size, size, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(0, size - SQUARE + 1, (n, 2), generator=g)
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for i in torch.nonzero(y).flatten().tolist():
        r, c = pos[i].tolist()
        mask[i, r:r + SQUARE, c:c + SQUARE] = True
    x[:, 0][mask] += 1.5
    return x, y, mask


def burst_signals(n: int, g: torch.Generator, length: int = 256):
    """(n, 3, length) noise; class 1 adds an oscillating burst of BURST samples at a random time.
    Returns signals, labels and the (n, length) burst masks."""
    x = 0.3 * torch.randn(n, 3, length, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    start = torch.randint(0, length - BURST + 1, (n,), generator=g)
    mask = torch.zeros(n, length, dtype=torch.bool)
    wave = 1.5 * torch.sin(2 * torch.pi * torch.arange(BURST) / 6)
    for i in torch.nonzero(y).flatten().tolist():
        s = int(start[i])
        mask[i, s:s + BURST] = True
        x[i, :, s:s + BURST] += wave
    return x, y, mask


def train(model: nn.Module, make_batch, steps: int = 100, lr: float = 0.01) -> nn.Module:
    """Adam with a one-cycle schedule on fresh batches: converges in ~100 steps (seconds)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    model.train()
    for _ in range(steps):
        x, y, _ = make_batch(32, g)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def model_2d() -> nn.Module:
    torch.manual_seed(0)
    return train(TinyCNN(), square_images)


@pytest.fixture(scope="module")
def model_1d() -> nn.Module:
    torch.manual_seed(0)
    model = create_model("resnet18_1d", widths=(8, 16, 32, 64), stem_width=8, head="linear")
    return train(model, burst_signals)


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grow (n, *S) boolean masks by ``radius`` samples/pixels (the CAM is coarse)."""
    m = mask.float()[:, None]
    pool = F.max_pool1d if mask.dim() == 2 else F.max_pool2d
    return pool(m, 2 * radius + 1, 1, radius)[:, 0] > 0


def inside_outside_ratio(cam: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(n,) mean CAM inside the region over mean CAM outside it."""
    cam, region = cam.flatten(1), region.flatten(1)
    inside = (cam * region).sum(1) / region.sum(1)
    outside = (cam * ~region).sum(1) / (~region).sum(1)
    return inside / outside.clamp_min(1e-6)


CASES = [("model_2d", square_images, 3), ("model_1d", burst_signals, 16)]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize(("fixture", "make_batch", "radius"), CASES, ids=["2d", "1d"])
def test_cam_highlights_the_informative_region(request, fixture, make_batch, radius, method):
    model = request.getfixturevalue(fixture)
    x, y, mask = make_batch(64, torch.Generator().manual_seed(123))
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.9  # the model learned the task, so its CAM is worth testing
    pos = y == 1
    cam = grad_cam(model, x[pos], target=1, method=method)
    assert cam.shape == (int(pos.sum()), *x.shape[2:])
    ratio = inside_outside_ratio(cam, dilate(mask[pos], radius))
    assert (ratio > 2).float().mean().item() >= 0.9, ratio
    assert ratio.median().item() > 3, ratio


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_maps_in_unit_range_and_input_size(model_1d, method):
    x = torch.randn(3, 3, 200)  # a length the feature map does not divide
    cam = grad_cam(model_1d, x, method=method)
    assert cam.shape == (3, 200)
    assert cam.min() >= 0 and cam.max() <= 1
    assert torch.allclose(cam.flatten(1).max(1).values, torch.ones(3))  # each map reaches 1

    model_2d = create_model("resnet18", dims=2, num_classes=3, widths=(8, 16, 32, 64),
                            stem_width=8, in_chans=1)
    img = torch.randn(2, 1, 70, 50)
    cam = grad_cam(model_2d, img, method=method)
    assert cam.shape == (2, 70, 50)
    assert cam.min() >= 0 and cam.max() <= 1


def test_target_argument(model_2d):
    x, _, _ = square_images(8, torch.Generator().manual_seed(5))
    with torch.no_grad():
        pred = model_2d(x).argmax(1)
    # Default target is the predicted class, per sample.
    torch.testing.assert_close(grad_cam(model_2d, x), grad_cam(model_2d, x, target=pred))
    cam0, cam1 = grad_cam(model_2d, x, target=0), grad_cam(model_2d, x, target=1)
    assert not torch.allclose(cam0, cam1)
    # A per-sample list picks each sample's class.
    mixed = grad_cam(model_2d, x, target=[0, 1] * 4)
    torch.testing.assert_close(mixed[0::2], cam0[0::2])
    torch.testing.assert_close(mixed[1::2], cam1[1::2])
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model_2d, x, target=2)
    with pytest.raises(ValueError, match="entries"):
        grad_cam(model_2d, x, target=[0, 1])
    with pytest.raises(ValueError, match="unknown method"):
        grad_cam(model_2d, x, method="scorecam")


def test_model_state_restored_and_no_parameter_gradients():
    torch.manual_seed(0)
    model = create_model("resnet18_1d", widths=(8, 16, 32, 64), stem_width=8, drop_rate=0.5)
    x = torch.randn(2, 3, 128)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    for training in (True, False):
        model.train(training)
        cam = grad_cam(model, x, method="gradcam++")
        assert cam.shape == (2, 128)
        assert all(m.training == training for m in model.modules())
        assert all(p.grad is None for p in model.parameters())
        for k, v in model.state_dict().items():  # eval mode: BN running stats untouched
            torch.testing.assert_close(v, buffers[k], msg=k)
    # Deterministic in eval mode, even with dropout in the head.
    torch.testing.assert_close(grad_cam(model, x), grad_cam(model, x))


def test_all_zero_map_stays_zero():
    class Dead(TinyCNN):
        def forward_features(self, x):
            return torch.zeros(x.shape[0], 32, 8, 8) + 0 * x.sum()

    cam = grad_cam(Dead(), torch.randn(2, 1, 32, 32))
    assert cam.shape == (2, 32, 32) and torch.all(cam == 0)


def test_two_input_models_rejected():
    class TwoInputs(TinyCNN):
        num_inputs = 2

    with pytest.raises(ValueError, match="single-input"):
        grad_cam(TwoInputs(), torch.randn(1, 1, 32, 32))


def test_overlay_and_waveform_plots(tmp_path, model_2d, model_1d):
    x, _, _ = square_images(4, torch.Generator().manual_seed(9))
    cam = grad_cam(model_2d, x)
    for name, image in [("chw.png", x[0]), ("hw.png", x[0, 0].numpy()),
                        ("rgb.png", x[0].expand(3, -1, -1))]:
        path = overlay_image(image, cam[0], tmp_path / name, title="square")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000

    sig, _, _ = burst_signals(2, torch.Generator().manual_seed(9))
    wcam = grad_cam(model_1d, sig)
    path = plot_waveform_cam(sig[0], wcam[0], tmp_path / "wave.png", title="burst")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, no leftovers
    with pytest.raises(ValueError):
        plot_waveform_cam(sig[0], wcam[0, :100], tmp_path / "bad.png")
