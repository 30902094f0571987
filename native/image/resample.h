// Pillow's antialiased resize of 8-bit RGB (resample.cc), shared by the JPEG path (jpeg.cc).
#pragma once
#include <cstdint>

namespace mmtrain_image {

/** Filters by code: 0 bilinear, 1 bicubic (src/data/resample.ts RESAMPLE_FILTERS). */
/** reference: Pillow's scalar loops, for tests (else the SIMD passes where compiled, the same bytes). */
void Resize(const uint8_t* src, int srcWidth, int left, int top, int width, int height, int outWidth, int outHeight, int filter, uint8_t* out, bool reference = false);

/** Whether Resize has SIMD passes in this build (x86-64: SSE2). */
bool ResizeSimd();

}  // namespace mmtrain_image
