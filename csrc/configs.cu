// Host-only queries of the tile table and status names: no CUDA call, so they work on a
// machine without a driver (Rust lists the configurations before it looks for a GPU).
#include <cuda_runtime.h>

#include "rosa_kernels.h"
#include "tiles.cuh"

namespace {

const rosa::Tile *table(int32_t op, int32_t *count) {
  switch (op) {
  case ROSA_OP_SPMM:
  case ROSA_OP_SPMM_T: *count = static_cast<int32_t>(rosa::kSpmmCount); return rosa::kSpmmTiles;
  case ROSA_OP_SDDMM: *count = static_cast<int32_t>(rosa::kSddmmCount); return rosa::kSddmmTiles;
  default: *count = 0; return nullptr;
  }
}

} // namespace

extern "C" int32_t rosa_config_count(int32_t op) {
  int32_t count = 0;
  table(op, &count);
  return count;
}

extern "C" int32_t rosa_config_get(int32_t op, int32_t index, rosa_config *out) {
  int32_t count = 0;
  const rosa::Tile *tiles = table(op, &count);
  if (tiles == nullptr) return ROSA_ERR_BAD_OP;
  if (out == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  if (index < 0 || index >= count) return ROSA_ERR_BAD_CONFIG;
  const rosa::Tile &t = tiles[index];
  *out = rosa_config{op, index, t.subwarp, t.block_rows, t.vectors, t.subwarp * t.block_rows,
                     t.unroll, t.split};
  return ROSA_OK;
}

extern "C" const char *rosa_status_string(int32_t code) {
  switch (code) {
  case ROSA_OK: return "success";
  case ROSA_ERR_BAD_OP: return "unknown kernel op";
  case ROSA_ERR_BAD_CONFIG: return "tile configuration index out of range";
  case ROSA_ERR_BAD_DTYPE: return "unknown dtype";
  case ROSA_ERR_BAD_ARGUMENT: return "invalid kernel argument";
  default:
    // cudaGetErrorString is a table lookup: it neither initializes the runtime nor needs a GPU.
    return code > 0 ? cudaGetErrorString(static_cast<cudaError_t>(code)) : "unknown status";
  }
}
