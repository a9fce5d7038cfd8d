"""DynamiCrafter's CLIP preprocessing and start-frame fitting (pipelines/lvdm/clip_context.py)."""
import pytest
import torch

from pipelines.lvdm.clip_context import (
    CLIP_MEAN,
    CLIP_STD,
    fit_frames,
    grey_like,
    official_clip_pixels,
)


def test_grey_unconditional_image_is_mid_grey_after_preprocessing():
    frames = torch.rand(2, 3, 40, 64) * 2 - 1
    grey = official_clip_pixels(grey_like(frames))
    assert grey.shape == (2, 3, 224, 224)
    want = (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(grey, want.view(1, 3, 1, 1).expand_as(grey), atol=1e-6, rtol=0)
    black = official_clip_pixels(-torch.ones_like(frames))  # black is not what the official code feeds
    assert (black - grey).abs().min() > 1.0


def test_official_resize_is_kornias_antialiased_bicubic_not_torchs():
    import kornia

    g = torch.Generator().manual_seed(0)
    frames = torch.rand(1, 3, 320, 512, generator=g) * 2 - 1
    ours = official_clip_pixels(frames)
    ref = kornia.geometry.resize(frames, (224, 224), interpolation="bicubic", align_corners=True, antialias=True)
    ref = ((ref + 1) / 2 - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(ours, ref)
    plain = torch.nn.functional.interpolate(frames, (224, 224), mode="bicubic", antialias=True)
    plain = ((plain + 1) / 2 - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert (ours - plain).abs().max() > 1e-3  # the two antialias filters really differ on noise


@pytest.mark.parametrize("mode", ["center crop", "stretch", "pad"])
def test_fit_frames_gives_the_video_size(mode):
    img = torch.rand(1, 3, 300, 300)
    out = fit_frames(img, 320, 512, mode)
    assert out.shape == (1, 3, 320, 512)
    if mode == "pad":  # 300x300 fits as 320x320 in the middle, grey either side
        assert torch.all(out[:, :, :, :90] == 0.5) and torch.all(out[:, :, :, -90:] == 0.5)
    if mode == "center crop":  # scaled to 512x512 then the middle rows kept: no padding anywhere
        assert out.std() > 0.2


def test_fit_frames_center_crop_keeps_the_middle():
    img = torch.zeros(1, 3, 100, 200)
    img[:, :, :, 50:150] = 1.0
    out = fit_frames(img, 100, 100, "center crop")
    assert torch.allclose(out, torch.ones_like(out), atol=1e-3)
    with pytest.raises(ValueError, match="unknown fit mode"):
        fit_frames(img, 10, 10, "zoom")
