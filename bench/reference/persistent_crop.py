# The MONAI reference of `deno task bench cache --torch`: what a PersistentDataset-based
# loader does per sample of the voco-v2 sampler, torch.load of the cached float32 volume
# and a random 192 x 192 x 64 crop, timed in one thread (best and median). The volume is
# the toolkit's decoded case (a raw float32 file), saved once as PersistentDataset would
# (a MetaTensor in a dict, torch.save). Prints one JSON object.
import argparse, json, os, random, statistics, sys, tempfile, time

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
import numpy as np
import torch
from monai.data import MetaTensor

p = argparse.ArgumentParser()
p.add_argument("--volume", required=True, help="raw float32 file, C order")
p.add_argument("--shape", required=True, help="X,Y,Z")
p.add_argument("--crops", type=int, default=30)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch.set_num_threads(1)
shape = [int(s) for s in a.shape.split(",")]
data = np.fromfile(a.volume, dtype=np.float32).reshape(1, *shape)
size = (192, 192, 64)
rng = random.Random(a.seed)
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "case.pt")
    torch.save({"image": MetaTensor(torch.from_numpy(data), affine=torch.eye(4))}, path)
    disk = os.path.getsize(path)
    times = []
    for _ in range(a.crops):
        t0 = time.perf_counter()
        img = torch.load(path)["image"]
        start = [rng.randint(0, max(0, n - c)) for n, c in zip(shape, size)]
        crop = img[:, start[0]:start[0] + size[0], start[1]:start[1] + size[1],
                   start[2]:start[2] + size[2]].clone()
        times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({
    "torch": torch.__version__,
    "best_ms": min(times),
    "median_ms": statistics.median(times),
    "persistent_bytes": disk,
    "crop_shape": list(crop.shape[1:]),
}))
