// A fake libnvidia-ml for tests: the NVML functions Boxcar calls, answering from a script the
// test writes. Nothing links it: tests load it with dlopen, as the agent loads the real one.
#pragma once
