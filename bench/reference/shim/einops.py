# A stand-in for einops' `rearrange`, enough for MONAI's SwinUNETR (axis permutations
# written as "b c d h w -> b d h w c"), where the einops package cannot be installed
# (Debian has none); used only when einops is missing (bench/reference puts this folder
# last on sys.path).


def rearrange(x, pattern):
    src, dst = (side.split() for side in pattern.split("->"))
    if sorted(src) != sorted(dst) or len(set(src)) != len(src):
        raise ValueError(f"only axis permutations are supported, got {pattern!r}")
    return x.permute(*[src.index(name) for name in dst])
