#include "nvml_types.h"
