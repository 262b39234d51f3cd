"""Issue 19, item 2: each model's shrinkage towards the mean, the slope of x_hat(x + sigma z) on x
over the pixels of 256 Fashion-MNIST test images padded to 32, at sigma 10 ... 765 (of 255).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/shrinkage.py src/denoiserlens/assets/fmnist-small RUN
"""

import sys

from denoiserlens.data import DataSpec, open_data, to_float
from denoiserlens.models import load_model
from denoiserlens.quality import shrinkage_slopes

ims = open_data(DataSpec(("fashion-mnist:test",), pad_to=32, limit=256))
x = to_float(ims.as_array())
sig = [s / 255 for s in (10, 25, 50, 100, 200, 255, 400, 765)]
print("sigma (of 255):", " ".join(f"{s * 255:g}" for s in sig))
for path in sys.argv[1:]:
    m = load_model(path)
    print(path, " ".join(f"{v:.3f}" for v in shrinkage_slopes(m.denoise, x, sig, seed=0)))
