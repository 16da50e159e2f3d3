#!/usr/bin/env bash
# On a GPU machine, in the repository's root with .gpu/ from pack.sh beside it: unpacks the
# binaries and wheels, then runs costs.py and run.sh [SECONDS] with them.
set -o pipefail
mkdir -p /tmp/boxcar-gpu
for f in boxcar boxcar-bench; do
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
    ".gpu/bin/$f.xz" "/tmp/boxcar-gpu/$f"
done
chmod +x /tmp/boxcar-gpu/boxcar /tmp/boxcar-gpu/boxcar-bench
# The SQLite and zlib the binaries were built with (a machine may lack them).
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$PWD/.gpu/lib"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/boxcar-gpu/site .gpu/whl/*.whl \
  && export PYTHONPATH="/tmp/boxcar-gpu/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
echo "=== what each NVML call costs"
python3 Scripts/gpu-check/costs.py 20
echo "=== the check"
bash Scripts/gpu-check/run.sh /tmp/boxcar-gpu/boxcar "${1:-30}"
