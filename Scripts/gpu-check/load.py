"""A PyTorch load: bf16 8192×8192 matrix products on GPU 0 for the given number of seconds, and
256 MiB copied from the host to the GPU every 20 of them.

Where the SDK imports (Clients/python on PYTHONPATH, $BOXCAR_SOCKET the agent's), it is a trainer
too: an experiment that logs its rate each round, so the agent watches this process and reports
the GPU memory it holds."""
import sys
import time

import torch

seconds = float(sys.argv[1])
try:
    from boxcar import Boxcar, MLFramework

    experiment = Boxcar(strict=True).new_experiment(
        name="gpu-check", namespace="boxcar", owner="gpu-check", framework=MLFramework.PYTORCH)
except Exception as error:  # the check goes on without it: the table says what is missing
    print(f"no SDK: {error!r}")
    experiment = None

a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
# PCIe traffic too: 256 MiB of pinned host memory copied to the GPU each round (a data loader's).
host = torch.empty(128 << 20, dtype=torch.bfloat16, pin_memory=True)
batch = torch.empty(128 << 20, dtype=torch.bfloat16, device="cuda")
start = time.time()
products = 0
while time.time() - start < seconds:
    round_start = time.time()
    batch.copy_(host, non_blocking=True)
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
    products += 20
    if experiment is not None:
        rate = 20 * 2 * 8192**3 / (time.time() - round_start) / 1e12
        experiment.log_metrics({"tflops": rate}, step=products)
elapsed = time.time() - start
print(f"{products} products in {elapsed:.1f} s: {products * 2 * 8192**3 / elapsed / 1e12:.0f} TFLOP/s")
if experiment is not None:
    experiment.flush()
    stored = len(experiment.metrics(["tflops"]).get("tflops", []))
    experiment.finish()
    print(f"experiment {experiment.id}: logged {products // 20} points, the agent has {stored}")
