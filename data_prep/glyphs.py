"""Glyphs: an Omniglot-like few-shot image data set drawn from the fonts matplotlib ships; nothing is downloaded.

    python -m data_prep.glyphs [--out data/glyphs] [--seed 0] [--instances 20] [--size 28 (8 to 128)] \
        [--evaluation-fraction 0.4] [--max-classes-per-alphabet 0]

A class is a Unicode character, an alphabet a script or symbol block (ALPHABETS). A character is used when at
least two of the 16 FACES (DejaVu Sans, Serif, Sans Mono and STIX General, each regular, bold, italic, bold
italic) draw it, and when in its default face (the first that has it) it looks like no character kept before
it (see LOOK): Latin A, Greek Alpha and Cyrillic A make one class, so no evaluation class copies a background
one. Instance i of a class takes one of its faces (cycling through them in a seeded order), a random affine
distortion (rotation, shear, anisotropic scale, shift) and a random stroke width, drawn at 4x and
area-averaged: uint8 (N, S, S, 1), ink bright on black, the glyph centred and filling most of the frame.

Alphabets are shuffled by --seed and dealt to the evaluation set until it holds --evaluation-fraction of the
classes. The "train" split holds the background alphabets (meta-training, self-supervised pretraining), the
"test" split the evaluation alphabets. Labels of both index one class list ("<alphabet>/U+XXXX");
<out>/alphabets.json gives each alphabet's split and class indices. Writes the format of
seqcpc/image/store.py; the same options write byte-identical arrays, and a second run does nothing.

The defaults draw 28 alphabets, 1293 classes of 20 instances of 28x28x1: train 17 alphabets, 761 classes,
15220 images; test 11 alphabets, 532 classes, 10640 images; in about 15 s on 2 busy CPU cores. As a yardstick
of difficulty it logs nearest-neighbour accuracy on raw pixels over the test split: 0.57 in 5-way and 0.36 in
20-way 1-shot episodes with the defaults.
Shapes: N images, S the side of an image, U = UPSAMPLE * S the side they are drawn at.
"""
import argparse
import json
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from matplotlib import ft2font

from seqcpc.argtypes import count, fraction, positive
from seqcpc.errors import DataError, report_errors
from seqcpc.eval.probes import prototypical_episodes
from seqcpc.files import atomic_write_text, fingerprint
from seqcpc.image.store import (StoreResult, begin_dataset, claim_store, content_warnings, up_to_date,
                                write_dataset)

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
# the faces whose character maps are Unicode (the cm* fonts use TeX encodings, STIXNonUni private code points,
# STIXSiz* and *Display only big variants); the first face that has a character is its default face
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
         "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
         "DejaVuSansMono-BoldOblique.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
         "STIXGeneralBolIta.ttf")
# (name, inclusive code point ranges), each with at least 10 classes (Lisu, mostly turned Latin letters, has 9);
# of two characters that look alike the earlier one is kept
ALPHABETS = (
    ("Latin", ((0x41, 0x5A), (0x61, 0x7A), (0x30, 0x39))),
    ("Latin extended", ((0x180, 0x1BF),)),
    ("IPA", ((0x250, 0x2AF),)),
    ("Greek", ((0x370, 0x3FF),)),
    ("Cyrillic", ((0x400, 0x45F),)),
    ("Old Cyrillic", ((0x460, 0x481),)),
    ("Armenian", ((0x531, 0x58F),)),
    ("Hebrew", ((0x5D0, 0x5F4),)),
    ("Arabic", ((0x620, 0x64A), (0x660, 0x669))),
    ("NKo", ((0x7C0, 0x7FF),)),
    ("Lao", ((0xE80, 0xEFF),)),
    ("Georgian Asomtavruli", ((0x10A0, 0x10CF),)),
    ("Georgian Mkhedruli", ((0x10D0, 0x10FF),)),
    ("Canadian syllabics", ((0x1400, 0x143F),)),
    ("Ogham", ((0x1680, 0x169F),)),
    ("Tifinagh", ((0x2D30, 0x2D7F),)),
    ("Old Italic", ((0x10300, 0x1032F),)),
    ("Medieval Latin", ((0xA720, 0xA77F),)),
    ("Mathematical script", ((0x1D49C, 0x1D4CF),)),
    ("Double-struck", ((0x1D538, 0x1D56B),)),
    ("Letterlike symbols", ((0x2100, 0x214F),)),
    ("Arrows", ((0x2190, 0x21CF),)),
    ("Mathematical operators", ((0x2200, 0x223F),)),
    ("Technical symbols", ((0x2300, 0x233F),)),
    ("Geometric shapes", ((0x25A0, 0x25FF),)),
    ("Miscellaneous symbols", ((0x2600, 0x263F),)),
    ("Dingbats", ((0x2700, 0x273F),)),
    ("Yijing hexagrams", ((0x4DC0, 0x4DFF),)),
)
# letters, digits and symbols; not marks, modifiers (dots and ticks that look alike once enlarged), punctuation
CATEGORIES = ("Lu", "Ll", "Lt", "Lo", "Nd", "Nl", "Sm", "Sc", "So")
EM = 128  # pixels per em of the master renderings
MIN_SIZE, MAX_SIZE = 8, EM  # sides of the images written
INK, MIN_INK = 0.1, 20  # a rendering needs MIN_INK pixels above INK to count as drawn
UPSAMPLE = 4  # instances are drawn at UPSAMPLE times the size, then area-averaged
FILL = 0.72  # the glyph's longer side as a share of the frame, before the distortion
ROTATE, SHEAR, SCALE, SHIFT = 12.0, 0.15, (0.8, 1.1), 0.06  # degrees, tangent, factor, share of the frame
ASPECT = SCALE[1] / SCALE[0]  # how far the distortion can stretch one axis against the other
STROKE_STEPS = (-1, 0, 1, 2)  # 3x3 erosions (< 0) or dilations (> 0) at the drawing size
CHUNK = 4  # classes distorted at a time: small arrays stay in the cache
# Two glyphs look alike when their aspect ratios are within ASPECT (the distortion stretches that much) and, each
# stretched to a LOOK x LOOK bitmap, at most LOOK_SLACK ink pixels of either lie over a pixel away from the
# other's ink (a stroke weight or a shift of one pixel) and they differ in at most LOOK_SHARE of their ink
# (a filled shape is not its outline)
LOOK, LOOK_SLACK, LOOK_SHARE = 20, 2, 1 / 3
# matplotlib < 3.10 names load flags as module constants
NO_HINTING = ft2font.LoadFlags.NO_HINTING if hasattr(ft2font, "LoadFlags") else ft2font.LOAD_NO_HINTING


@dataclass
class Glyph:
    alphabet: str
    code: int  # Unicode code point
    faces: list[int]  # indices into FACES of the faces that draw it, the default face first


class Fonts:
    """The faces of FACES, each with its character map, drawing one character at a time."""

    def __init__(self):
        missing = [name for name in FACES if not (FONT_DIR / name).is_file()]
        if missing:
            raise DataError(f"matplotlib's font folder {FONT_DIR} lacks {', '.join(missing)}")
        self.paths = [FONT_DIR / name for name in FACES]
        self.fonts = [ft2font.FT2Font(str(path)) for path in self.paths]
        for font in self.fonts:
            font.set_size(EM, 72)  # 72 dpi: one point is one pixel
        self.charmaps = [set(font.get_charmap()) for font in self.fonts]

    def covering(self, code: int) -> list[int]:
        return [i for i, charmap in enumerate(self.charmaps) if code in charmap]

    def draw(self, face: int, code: int) -> np.ndarray | None:
        """Ink coverage in [0, 1], cropped to the ink, float32 (h, w); None when (almost) nothing is drawn."""
        font = self.fonts[face]
        font.set_text(chr(code), flags=NO_HINTING)
        font.draw_glyphs_to_bitmap(antialiased=True)
        ink = np.asarray(font.get_image(), dtype=np.float32) / 255
        if (ink > INK).sum() < MIN_INK:
            return None
        rows, cols = np.flatnonzero(ink.max(1) > INK), np.flatnonzero(ink.max(0) > INK)
        return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def fit(ink: np.ndarray, side: int, fill: float) -> torch.Tensor:
    """The glyph scaled so that its longer side spans `fill` of a side x side frame, centred: (side, side)."""
    scale = fill * side / max(ink.shape)
    h, w = (max(1, round(n * scale)) for n in ink.shape)
    scaled = F.interpolate(torch.from_numpy(ink)[None, None], size=(h, w), mode="bilinear", antialias=True)
    frame = torch.zeros(side, side)
    top, left = (side - h) // 2, (side - w) // 2
    frame[top:top + h, left:left + w] = scaled[0, 0].clamp(0, 1)
    return frame


def dilate(x: torch.Tensor) -> torch.Tensor:
    """The maximum over each 3x3 window, the frame padded with zeros: (N, 1, H, W)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


class Looks:
    """The low-resolution looks of the glyphs kept so far, to refuse visual duplicates (see LOOK)."""

    def __init__(self):
        self.ink = self.near = np.zeros((0, LOOK * LOOK), dtype=bool)
        self.aspect = np.zeros(0)  # log(height / width)

    def add(self, ink: np.ndarray) -> bool:
        """Keep the look of the glyph `ink` (h, w) unless one kept looks alike; True when kept."""
        stretched = F.interpolate(torch.from_numpy(ink)[None, None], size=(LOOK, LOOK), mode="bilinear",
                                  antialias=True)  # (1, 1, LOOK, LOOK)
        bits = stretched > 0.3
        near = dilate(bits.float()) > 0  # within one pixel of the ink
        bits, near = bits.flatten().numpy(), near.flatten().numpy()
        aspect = np.log(ink.shape[0] / ink.shape[1])
        strays = (bits & ~self.near).sum(1) + (self.ink & ~near).sum(1)
        shared = (bits != self.ink).sum(1) <= LOOK_SHARE * (bits | self.ink).sum(1)
        if np.any((np.abs(self.aspect - aspect) <= np.log(ASPECT)) & (strays <= LOOK_SLACK) & shared):
            return False
        self.ink, self.near = np.vstack([self.ink, bits]), np.vstack([self.near, near])
        self.aspect = np.append(self.aspect, aspect)
        return True


def choose_glyphs(fonts: Fonts, alphabets, max_per_alphabet: int) -> list[Glyph]:
    """The characters of `alphabets` (as ALPHABETS) that at least two faces draw, less those that look like a
    character kept before them (in their default faces); at most max_per_alphabet of each (0: all)."""
    glyphs, looks = [], Looks()
    for alphabet, ranges in alphabets:
        count = 0
        codes = [c for first, last in ranges for c in range(first, last + 1)
                 if unicodedata.category(chr(c)) in CATEGORIES]
        for code in codes:
            if count == max_per_alphabet > 0:
                break
            inks = {face: fonts.draw(face, code) for face in fonts.covering(code)}
            faces = [face for face, ink in inks.items() if ink is not None]
            if len(faces) >= 2 and looks.add(inks[faces[0]]):
                glyphs.append(Glyph(alphabet, code, faces))
                count += 1
    return glyphs


def random_affines(rng: np.random.Generator, n: int) -> torch.Tensor:
    """n random distortions as affine_grid thetas (n, 2, 3): output coordinates -> input coordinates."""
    angle = np.deg2rad(rng.uniform(-ROTATE, ROTATE, n))
    shear = rng.uniform(-SHEAR, SHEAR, n)
    sx, sy = rng.uniform(*SCALE, (2, n))
    shift = rng.uniform(-SHIFT, SHIFT, (n, 2, 1)) * 2  # the frame spans [-1, 1]
    cos, sin, zero, one = np.cos(angle), np.sin(angle), np.zeros(n), np.ones(n)
    rotate = rearrange(np.stack([cos, -sin, sin, cos]), "(i j) n -> n i j", i=2)
    shear = rearrange(np.stack([one, shear, zero, one]), "(i j) n -> n i j", i=2)
    scale = rearrange(np.stack([sx, zero, zero, sy]), "(i j) n -> n i j", i=2)
    forward = rotate @ shear @ scale  # (n, 2, 2): glyph -> image
    inverse = np.linalg.inv(forward)
    return torch.from_numpy(np.concatenate([inverse, -inverse @ shift], axis=2)).float()  # (n, 2, 3)


def sampling_grid(theta: torch.Tensor, side: int) -> torch.Tensor:
    """affine_grid(theta, (N, 1, U, U), align_corners=False) as one matrix product, several times faster."""
    centres = (torch.arange(side) * 2 + 1) / side - 1  # pixel centres in [-1, 1]
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    points = torch.stack([x.flatten(), y.flatten(), torch.ones(side * side)], dim=1)  # (U * U, 3), x first
    grid = torch.einsum("pk,nik->npi", points, theta)  # (N, U * U, 2)
    return rearrange(grid, "n (h w) i -> n h w i", h=side)


def change_stroke(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Each image (N, 1, U, U) dilated (steps > 0) or eroded (steps < 0) |steps| times by a 3x3 window, in
    place; erosion treats the outside of the frame as ink, so it thins strokes only."""
    for k in range(1, int(steps.abs().max()) + 1):
        thicker, thinner = steps >= k, steps <= -k
        x[thicker] = dilate(x[thicker])
        x[thinner] = 1 - dilate(1 - x[thinner])
    return x


def draw_instances(fonts: Fonts, glyph: Glyph, instances: int, side: int, rng: np.random.Generator) -> torch.Tensor:
    """The undistorted frames of one class's instances, (instances, U, U): instance i takes the i-th face of a
    random order of the glyph's faces, cycling."""
    order = rng.permutation(glyph.faces)
    frames = {face: fit(fonts.draw(face, glyph.code), side, FILL) for face in order[:instances]}
    return torch.stack([frames[order[i % len(order)]] for i in range(instances)])


def draw_classes(fonts: Fonts, glyphs: list[Glyph], instances: int, size: int, seed: int) -> np.ndarray:
    """uint8 (len(glyphs) * instances, S, S, 1), class-major."""
    side, out = size * UPSAMPLE, []
    for start in range(0, len(glyphs), CHUNK):
        frames, thetas, steps = [], [], []
        for glyph in glyphs[start:start + CHUNK]:
            # drawn from (seed, code point) only: a class looks the same whatever else is drawn
            rng = np.random.default_rng([seed, glyph.code])
            frames.append(draw_instances(fonts, glyph, instances, side, rng))
            thetas.append(random_affines(rng, instances))
            steps.append(torch.from_numpy(rng.choice(STROKE_STEPS, instances)))
        x = torch.cat(frames)[:, None]  # (N, 1, U, U)
        grid = sampling_grid(torch.cat(thetas), side)  # (N, U, U, 2)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = F.avg_pool2d(change_stroke(x, torch.cat(steps)), UPSAMPLE)  # (N, 1, S, S)
        out.append((x.clamp(0, 1) * 255).round().to(torch.uint8))
    return rearrange(torch.cat(out), "n 1 h w -> n h w 1").numpy()


def split_alphabets(glyphs: list[Glyph], fraction: float, seed: int) -> set[str]:
    """The evaluation alphabets: a seeded shuffle dealt out until they hold `fraction` of the classes (at least
    one alphabet, and one left for the background)."""
    names = list(dict.fromkeys(g.alphabet for g in glyphs))
    sizes = {name: sum(g.alphabet == name for g in glyphs) for name in names}
    evaluation, taken = set(), 0
    for i in np.random.default_rng(seed).permutation(len(names))[:-1]:
        if taken >= fraction * len(glyphs):
            break
        evaluation.add(names[i])
        taken += sizes[names[i]]
    return evaluation


def pixel_nearest_neighbour(images: np.ndarray, labels: np.ndarray, n_way: int = 5, k_shot: int = 1,
                            episodes: int = 200, seed: int = 0) -> float:
    """Mean accuracy of nearest-prototype (with k_shot = 1: nearest-neighbour) on raw pixels in n_way k_shot
    episodes: how hard the data set is for a model that has learned nothing."""
    x = rearrange(images, "n h w c -> n (h w c)").astype(np.float32) / 255
    n_query = min(5, int(np.unique(labels, return_counts=True)[1].min()) - k_shot)
    return prototypical_episodes(x, labels, n_way=n_way, k_shot=k_shot, n_query=n_query, episodes=episodes,
                                 seed=seed)["mean"]


def check_options(parser: argparse.ArgumentParser, args) -> None:
    """Refuse (exit code 2) what the argument types leave to check."""
    if args.instances < 2:
        parser.error(f"--instances {args.instances}: a class needs at least 2 instances (a shot and a query)")
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        parser.error(f"--size {args.size}: images are {MIN_SIZE} to {MAX_SIZE} pixels a side (smaller ones cannot "
                     f"show a glyph; the glyphs are rendered at {EM} pixels an em, and larger images only enlarge "
                     f"them)")


def main(argv=None, log=print) -> StoreResult:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/glyphs", help="the image dataset folder to write")
    parser.add_argument("--seed", type=count, default=0, help="draws the instances and the split of alphabets")
    parser.add_argument("--instances", type=positive, default=20, help="images per class (Omniglot: 20 drawers)")
    parser.add_argument("--size", type=positive, default=28, help="side of the square images written")
    parser.add_argument("--evaluation-fraction", type=fraction, default=0.4, help="share of classes held out")
    parser.add_argument("--max-classes-per-alphabet", type=count, default=0, help="0: all (small for tests)")
    args = parser.parse_args(argv)
    check_options(parser, args)
    out, started = Path(args.out), time.perf_counter()
    options = {k: v for k, v in vars(args).items() if k != "out"}
    fonts = Fonts()
    # this file is an input too: a change to the recipe redraws the data set
    key = fingerprint(options, [(p.name, p) for p in fonts.paths] + [("glyphs.py", Path(__file__))])
    if up_to_date(out, key):
        log(f"{out} is up to date; nothing to do")
        return StoreResult(out, written=False)
    claim_store(out, "data_prep.glyphs", ("alphabets.json",))  # before the drawing: a refusal costs nothing
    glyphs = choose_glyphs(fonts, ALPHABETS, args.max_classes_per_alphabet)
    evaluation = split_alphabets(glyphs, args.evaluation_fraction, args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small memory-bound ops: on a busy machine threads only wait on each other
    try:
        images = draw_classes(fonts, glyphs, args.instances, args.size, args.seed)  # (C * instances, S, S, 1)
    finally:
        torch.set_num_threads(threads)
    labels = np.repeat(np.arange(len(glyphs)), args.instances)
    test = np.repeat([g.alphabet in evaluation for g in glyphs], args.instances)
    alphabets = [{"name": name, "split": "test" if name in evaluation else "train",
                  "classes": [i for i, g in enumerate(glyphs) if g.alphabet == name]}
                 for name in dict.fromkeys(g.alphabet for g in glyphs)]
    begin_dataset(out)  # alphabets.json is written while dataset.json is absent: never stale beside it
    atomic_write_text(out / "alphabets.json", "[\n" + ",\n".join(map(json.dumps, alphabets)) + "\n]\n")
    splits = {"train": (images[~test], labels[~test]), "test": (images[test], labels[test])}
    names = [f"{g.alphabet}/U+{g.code:04X}" for g in glyphs]
    info = write_dataset(out, splits, names, source=f"fonts of {FONT_DIR}", key=key)
    log(f"wrote {out} in {time.perf_counter() - started:.1f} s: {len(glyphs)} classes x {args.instances} instances "
        f"of {args.size}x{args.size}x1")
    for split, role in (("train", "background"), ("test", "evaluation")):
        mine = [a for a in alphabets if a["split"] == split]
        log(f"  {split}: {len(mine)} {role} alphabets, {sum(len(a['classes']) for a in mine)} classes, "
            f"{info['splits'][split]} images")
    for warning in content_warnings(out):
        log(f"WARNING: {warning}")
    for n_way in (5, 20):
        if len(np.unique(labels[test])) >= n_way:
            accuracy = pixel_nearest_neighbour(images[test], labels[test], n_way=n_way)
            log(f"difficulty: nearest neighbour on raw pixels, test split, {n_way}-way 1-shot: {accuracy:.3f}")
    return StoreResult(out, True, info)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.glyphs"))
