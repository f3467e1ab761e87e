# The PyTorch reference of `deno task bench pretrain --torch`: VoCo v2 training steps with
# MONAI 1.3.2's SwinUNETR-v2 backbone (swinViT + the five residual encoders, pooled and
# concatenated, as the large-scale VoCo code does) and the two projection heads, on the
# crops the toolkit's sampler made (a raw float32 file), timed per step. Prints one JSON
# object. Needs torch and MONAI importable (e.g. Debian's python3-torch and MONAI's source
# on PYTHONPATH).
import argparse, json, os, resource, sys, time

# einops, which MONAI's SwinUNETR imports, is not in Debian: the shim stands in for it.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.nets import SwinUNETR

p = argparse.ArgumentParser()
p.add_argument("--crops", required=True, help="raw float32 [N, 64, 64, 64] file")
p.add_argument("--labels", required=True, help="raw float32 [B, SW, G] file")
p.add_argument("--batch", type=int, required=True)
p.add_argument("--sw", type=int, required=True)
p.add_argument("--grid", type=int, required=True)
p.add_argument("--roi", type=int, default=64)
p.add_argument("--feature", type=int, default=12)
p.add_argument("--head", type=int, default=1024)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

bases = a.grid * a.grid
n = a.batch * (a.sw + bases)
crops = torch.from_numpy(np.fromfile(a.crops, dtype=np.float32).reshape(n, 1, a.roi, a.roi, a.roi))
labels = torch.from_numpy(np.fromfile(a.labels, dtype=np.float32).reshape(a.batch, a.sw, bases))

net = SwinUNETR(img_size=(a.roi,) * 3, in_channels=1, out_channels=1, feature_size=a.feature,
                use_v2=True)


class Backbone(nn.Module):
    """swinViT and encoder1..4, encoder10 of SwinUNETR, each output average-pooled."""

    def __init__(self, net):
        super().__init__()
        self.swinViT, self.encoder1, self.encoder2 = net.swinViT, net.encoder1, net.encoder2
        self.encoder3, self.encoder4, self.encoder10 = net.encoder3, net.encoder4, net.encoder10

    def forward(self, x):
        h = self.swinViT(x, True)
        outs = [self.encoder1(x), self.encoder2(h[0]), self.encoder3(h[1]), self.encoder4(h[2]),
                self.encoder10(h[4])]
        return torch.cat([F.adaptive_avg_pool3d(o, 1).flatten(1) for o in outs], 1)


def head(dim_in, dim):
    bn = lambda: nn.BatchNorm1d(dim, affine=False, track_running_stats=False)
    return nn.Sequential(nn.Linear(dim_in, dim), bn(), nn.ReLU(), nn.Linear(dim, dim), bn(),
                         nn.ReLU(), nn.Linear(dim, dim))


backbone = Backbone(net)
features = 24 * a.feature
student, teacher = head(features, a.head), head(features, a.head)
teacher.load_state_dict(student.state_dict())
for q in teacher.parameters():
    q.requires_grad_(False)
opt = torch.optim.AdamW(list(backbone.parameters()) + list(student.parameters()), lr=1e-4,
                        amsgrad=True)
drop = nn.Dropout1d(0.2)
eps = 1e-6


def logits(x, b):
    return F.relu(F.cosine_similarity(x.unsqueeze(1), b.unsqueeze(0), dim=-1))


def terms(y, l):
    pos = -(y * torch.log(1 - (y - l).abs() + eps)).sum() / (y.sum() + eps)
    neg = ((y == 0).float() * -torch.log(1 - l + eps)).sum() / ((y == 0).float().sum() + eps)
    return pos + neg


def step():
    f = backbone(crops)
    s = student(drop(f))
    with torch.no_grad():
        for pt, ps in zip(teacher.parameters(), student.parameters()):
            pt.mul_(0.9).add_(0.1 * ps)
        t = teacher(f)
    rs, bs = s[: a.batch * a.sw], s[a.batch * a.sw:]
    rt, bt = t[: a.batch * a.sw], t[a.batch * a.sw:]
    loss = 0
    for v in range(a.batch):
        r = slice(v * a.sw, (v + 1) * a.sw)
        b = slice(v * bases, (v + 1) * bases)
        nb = slice(((v + 1) % a.batch) * bases, ((v + 1) % a.batch + 1) * bases)
        intra = terms(labels[v], logits(rs[r], bt[b]))
        with torch.no_grad():
            y2 = logits(rt[r], bt[nb])
        inter = terms(y2, logits(rs[r], bs[nb]))
        c = logits(bs[b], bs[b].detach())
        iu = torch.triu_indices(bases, bases, 1)
        reg = (c[iu[0], iu[1]] ** 2).mean()
        loss = loss + (intra + inter + reg) / a.batch
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss)


rows = []
for i in range(a.steps):
    t0 = time.perf_counter()
    loss = step()
    rows.append({"step": i + 1, "seconds": time.perf_counter() - t0, "loss": loss})
print(json.dumps({
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "crops": n,
    "steps": rows,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
