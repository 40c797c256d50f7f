"""SimCLR's image augmentations, batched in torch: one call gives one random view of every image.

Shapes: B batch, C channels (1 or 3), H x W image side, k blur kernel side.
In training mode each image gets its own draws, in SimCLR's order: a random resized crop (area fraction in
crop_scale, aspect ratio log-uniform in crop_ratio, resized back to H x W bilinearly), a horizontal flip,
colour jitter (brightness, contrast and, for RGB, saturation, in that fixed order; hue jitter is left out),
grey-scale (RGB only: every channel set to the luminance) and a Gaussian blur. In eval mode the input passes
unchanged. The objectives (SimCLR, MoCo v2, SDCLR) call the module twice for two views of a batch.

Crop and flip are one affine map per image (F.affine_grid + F.grid_sample). As in torchvision, a crop whose
drawn size does not fit in the image is drawn again (up to CROP_TRIES times, all at once); an image with no
fitting draw gets the drawn size cut to the image.
"""
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.core.draws import check_pair, uniform

CROP_TRIES = 10  # draws of a crop size per image; torchvision's RandomResizedCrop tries 10 times too
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights of R, G, B, as torchvision's rgb_to_grayscale


def luminance(x):
    """(B, 3, H, W) RGB -> (B, 1, H, W) grey."""
    weights = x.new_tensor(LUMA)
    return torch.einsum("bchw,c->bhw", x, weights)[:, None]


def blend(x, other, factor):
    """torchvision's colour blend: other + factor * (x - other), clamped to [0, 1]; factor (B,)."""
    return (other + factor[:, None, None, None] * (x - other)).clamp(0, 1)


def gaussian_kernels(sigma, size: int):
    """(B,) sigmas -> (B, size) normalised 1-D Gaussian kernels; sigma 0 gives the identity (a centred 1)."""
    t = torch.arange(size, device=sigma.device, dtype=sigma.dtype) - size // 2
    logits = -(t**2) / (2 * sigma[:, None].clamp_min(1e-6) ** 2)  # (B, size)
    return torch.softmax(logits, dim=-1)


class ImageViews(nn.Module):
    def __init__(self, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip: float = 0.5, jitter: float = 0.4,
                 jitter_prob: float = 0.8, grey: float = 0.2, blur: float = 0.0, blur_sigma=(0.1, 2.0)):
        super().__init__()
        self.crop_scale = check_pair("crop_scale", crop_scale)
        low, high = check_pair("crop_ratio", crop_ratio)
        self.log_ratio = (math.log(low), math.log(high))
        self.blur_sigma = check_pair("blur_sigma", blur_sigma)
        self.flip, self.jitter, self.jitter_prob = flip, jitter, jitter_prob
        self.grey, self.blur = grey, blur

    def crop_sizes(self, B: int, H: int, W: int, device):
        """(B,) crop width and height as fractions of W and H: the first of CROP_TRIES draws that fits."""
        area = uniform(*self.crop_scale, B * CROP_TRIES, device)
        ratio = uniform(*self.log_ratio, B * CROP_TRIES, device).exp()  # width / height, in pixels
        w = rearrange((area * ratio * H / W).sqrt(), "(b n) -> b n", b=B)
        h = rearrange((area / ratio * W / H).sqrt(), "(b n) -> b n", b=B)
        fits = (w <= 1) & (h <= 1)  # (B, CROP_TRIES)
        first = torch.where(fits.any(1), fits.int().argmax(1), 0)[:, None]  # the first fitting draw, else draw 0
        return w.gather(1, first)[:, 0].clamp(max=1), h.gather(1, first)[:, 0].clamp(max=1)

    def crop_and_flip(self, x):
        """(B, C, H, W) -> (B, C, H, W): a random resized crop, mirrored with probability `flip`."""
        B, C, H, W = x.shape
        w, h = self.crop_sizes(B, H, W, x.device)
        cx = (1 - w) * uniform(-1, 1, B, x.device)  # crop centre in [-1, 1] coordinates
        cy = (1 - h) * uniform(-1, 1, B, x.device)
        mirror = torch.where(torch.rand(B, device=x.device) < self.flip, -1.0, 1.0)
        zero = torch.zeros_like(w)
        theta = torch.stack([torch.stack([w * mirror, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta.to(x.dtype), [B, C, H, W], align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def colour_jitter(self, x):
        """(B, C, H, W) -> (B, C, H, W): brightness, contrast, saturation, each image with probability
        jitter_prob, factors uniform in [1 - jitter, 1 + jitter]."""
        on = torch.rand(len(x), device=x.device) < self.jitter_prob
        x = blend(x, torch.zeros_like(x), self.jitter_factors(on, x))  # brightness: a blend with black
        grey = luminance(x) if x.shape[1] == 3 else x  # (B, 1, H, W)
        x = blend(x, grey.mean(dim=(1, 2, 3), keepdim=True), self.jitter_factors(on, x))  # contrast
        if x.shape[1] == 3:
            x = blend(x, luminance(x), self.jitter_factors(on, x))  # saturation
        return x

    def jitter_factors(self, on, x):
        """(B,) factors uniform in [1 - jitter, 1 + jitter] where `on`, else 1, in x's dtype."""
        factors = uniform(1 - self.jitter, 1 + self.jitter, len(on), on.device)
        return torch.where(on, factors, 1.0).to(x.dtype)

    def grey_scale(self, x):
        """(B, 3, H, W) -> (B, 3, H, W): each image turned grey with probability `grey`."""
        on = torch.rand(len(x), device=x.device) < self.grey
        return torch.where(on[:, None, None, None], luminance(x).expand_as(x), x)

    def gaussian_blur(self, x):
        """(B, C, H, W) -> (B, C, H, W): each image blurred with probability `blur` by a Gaussian of sigma
        uniform in blur_sigma, side k ~ 10% of the shorter image side (odd, >= 3); reflected borders."""
        B, C, H, W = x.shape
        k = max(3, int(0.1 * min(H, W)) // 2 * 2 + 1)
        on = torch.rand(B, device=x.device) < self.blur
        sigma = torch.where(on, uniform(*self.blur_sigma, B, x.device), 0.0)
        kernel = gaussian_kernels(sigma, k).to(x.dtype)  # (B, k)
        kernel = rearrange(kernel[:, None].expand(B, C, k), "b c k -> (b c) 1 k")  # one kernel per channel
        mode = "reflect" if k // 2 < min(H, W) else "replicate"  # reflect needs a pad shorter than the side
        y = F.pad(rearrange(x, "b c h w -> 1 (b c) h w"), (k // 2,) * 4, mode=mode)
        y = F.conv2d(y, kernel[..., None, :], groups=B * C)  # along W
        y = F.conv2d(y, kernel[..., :, None], groups=B * C)  # along H: separable, as one k x k Gaussian
        return rearrange(y, "1 (b c) h w -> b c h w", b=B)

    def forward(self, x):
        """(B, C, H, W) in [0, 1] -> one view (B, C, H, W) in [0, 1]; the input itself in eval mode."""
        if not self.training:
            return x
        x = self.crop_and_flip(x)
        if self.jitter > 0 and self.jitter_prob > 0:
            x = self.colour_jitter(x)
        if x.shape[1] == 3 and self.grey > 0:
            x = self.grey_scale(x)
        if self.blur > 0:
            x = self.gaussian_blur(x)
        return x.clamp(0, 1)


def image_views_from_config(cfg) -> ImageViews:
    """An ImageViews from an ImageViewsConfig (seqcpc/image/config.py)."""
    return ImageViews(crop_scale=cfg.crop_scale, crop_ratio=cfg.crop_ratio, flip=cfg.flip, jitter=cfg.jitter,
                      jitter_prob=cfg.jitter_prob, grey=cfg.grey, blur=cfg.blur, blur_sigma=cfg.blur_sigma)
