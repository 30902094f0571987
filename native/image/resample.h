// Pillow's antialiased resize of 8-bit RGB (resample.cc), shared by the JPEG path (jpeg.cc).
#pragma once
#include <cstdint>

namespace mmtrain_image {

/** Filters by code: 0 bilinear, 1 bicubic (src/data/resample.ts RESAMPLE_FILTERS). */
void Resize(const uint8_t* src, int srcWidth, int left, int top, int width, int height, int outWidth, int outHeight, int filter, uint8_t* out);

}  // namespace mmtrain_image
