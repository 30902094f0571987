// Snappy blocks decompressed by the snappy library's C interface. Parquet writers (pyarrow, and so the Hugging Face
// Hub) compress pages with snappy by default; hysnappy's WebAssembly build copies each page in and out of its
// memory and ran at ~680 MB/s on image pages here, a fifth of a core for a 640 x 480 photo a sample. Plain C++ (no
// N-API): addon.cc exposes it. Built without the library's headers (MMTRAIN_SNAPPY undefined), all answer false.
#include "snappy.h"

#ifdef MMTRAIN_SNAPPY
#include <snappy-c.h>
#endif

namespace mmtrain_image {

#ifdef MMTRAIN_SNAPPY
bool SnappyAvailable() { return true; }

bool SnappyLength(const uint8_t* src, size_t len, size_t* out) {
  return snappy_uncompressed_length(reinterpret_cast<const char*>(src), len, out) == SNAPPY_OK;
}

bool SnappyUncompress(const uint8_t* src, size_t len, uint8_t* out, size_t outLen) {
  size_t n = outLen;
  return snappy_uncompress(reinterpret_cast<const char*>(src), len, reinterpret_cast<char*>(out), &n) == SNAPPY_OK && n == outLen;
}
#else
bool SnappyAvailable() { return false; }
bool SnappyLength(const uint8_t*, size_t, size_t*) { return false; }
bool SnappyUncompress(const uint8_t*, size_t, uint8_t*, size_t) { return false; }
#endif

}  // namespace mmtrain_image
