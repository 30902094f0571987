// JPEG decoding with libjpeg (jpeg.cc): the plain JPEGs it takes, decoded to 8-bit RGB.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mmtrain_image {

/** Whether the addon was built with libjpeg (MMTRAIN_JPEG); without it the two below always answer false. */
bool JpegAvailable();

/** The size of a plain JPEG from its markers; false when the file is left to sharp. */
bool ProbeJpeg(const uint8_t* src, size_t len, int* width, int* height);

/** Decodes a plain JPEG into `out` (width * height * 3, row-major RGB); false on any error or warning. */
bool DecodeJpeg(const uint8_t* src, size_t len, std::vector<uint8_t>& out, int* width, int* height);

}  // namespace mmtrain_image
