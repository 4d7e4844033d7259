"""Procedurally drawn test cases for the classical fallback, each with its exact ground-truth alpha.

Every case is a flat-shaded, outlined toon subject (the house style of ``tests/conftest.py``'s
``draw_toon``) on a plain backdrop, drawn ``scale`` times larger and area-downsampled, so the
alpha is the exact coverage of the drawn shapes. The backdrop gets what real ToonOut-style images
show: a gentle gradient and vignette, a little noise, and JPEG compression. Shadows are painted on
the backdrop and are background (alpha 0).

Categories (``CATEGORIES``):

- ``plain_grey``: a standing character on a near-uniform grey;
- ``floor_shadow``: the same with a shadow on the floor under and beside the feet, soft or hard-edged;
- ``white_on_light``: white clothing and white hair on a light grey, outlined in light grey;
- ``dark_on_dark``: dark hair and dark clothes on a dark backdrop, outlined in near-black;
- ``touching_border``: a close-up running out of the bottom of the frame and out of one side;
- ``prop_held``: a character holding a long thin staff that reaches away from the body;
- ``prop_on_surface``: an item standing on a light plate, with the plate's shadow (soft or hard) on the floor.

``make_case(category, size, seed)`` is deterministic.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

CATEGORIES: tuple[str, ...] = (
    "plain_grey", "floor_shadow", "white_on_light", "dark_on_dark", "touching_border", "prop_held", "prop_on_surface",
)

Colour = tuple[int, int, int]
OUTLINE: Colour = (25, 20, 30)
SKIN: Colour = (250, 215, 185)


@dataclass
class Case:
    """One drawn image (RGB uint8 HxWx3) and its exact alpha (uint8 HxW)."""

    category: str
    seed: int
    rgb: np.ndarray
    alpha: np.ndarray


class Canvas:
    """Shapes drawn at ``scale`` times the output size: which colour covers each drawing pixel.

    Shapes are drawn with the value 255 on a map of palette indices (0: nothing), then take
    their colour's index: one pass over the map per shape, not one over a colour image."""

    DRAWN = 255

    def __init__(self, size: int, scale: int) -> None:
        self.size, self.scale = size, scale
        side = size * scale
        self.labels = np.zeros((side, side), np.uint8)
        self.palette: list[Colour] = [(0, 0, 0)]

    def px(self, fraction: float) -> int:
        """A length given as a fraction of the image side, in drawing pixels."""
        return round(fraction * self.size * self.scale)

    def pt(self, x: float, y: float) -> tuple[int, int]:
        """A point given in fractions of the image side, in drawing pixels."""
        return self.px(x), self.px(y)

    def _index(self, rgb: Colour) -> int:
        if rgb not in self.palette:
            if len(self.palette) == self.DRAWN:
                raise ValueError("too many colours on one canvas")
            self.palette.append(rgb)
        return self.palette.index(rgb)

    def shape(self, draw: Callable[[np.ndarray], object], rgb: Colour) -> None:
        """Paint the shape that ``draw`` marks with 255 in ``rgb``, over what is there."""
        index = self._index(rgb)
        draw(self.labels)
        self.labels[self.labels == self.DRAWN] = index

    def detail(self, draw: Callable[[np.ndarray], object], rgb: Colour) -> None:
        """Paint inside the subject only (eyes, folds): changes colour, never coverage."""
        layer = np.zeros_like(self.labels)
        draw(layer)
        self.labels[(layer > 0) & (self.labels > 0)] = self._index(rgb)

    def mirror(self) -> None:
        """Flip what is drawn left to right."""
        self.labels = np.ascontiguousarray(self.labels[:, ::-1])

    def outline(self, rgb: Colour, width: float) -> None:
        """Cel-shaded outline: ``width`` output pixels (at least one) along the inside of the silhouette."""
        k = 2 * max(1, round(max(width, 1.0) * self.scale)) + 1
        mask = (self.labels > 0).astype(np.uint8)
        inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        self.labels[(mask > 0) & (inner == 0)] = self._index(rgb)

    def render(self, backdrop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Composite over ``backdrop`` (float32, output size) and downsample: (rgb float32, alpha uint8).

        The backdrop is smooth, so compositing the area-downsampled shapes over it equals
        downsampling the composite drawn at full resolution."""
        out = (self.size, self.size)
        colour = np.asarray(self.palette, np.uint8)[self.labels]  # index 0 is black: premultiplied by the mask
        premultiplied = cv2.resize(colour, out, interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = cv2.resize(np.where(self.labels > 0, 255, 0).astype(np.uint8), out, interpolation=cv2.INTER_AREA)
        return premultiplied + (1.0 - alpha[..., None] / 255.0) * backdrop, alpha


def _random_colour(rng: np.random.Generator, low: int, high: int) -> Colour:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def backdrop(size: int, grey: float, rng: np.random.Generator, ramp: float = 6.0) -> np.ndarray:
    """A near-uniform grey (float32 size x size x 3): a gentle linear ramp and a darker vignette."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp_field = ramp * 2 * (np.cos(angle) * u + np.sin(angle) * v)
    vignette = -ramp * 2 * (u * u + v * v)
    tint = rng.uniform(-2, 2, 3).astype(np.float32)  # backdrops are rarely perfectly neutral
    return (grey + ramp_field + vignette)[..., None] + tint


def floor_shadow(back: np.ndarray, centre: tuple[float, float], radii: tuple[float, float], depth: float,
                 soft: bool) -> np.ndarray:
    """``back`` darkened by an elliptical shadow; ``depth``: how much darker its middle is (0..1).

    A soft shadow fades out over its short radius; a hard one is a flat darker patch with an
    anti-aliased edge, as cel-shaded art draws them. Positions and radii are fractions of the side."""
    side = back.shape[0]
    fine = 4 * side  # drawn 4x larger and area-downsampled for an anti-aliased edge
    shade = np.zeros((fine, fine), np.uint8)
    cv2.ellipse(shade, (round(centre[0] * fine), round(centre[1] * fine)),
                (round(radii[0] * fine), round(radii[1] * fine)), 0, 0, 360, 255, -1)
    shade = cv2.resize(shade, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    if soft:
        shade = cv2.GaussianBlur(shade, (0, 0), max(0.5, radii[1] * side / 2.5))
    return back * (1.0 - depth * shade)[..., None]


def character(canvas: Canvas, rng: np.random.Generator, cx: float, feet: float, height: float, *,
              hair: Colour, cloth: Colour, legs: Colour, skin: Colour = SKIN, reach: float = 0.0,
              arm: float = 0.36) -> tuple[float, float]:
    """A standing figure, feet at ``feet``, ``height`` tall (fractions of the side); returns its right hand.

    ``reach`` lifts the right arm away from the body (0: hanging, 1: horizontal); ``arm`` is its
    length as a fraction of ``height``.
    """
    h = height
    head_r = 0.085 * h
    head_y = feet - h + head_r * 1.3
    neck_y = head_y + head_r
    shoulder_y = neck_y + 0.03 * h
    hip_y = shoulder_y + 0.33 * h
    half = 0.12 * h
    canvas.shape(lambda m: cv2.rectangle(m, canvas.pt(cx - 0.02 * h, head_y),
                                         canvas.pt(cx + 0.02 * h, shoulder_y + 0.01 * h),
                                         255, -1), skin)
    for side in (-1, 1):  # legs and shoes
        gap = 0.015 * h * side
        leg = np.array([canvas.pt(cx + gap, hip_y - 0.02 * h), canvas.pt(cx + side * half * 0.9, hip_y),
                        canvas.pt(cx + side * half * 0.55, feet - 0.04 * h), canvas.pt(cx + gap * 2, feet - 0.04 * h)],
                       np.int32)
        canvas.shape(lambda m, p=leg: cv2.fillPoly(m, [p], 255), legs)
        shoe = (cx + side * half * 0.45, feet - 0.03 * h)
        canvas.shape(lambda m, c=shoe: cv2.ellipse(m, canvas.pt(*c), (canvas.px(0.065 * h), canvas.px(0.03 * h)),
                                                   0, 180, 360, 255, -1), (60, 40, 35))
        canvas.shape(lambda m, c=shoe: cv2.rectangle(m, canvas.pt(c[0] - 0.065 * h, c[1]),
                                                     canvas.pt(c[0] + 0.065 * h, feet), 255, -1), (60, 40, 35))
    torso = np.array([canvas.pt(cx - half * 1.15, shoulder_y), canvas.pt(cx + half * 1.15, shoulder_y),
                      canvas.pt(cx + half, hip_y + 0.06 * h), canvas.pt(cx - half, hip_y + 0.06 * h)], np.int32)
    canvas.shape(lambda m: cv2.fillPoly(m, [torso], 255), cloth)
    thickness = canvas.px(0.055 * h)
    left_hand = (cx - half * 1.35, hip_y + 0.02 * h)
    lift = np.clip(reach, 0.0, 1.0) * np.pi / 2
    length = arm * h
    right_hand = (cx + half * 1.05 + np.sin(lift) * length * 0.95, shoulder_y + np.cos(lift) * length)
    for shoulder, hand in (((cx - half * 1.05, shoulder_y + 0.02 * h), left_hand),
                           ((cx + half * 1.05, shoulder_y + 0.02 * h), right_hand)):
        canvas.shape(lambda m, a=shoulder, b=hand: cv2.line(m, canvas.pt(*a), canvas.pt(*b), 255, thickness), cloth)
        canvas.shape(lambda m, b=hand: cv2.circle(m, canvas.pt(*b), canvas.px(0.035 * h), 255, -1), skin)
    canvas.shape(lambda m: cv2.circle(m, canvas.pt(cx, head_y), canvas.px(head_r), 255, -1), skin)
    canvas.shape(lambda m: cv2.ellipse(m, canvas.pt(cx, head_y - head_r * 0.2), (canvas.px(head_r * 1.15),
                                                                                 canvas.px(head_r * 0.95)),
                                       0, 180, 360, 255, -1), hair)
    for side in (-1, 1):  # spiky strands and eyes
        spikes = int(rng.integers(2, 4))
        for k in range(spikes):
            top = head_y - head_r * (0.1 + 0.25 * k)
            tip = (cx + side * head_r * (1.5 + 0.2 * k), top + head_r * (0.9 - 0.3 * k))
            strand = np.array([canvas.pt(cx + side * head_r * 0.7, top - head_r * 0.3), canvas.pt(*tip),
                               canvas.pt(cx + side * head_r * 0.9, top + head_r * 0.25)], np.int32)
            canvas.shape(lambda m, p=strand: cv2.fillPoly(m, [p], 255), hair)
        canvas.detail(lambda m, s=side: cv2.circle(m, canvas.pt(cx + s * head_r * 0.38, head_y + head_r * 0.15),
                                                   canvas.px(head_r * 0.16), 255, -1), (20, 20, 40))
    return right_hand


def finish(rgb: np.ndarray, rng: np.random.Generator, noise: float = 1.2, quality: int = 92) -> np.ndarray:
    """Noise and JPEG compression, as generated art arrives: uint8 RGB."""
    noisy = rgb + rng.normal(0.0, noise, rgb.shape).astype(np.float32)
    image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _plain_grey(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    character(canvas, rng, rng.uniform(0.4, 0.6), rng.uniform(0.9, 0.95), rng.uniform(0.75, 0.85),
              hair=_random_colour(rng, 30, 230), cloth=_random_colour(rng, 30, 230), legs=_random_colour(rng, 30, 200))
    canvas.outline(OUTLINE, canvas.size / 400)
    return backdrop(canvas.size, rng.uniform(95, 215), rng)


def _floor_shadow(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    cx, feet = rng.uniform(0.4, 0.6), rng.uniform(0.84, 0.88)
    character(canvas, rng, cx, feet, rng.uniform(0.7, 0.76), hair=_random_colour(rng, 30, 230),
              cloth=_random_colour(rng, 30, 230), legs=_random_colour(rng, 30, 200))
    canvas.outline(OUTLINE, canvas.size / 400)
    back = backdrop(canvas.size, rng.uniform(120, 215), rng)
    side = rng.choice([-1, 1])  # light from one side: the shadow reaches out on the other
    soft = bool(rng.random() < 0.5)
    return floor_shadow(back, (cx + side * 0.08, feet + 0.005), (rng.uniform(0.2, 0.26), 0.035),
                        rng.uniform(0.25, 0.4) if soft else rng.uniform(0.15, 0.3), soft)


def _white_on_light(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    white = tuple(int(v) for v in rng.integers(242, 252, 3))
    character(canvas, rng, rng.uniform(0.4, 0.6), rng.uniform(0.9, 0.95), rng.uniform(0.75, 0.85),
              hair=tuple(int(v) for v in rng.integers(238, 250, 3)), cloth=white, legs=_random_colour(rng, 150, 240))
    grey = rng.uniform(215, 228)
    canvas.outline((int(grey) - 55,) * 3, canvas.size / 500)
    return backdrop(canvas.size, grey, rng, ramp=4.0)


def _dark_on_dark(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    grey = rng.uniform(38, 60)
    character(canvas, rng, rng.uniform(0.4, 0.6), rng.uniform(0.9, 0.95), rng.uniform(0.75, 0.85),
              hair=tuple(int(v) for v in rng.integers(18, 34, 3)), cloth=_random_colour(rng, 15, 45),
              legs=_random_colour(rng, 20, 50))
    canvas.outline((10, 8, 12), canvas.size / 400)
    return backdrop(canvas.size, grey, rng, ramp=4.0)


def _touching_border(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    character(canvas, rng, rng.uniform(0.2, 0.26), rng.uniform(1.45, 1.6), rng.uniform(1.45, 1.55),
              hair=_random_colour(rng, 30, 230), cloth=_random_colour(rng, 30, 230), legs=_random_colour(rng, 30, 200),
              reach=rng.uniform(0.85, 1.0), arm=0.5)  # the body leaves by the bottom and the left, the arm by the right
    canvas.outline(OUTLINE, canvas.size / 400)
    if rng.random() < 0.5:
        canvas.mirror()
    return backdrop(canvas.size, rng.uniform(95, 215), rng)


def _prop_held(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    cx = rng.uniform(0.36, 0.46)
    hand = character(canvas, rng, cx, rng.uniform(0.9, 0.95), rng.uniform(0.7, 0.78), hair=_random_colour(rng, 30, 230),
                     cloth=_random_colour(rng, 30, 230), legs=_random_colour(rng, 30, 200), reach=rng.uniform(0.5, 0.8))
    wood = _random_colour(rng, 60, 160)
    top = (hand[0] + rng.uniform(0.12, 0.2), hand[1] - rng.uniform(0.35, 0.45))
    bottom = (2 * hand[0] - top[0] * 0.6 - hand[0] * 0.4, hand[1] + (hand[1] - top[1]) * 0.4)
    width = max(2, canvas.px(0.008))  # a thin staff: a few output pixels wide
    canvas.shape(lambda m: cv2.line(m, canvas.pt(*bottom), canvas.pt(*top), 255, width), wood)
    canvas.shape(lambda m: cv2.circle(m, canvas.pt(*top), canvas.px(0.025), 255, -1), _random_colour(rng, 40, 240))
    canvas.shape(lambda m: cv2.circle(m, canvas.pt(*hand), canvas.px(0.022), 255, -1), SKIN)  # the fist over it
    canvas.outline(OUTLINE, canvas.size / 400)
    return backdrop(canvas.size, rng.uniform(95, 215), rng)


def _prop_on_surface(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    cx, base = rng.uniform(0.42, 0.58), rng.uniform(0.72, 0.8)
    grey = rng.uniform(170, 215)
    plate = tuple(int(min(255, grey + v)) for v in rng.integers(18, 35, 3))
    rx, ry = rng.uniform(0.3, 0.36), rng.uniform(0.07, 0.09)
    canvas.shape(lambda m: cv2.ellipse(m, canvas.pt(cx, base), (canvas.px(rx), canvas.px(ry)), 0, 0,
                                       360, 255, -1), plate)
    canvas.detail(lambda m: cv2.ellipse(m, canvas.pt(cx, base - 0.01), (canvas.px(rx * 0.75), canvas.px(ry * 0.7)),
                                        0, 0, 360, 255, -1), tuple(int(v) - 12 for v in plate))
    body = _random_colour(rng, 40, 220)
    width, tall = rng.uniform(0.14, 0.2), rng.uniform(0.35, 0.45)
    canvas.shape(lambda m: cv2.ellipse(m, canvas.pt(cx, base - tall * 0.3), (canvas.px(width), canvas.px(tall * 0.32)),
                                       0, 0, 360, 255, -1), body)
    canvas.shape(lambda m: cv2.rectangle(m, canvas.pt(cx - width * 0.35, base - tall), canvas.pt(cx + width * 0.35,
                                                                                                  base - tall * 0.5),
                                         255, -1), body)
    canvas.shape(lambda m: cv2.ellipse(m, canvas.pt(cx, base - tall), (canvas.px(width * 0.5), canvas.px(0.02)),
                                       0, 0, 360, 255, -1), _random_colour(rng, 40, 220))
    canvas.outline(OUTLINE, canvas.size / 400)
    back = backdrop(canvas.size, grey, rng)
    soft = bool(rng.random() < 0.5)
    return floor_shadow(back, (cx + 0.04, base + ry * 0.6), (rx * 1.05, ry * 0.9),
                        rng.uniform(0.2, 0.35) if soft else rng.uniform(0.15, 0.3), soft)


DRAW: dict[str, Callable[[Canvas, np.random.Generator], np.ndarray]] = {
    "plain_grey": _plain_grey, "floor_shadow": _floor_shadow, "white_on_light": _white_on_light,
    "dark_on_dark": _dark_on_dark, "touching_border": _touching_border, "prop_held": _prop_held,
    "prop_on_surface": _prop_on_surface,
}


def make_case(category: str, size: int = 256, seed: int = 0) -> Case:
    """The ``seed``-th drawing of ``category`` at ``size`` x ``size``."""
    if category not in DRAW:
        raise ValueError(f"unknown category {category!r}; one of {', '.join(CATEGORIES)}")
    rng = np.random.default_rng([CATEGORIES.index(category), seed])
    canvas = Canvas(size, 4)  # 16 coverage levels per pixel
    back = DRAW[category](canvas, rng)
    rgb, alpha = canvas.render(back)
    return Case(category, seed, finish(rgb, rng), alpha)
