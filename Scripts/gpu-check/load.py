"""A PyTorch load: bf16 8192×8192 matrix products on GPU 0 for the given number of seconds."""
import sys
import time

import torch

seconds = float(sys.argv[1])
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
start = time.time()
products = 0
while time.time() - start < seconds:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
    products += 20
elapsed = time.time() - start
print(f"{products} products in {elapsed:.1f} s: {products * 2 * 8192**3 / elapsed / 1e12:.0f} TFLOP/s")
