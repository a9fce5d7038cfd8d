"""Tests of the procedural training data of the embedded prior (pipelines/embedded/data.py)."""
import math

import pytest
import torch

from pipelines.embedded.data import (HELDOUT_NEW_WORDS, KINDS, MOTION_KEYWORDS, MOTIONS, MotionClipDataset, Vocab,
                                     build_vocab, caption, caption_space, classify_motion, clip_generator, make_clip,
                                     measure_motion, measure_motion_from_frames, motion_from_caption, motion_points,
                                     random_sketch, tokenize)
from pipelines.motion import GlobalParams, apply_global
from pipelines.raster import rasterize
from pipelines.sketch import Sketch, make_style

DIRECTIONAL = MOTIONS[:8]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Modest CPU use (and the speed the data is designed for: one core per loader worker)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clips():
    """Four clips of every motion, 8 frames at 32 x 32."""
    return [make_clip(3, i, frames=8, size=32) for i in range(4 * len(MOTIONS))]


# ---------------------------------------------------------------------------------------------
# Determinism, shapes, drawings


def test_same_seed_same_clip_bit_identical():
    a, b = make_clip(7, 5, frames=8, size=32), make_clip(7, 5, frames=8, size=32)
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["points"], b["points"])
    assert a["caption"] == b["caption"] and a["motion"] == b["motion"]
    c = make_clip(7, 6, frames=8, size=32)
    d = make_clip(8, 5, frames=8, size=32)
    assert not torch.equal(a["frames"], d["frames"]) and c["motion"] != a["motion"]
    # The held-out caption of a clip goes with the very same frames.
    h = make_clip(7, 5, frames=8, size=32, split="heldout")
    assert torch.equal(h["frames"], a["frames"])
    # The building blocks are seeded too.
    s1, s2 = random_sketch(clip_generator(1, 2), 256), random_sketch(clip_generator(1, 2), 256)
    assert torch.equal(s1.points, s2.points) and torch.equal(s1.style.stroke_width, s2.style.stroke_width)
    m1 = motion_points(s1, "wave", 8, torch.Generator().manual_seed(3))
    m2 = motion_points(s2, "wave", 8, torch.Generator().manual_seed(3))
    assert torch.equal(m1, m2)
    assert caption("left", 11) == caption("left", 11)


def test_dataset_is_deterministic_per_index_and_collates():
    vocab = build_vocab()
    ds = MotionClipDataset(length=24, seed=2, frames=8, size=32, vocab=vocab, max_tokens=12)
    late = ds[13]  # access order must not matter
    first = [ds[i] for i in range(14)]
    assert torch.equal(first[13]["frames"], late["frames"]) and first[13]["caption"] == late["caption"]
    clip = make_clip(2, 13, frames=8, size=32)
    assert torch.equal(clip["frames"], late["frames"]) and late["label"] == MOTIONS.index(clip["motion"])
    assert torch.equal(late["tokens"], vocab.encode(late["caption"], 12))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["frames"].shape == (4, 8, 3, 32, 32) and batch["tokens"].shape == (4, 12)
    assert len(batch["caption"]) == 4 and batch["label"].tolist() == [0, 1, 2, 3]
    with pytest.raises(IndexError):
        ds[24]


@pytest.mark.parametrize("frames,size", [(8, 32), (16, 64)])
def test_shapes_and_ranges(frames, size):
    for i in range(len(MOTIONS)):
        clip = make_clip(0, i, frames=frames, size=size)
        f = clip["frames"]
        assert f.shape == (frames, 3, size, size) and f.dtype == torch.float32
        assert float(f.min()) >= 0.0 and float(f.max()) <= 1.0
        assert torch.equal(f[:, 0], f[:, 1]) and torch.equal(f[:, 1], f[:, 2])  # black on white
        assert float((f > 0.99).float().mean()) > 0.5  # mostly white background
        assert float(f.amin((1, 2, 3)).max()) < 0.4  # every frame has dark ink
        n = sum(clip["style"].points_per_path())
        assert clip["points"].shape == (frames, n, 2)
        assert clip["motion"] == MOTIONS[i] and clip["label"] == i


def test_stroke_counts_kinds_and_widths():
    counts, widths = [], []
    for i in range(80):
        sketch = random_sketch(clip_generator(4, i), 256, kind=KINDS[i % len(KINDS)])
        counts.append(sketch.num_paths)
        widths.append(float(sketch.style.stroke_width.mean()))
        assert 4 <= sketch.num_paths <= 24
        assert torch.isfinite(sketch.points).all()
        assert bool((sketch.style.stroke_width > 0).all()) and float(sketch.style.fill_opacity.max()) == 0.0
        lo, hi = sketch.points.amin(0), sketch.points.amax(0)
        assert float(lo.min()) >= 0 and float(hi.max()) <= 256
    assert min(counts) <= 6 and max(counts) >= 20  # the whole range is used
    assert max(widths) > 1.5 * min(widths)  # varied widths
    for kind in KINDS:  # every kind has closed and open paths, or the kind's own
        s = random_sketch(0, (300, 200), kind=kind, num_strokes=10)
        assert s.num_paths == 10 and (s.width, s.height) == (300, 200)
    assert any(random_sketch(i, 256, kind="closed").style.closed[0] for i in range(3))
    assert not any(any(random_sketch(i, 256, kind="open").style.closed) for i in range(3))
    with pytest.raises(ValueError):
        random_sketch(0, 256, kind="painting")


def test_clips_stay_in_the_canvas(clips):
    for clip in clips:
        pts, (w, h) = clip["points"], clip["canvas"]
        inside = (pts[..., 0] >= 0) & (pts[..., 0] <= w) & (pts[..., 1] >= 0) & (pts[..., 1] <= h)
        assert float(inside.float().mean()) >= 0.99, clip["motion"]
        f = clip["frames"]
        border = torch.cat([f[..., 0, :], f[..., -1, :], f[..., :, 0], f[..., :, -1]], -1)
        assert float((1 - border).sum()) <= 0.05 * float((1 - f).sum()), clip["motion"]


# ---------------------------------------------------------------------------------------------
# Motions: directions, magnitudes, screen conventions


def _bar_sketch(canvas=64):
    """One thick horizontal stroke through the centre, 32 px long."""
    c = canvas / 2
    pts = torch.tensor([[c - 16, c], [c - 5, c], [c + 5, c], [c + 16, c]])
    return Sketch(pts, make_style([1], [False], stroke_width=4.0), canvas, canvas)


def test_screen_conventions_from_a_rendering():
    sketch = _bar_sketch()
    # 45 deg clockwise on screen (about the centre): the right end goes down, the left end up.
    for motion, sign in (("clockwise", 1), ("counterclockwise", -1)):
        pts = motion_points(sketch, motion, 5, 0, speed=0.5, amplitude=(45 - 35) / (120 - 35), place=False)
        ink = 1 - rasterize(pts[-1], sketch.style, (64, 64))[0, ..., 0]
        down_right = float(ink[36:, 36:].sum() + ink[:28, :28].sum())
        up_right = float(ink[:28, 36:].sum() + ink[36:, :28].sum())
        assert (down_right - up_right) * sign > 20, motion
        m = measure_motion(pts, 64)
        assert m["rotation"] == pytest.approx(45.0 * sign, abs=1e-3) and classify_motion(m) == motion
        frames = rasterize(pts, sketch.style, (64, 64)).permute(0, 3, 1, 2)
        assert measure_motion_from_frames(frames)["rotation"] == pytest.approx(45.0 * sign, abs=3.0)
    # The same convention as pipelines.motion: a positive angle is clockwise.
    p = GlobalParams.identity(2)
    p.rotate = torch.tensor([0.0, math.radians(40.0)])
    assert measure_motion(apply_global(sketch.points, p), 64)["rotation"] == pytest.approx(40.0, abs=1e-3)
    # "up" decreases y: the ink moves towards the top rows.
    up = motion_points(sketch, "up", 4, 0, amplitude=1.0, place=False)
    frames = rasterize(up, sketch.style, (64, 64)).permute(0, 3, 1, 2)
    ink = 1 - frames[:, 0]
    rows = torch.arange(64.0)[:, None]
    cy = (ink * rows).sum((1, 2)) / ink.sum((1, 2))
    assert float(cy[-1] - cy[0]) == pytest.approx(-0.35 * 64, abs=1.0)
    assert measure_motion_from_frames(frames)["dy"] == pytest.approx(-0.35, abs=0.02)


def test_each_motion_from_points(clips):
    for clip in clips:
        m, motion = measure_motion(clip["points"], clip["canvas"]), clip["motion"]
        assert classify_motion(m) == motion, (motion, m)
        if motion in ("left", "right", "up", "down"):
            assert 0.15 <= max(abs(m["dx"]), abs(m["dy"])) <= 0.36
        elif motion in ("clockwise", "counterclockwise"):
            assert 30 <= abs(m["rotation"]) <= 120
        elif motion in ("grow", "shrink"):
            assert 1.3 <= max(m["scale"], 1 / m["scale"]) <= 1.8
        elif motion in ("sway", "bounce", "wave"):  # whole cycles: back where it started
            assert torch.allclose(clip["points"][0], clip["points"][-1], atol=1e-3)
        elif motion == "still":
            assert max(abs(m["dx"]), abs(m["dy"]), m["x_range"], m["y_range"]) < 0.01 and m["rotation_range"] < 2


def test_each_motion_from_frames(clips):
    wrong = []
    for clip in clips:
        got = classify_motion(measure_motion_from_frames(clip["frames"]))
        if got != clip["motion"]:
            wrong.append((clip["motion"], got))
    directional = [w for w in wrong if w[0] in DIRECTIONAL]
    assert not directional, directional
    assert len(wrong) <= 1, wrong


def test_frames_measure_at_64_and_with_noise():
    gen = torch.Generator().manual_seed(0)
    for i in range(len(DIRECTIONAL)):
        clip = make_clip(5, i, frames=16, size=64)
        assert classify_motion(measure_motion_from_frames(clip["frames"])) == clip["motion"]
        noisy = (0.9 * clip["frames"] + 0.05 * torch.randn(clip["frames"].shape, generator=gen)).clamp(0, 1)
        assert classify_motion(measure_motion_from_frames(noisy)) == clip["motion"]
    # Channels-last input is accepted too.
    clip = make_clip(5, 0, frames=8, size=32)
    assert classify_motion(measure_motion_from_frames(clip["frames"].permute(0, 2, 3, 1))) == "left"


def test_speed_and_amplitude():
    sketch = random_sketch(1, 256)
    slow = motion_points(sketch, "right", 8, 0, speed=0.0, amplitude=0.0, place=False)
    fast = motion_points(sketch, "right", 8, 0, speed=1.0, amplitude=1.0, place=False)
    d = lambda p: (p.mean(1)[:, 0] - p.mean(1)[0, 0]) / 256  # noqa: E731
    assert float(d(slow)[-1]) == pytest.approx(0.18, abs=1e-4) and float(d(fast)[-1]) == pytest.approx(0.35, abs=1e-4)
    assert float(d(slow)[1]) < 0.1 * 0.18 and float(d(fast)[1]) > 0.25 * 0.35  # accelerating vs decelerating
    # Periodic motions: speed sets the number of cycles (17 frames: up to 2, landings on frames 0, 8, 16).
    two = motion_points(sketch, "bounce", 17, 0, speed=1.0, place=False)
    one = motion_points(sketch, "bounce", 17, 0, speed=0.0, place=False)
    grounded = lambda p: ((p.mean(1)[:, 1] - p.mean(1)[0, 1]).abs() < 1e-3).nonzero()[:, 0].tolist()  # noqa: E731
    assert grounded(one) == [0, 16] and grounded(two) == [0, 8, 16]
    with pytest.raises(ValueError):
        motion_points(sketch, "teleport", 8, 0)
    with pytest.raises(ValueError):
        motion_points(sketch, "left", 8, 0, speed=2.0)


# ---------------------------------------------------------------------------------------------
# Captions and vocabulary


def test_captions_name_their_motion():
    for motion in MOTIONS:
        for split in ("train", "heldout"):
            for seed in range(15):
                text = caption(motion, torch.Generator().manual_seed(seed), split)
                words = set(tokenize(text))
                assert words & MOTION_KEYWORDS[motion], (motion, text)
                assert motion_from_caption(text) == motion, (motion, text)
    assert "a bird " in caption("left", 0, subject="a bird")
    assert any(" flies " in caption("left", s, subject="a bird") + " " for s in range(40))
    assert motion_from_caption("A kite, floating upward!") == "up"
    assert motion_from_caption("hello there") is None


def test_every_caption_parses_to_its_motion():
    for motion in MOTIONS:
        for split in ("train", "heldout"):
            for text in caption_space(split, [motion]):
                assert motion_from_caption(text) == motion, (motion, text)


def test_heldout_captions_differ_from_train_but_reuse_its_words():
    train = {" ".join(tokenize(t)) for t in caption_space("train")}
    heldout = caption_space("heldout")
    assert not train & {" ".join(tokenize(t)) for t in heldout}
    for motion in MOTIONS:
        for seed in range(10):
            text = caption(motion, seed, "heldout")
            assert " ".join(tokenize(text)) not in train, text
        # New combinations of the words this motion was trained with; only function words are new.
        train_words = {w for t in caption_space("train", [motion]) for w in tokenize(t)}
        new = {w for t in caption_space("heldout", [motion]) for w in tokenize(t)} - train_words
        assert new <= HELDOUT_NEW_WORDS, (motion, new)


def test_vocab_covers_train_and_heldout_content_words():
    vocab = build_vocab()
    train_words = {w for t in caption_space("train") for w in tokenize(t)}
    assert all(w in vocab for w in train_words) and len(vocab) == len(train_words) + 4
    oov = {w for t in caption_space("heldout") for w in vocab.unknown(t)}
    print(f"\nvocab: {len(vocab)} ids; held-out words not in vocab: {sorted(oov)}")
    assert oov == set(HELDOUT_NEW_WORDS)  # exactly the documented new function words


def test_tokenize_and_vocab_encoding():
    assert tokenize("The Drawing spins Counter-Clockwise!") == ["the", "drawing", "spins", "counterclockwise"]
    vocab = build_vocab(["a bird flies left", "A bird, flying."])
    assert vocab.itos[:4] == list(Vocab.SPECIALS) and vocab.itos[4:] == sorted(["a", "bird", "flies", "left", "flying"])
    ids = vocab.encode("a bird flies right", length=6)
    assert ids.tolist()[-3:] == [Vocab.UNK, Vocab.PAD, Vocab.PAD] and ids.dtype == torch.long
    assert vocab.decode(vocab.encode("A bird flies left.", bos_eos=True)) == "<bos> a bird flies left <eos>"
    assert vocab.encode("a bird flies left", length=2).tolist() == [vocab.stoi["a"], vocab.stoi["bird"]]
    again = Vocab.from_list(vocab.to_list())
    assert again.itos == vocab.itos and again.stoi == vocab.stoi
    with pytest.raises(ValueError):
        caption("left", 0, split="test")
