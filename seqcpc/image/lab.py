"""sRGB to CIE Lab (D65), in torch, for the objectives that split a colour image into lightness and colour (CMC's
L and ab views, colourisation's input and targets).

Shapes: ... any leading dims, with the 3 RGB channels at dim -3 (a batch (B, 3, H, W) or a patch grid
(B, Gh, Gw, 3, p, p)); the output keeps the shape, its channels L, a, b.
The formulas are the standard ones: sRGB values in [0, 1] are linearised (IEC 61966-2-1: c / 12.92 below 0.04045,
else ((c + 0.055) / 1.055) ^ 2.4), mapped to XYZ by the sRGB matrix, divided by the D65 white (the matrix's image
of RGB (1, 1, 1), so that white is exactly L = 100, a = b = 0), and then (CIE 1976)
  L = 116 f(Y) - 16,  a = 500 (f(X) - f(Y)),  b = 200 (f(Y) - f(Z)),
  f(t) = t^(1/3) above (6/29)^3, else t / (3 (6/29)^2) + 4/29.
L lies in [0, 100]; a and b of sRGB colours in about [-87, 99] and [-108, 95] (pure green and blue at the ends).
Written here rather than taken from a library: it is a dozen lines of published formulas, and kornia (which has
one) would add a package and its compiled Rust helper to the install; tests/image/test_lab.py checks it against
scikit-image's rgb2lab and the published Lab values of the sRGB primaries.
"""
import torch

# linear sRGB -> XYZ (IEC 61966-2-1, the primaries' chromaticities with the D65 white), rows X, Y, Z
SRGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
DELTA = 6 / 29  # where f(t) turns from the cube root to its tangent line
L_SCALE, AB_SCALE = 50.0, 110.0  # network inputs: L / 50 - 1 and ab / 110 lie in about [-1, 1]


def linearise(rgb):
    """sRGB values in [0, 1] -> linear light."""
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def lab_f(t):
    """CIE's f: the cube root above DELTA^3, a line below (no infinite slope at 0)."""
    return torch.where(t > DELTA ** 3, t.clamp_min(DELTA ** 3) ** (1 / 3), t / (3 * DELTA ** 2) + 4 / 29)


def rgb_to_lab(rgb):
    """(..., 3, H, W) sRGB in [0, 1] -> (..., 3, H, W) L, a, b (float32 at least, also under autocast)."""
    rgb = rgb.to(torch.promote_types(rgb.dtype, torch.float32)).clamp(0, 1)
    matrix = rgb.new_tensor(SRGB_TO_XYZ)  # (3, 3)
    with torch.autocast(rgb.device.type, enabled=False):  # the matrix product in full precision under bf16 too
        xyz = torch.einsum("ij,...jhw->...ihw", matrix / matrix.sum(1, keepdim=True), linearise(rgb))  # / white
    fx, fy, fz = lab_f(xyz).unbind(-3)  # each (..., H, W)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def split_lab(rgb):
    """(..., 3, H, W) sRGB -> (L (..., 1, H, W), ab (..., 2, H, W)) scaled for a network (L_SCALE, AB_SCALE)."""
    lab = rgb_to_lab(rgb)
    return lab[..., :1, :, :] / L_SCALE - 1, lab[..., 1:, :, :] / AB_SCALE
