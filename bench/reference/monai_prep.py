# The MONAI reference of `deno task bench prep --torch`: the voco-v2 preprocessing in
# MONAI 1.3.2's transforms (load with nibabel, RAS, 1.5 mm trilinear, window -175..250 to
# 0..1, crop to the foreground, pad to 64) and PersistentDataset's cache write
# (torch.save of the transformed item), one volume after the other in one thread, timed.
# Prints one JSON object. Needs torch, nibabel and MONAI importable.
import argparse, json, os, resource, sys, tempfile, time

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
import torch
from monai.data import PersistentDataset
from monai.transforms import (Compose, CropForegroundd, EnsureChannelFirstd, LoadImaged,
                              Orientationd, ScaleIntensityRanged, Spacingd, SpatialPadd)

p = argparse.ArgumentParser()
p.add_argument("files", nargs="+")
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)

transforms = Compose([
    LoadImaged(keys="image", reader="NibabelReader", image_only=True),
    EnsureChannelFirstd(keys="image"),
    Orientationd(keys="image", axcodes="RAS"),
    Spacingd(keys="image", pixdim=(1.5, 1.5, 1.5), mode="bilinear"),
    ScaleIntensityRanged(keys="image", a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True),
    CropForegroundd(keys="image", source_key="image"),
    SpatialPadd(keys="image", spatial_size=(64, 64, 64)),
])
with tempfile.TemporaryDirectory() as cache_dir:
    ds = PersistentDataset([{"image": f} for f in a.files], transform=transforms,
                           cache_dir=cache_dir)
    seconds = []
    for i in range(len(a.files)):
        t0 = time.perf_counter()
        item = ds[i]  # transforms the volume and writes the cache file
        seconds.append(time.perf_counter() - t0)
    disk = sum(os.path.getsize(os.path.join(cache_dir, f)) for f in os.listdir(cache_dir))
    shape = list(item["image"].shape[1:])
print(json.dumps({
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "seconds": seconds,
    "persistent_bytes": disk,
    "shape": shape,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
