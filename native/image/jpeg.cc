// JPEGs decoded with libjpeg(-turbo) straight into 8-bit RGB. sharp (libvips) decodes with the same library and
// settings (integer slow DCT, fancy upsampling), so the pixels are the same; what this saves is libvips' pipeline
// around a small image (operation objects, region and thread setup, the colourspace step, a full-size copy into a JS
// buffer), which took several times the decoding itself for a 320-pixel image.
//
// Only the plain case is taken here: 1 (grey) or 3 (YCbCr / RGB) components, no ICC profile (sharp converts an
// embedded profile to sRGB), no EXIF orientation other than 1 (sharp rotates). Anything else, and any libjpeg error
// or warning (a truncated or corrupt file), answers false and the caller decodes with sharp, whose behaviour, its
// messages included, is then unchanged. Built without libjpeg's headers (MMTRAIN_JPEG undefined), both answer false.
// Plain C++ (no N-API): addon.cc runs it in libuv's thread pool.
#include "jpeg.h"

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#ifdef MMTRAIN_JPEG
#include <jpeglib.h>
#endif

namespace mmtrain_image {

#ifdef MMTRAIN_JPEG
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  bool warned;
};

void OnError(j_common_ptr c) { std::longjmp(reinterpret_cast<ErrorManager*>(c->err)->jump, 1); }

// level -1 is a warning (corrupt data libjpeg works around); higher levels are trace messages
void OnMessage(j_common_ptr c, int level) {
  if (level < 0) reinterpret_cast<ErrorManager*>(c->err)->warned = true;
}

void Silent(j_common_ptr) {}

constexpr int kExifMarker = JPEG_APP0 + 1;
constexpr int kIccMarker = JPEG_APP0 + 2;

uint32_t Read(const uint8_t* p, int n, bool little) {
  uint32_t v = 0;
  for (int i = 0; i < n; i++) v = little ? v | (static_cast<uint32_t>(p[i]) << (8 * i)) : (v << 8) | p[i];
  return v;
}

// The EXIF orientation tag (0x0112) of IFD0, 1 when absent or unreadable (sharp ignores an unreadable one too).
int ExifOrientation(const jpeg_saved_marker_ptr m) {
  if (m->data_length < 14 || std::memcmp(m->data, "Exif\0\0", 6) != 0) return 1;
  const uint8_t* t = m->data + 6;
  const size_t n = m->data_length - 6;
  const bool little = t[0] == 'I' && t[1] == 'I';
  if (!little && !(t[0] == 'M' && t[1] == 'M')) return 1;
  const size_t ifd = Read(t + 4, 4, little);  // size_t: an offset near 2^32 must not wrap past the checks
  if (ifd + 2 > n) return 1;
  const uint32_t count = Read(t + ifd, 2, little);
  for (uint32_t i = 0; i < count; i++) {
    const size_t e = ifd + 2 + static_cast<size_t>(i) * 12;
    if (e + 12 > n) return 1;
    if (Read(t + e, 2, little) == 0x0112) return static_cast<int>(Read(t + e + 8, 2, little));
  }
  return 1;
}

// Reads the header; false when this path does not apply (the caller then leaves the file to sharp).
bool Header(jpeg_decompress_struct& c) {
  jpeg_save_markers(&c, kExifMarker, 0xffff);
  jpeg_save_markers(&c, kIccMarker, 0xffff);
  if (jpeg_read_header(&c, TRUE) != JPEG_HEADER_OK) return false;
  if (c.num_components != 1 && c.num_components != 3) return false;
  if (c.jpeg_color_space != JCS_GRAYSCALE && c.jpeg_color_space != JCS_YCbCr && c.jpeg_color_space != JCS_RGB) return false;
  for (jpeg_saved_marker_ptr m = c.marker_list; m; m = m->next) {
    if (m->marker == kIccMarker && m->data_length >= 12 && std::memcmp(m->data, "ICC_PROFILE\0", 12) == 0) return false;
    if (m->marker == kExifMarker && ExifOrientation(m) != 1) return false;
  }
  return true;
}

void Setup(jpeg_decompress_struct& c, ErrorManager& err, const uint8_t* src, size_t len) {
  c.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = OnError;
  err.pub.emit_message = OnMessage;
  err.pub.output_message = Silent;
  err.warned = false;
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, const_cast<unsigned char*>(src), static_cast<unsigned long>(len));
}

// Header only. Returns false when the path does not apply; width and height are then unset.
bool Probe(const uint8_t* src, size_t len, int* width, int* height) {
  if (len < 4 || src[0] != 0xFF || src[1] != 0xD8 || src[2] != 0xFF) return false;
  jpeg_decompress_struct c;
  ErrorManager err;
  Setup(c, err, src, len);
  volatile bool ok = false;  // set between setjmp and a possible longjmp
  if (setjmp(err.jump) == 0) {
    ok = Header(c) && !err.warned;
    *width = static_cast<int>(c.image_width);
    *height = static_cast<int>(c.image_height);
  }
  jpeg_destroy_decompress(&c);
  return ok;
}

// Decodes into `out`'s memory (width * height * 3 bytes). Null on any error or warning.
const uint8_t* Decode(const uint8_t* src, size_t len, Scratch& out, int* width, int* height) {
  jpeg_decompress_struct c;
  ErrorManager err;
  Setup(c, err, src, len);
  volatile bool ok = false;  // set between setjmp and a possible longjmp
  const uint8_t* volatile result = nullptr;
  if (setjmp(err.jump) == 0) {
    if (Header(c)) {
      c.out_color_space = JCS_RGB;
      c.dct_method = JDCT_ISLOW;
      c.do_fancy_upsampling = TRUE;
      jpeg_start_decompress(&c);
      const size_t stride = static_cast<size_t>(c.output_width) * 3;
      uint8_t* pixels = out.Get(stride * c.output_height);
      while (c.output_scanline < c.output_height) {
        JSAMPROW row = pixels + stride * c.output_scanline;
        jpeg_read_scanlines(&c, &row, 1);
      }
      jpeg_finish_decompress(&c);
      *width = static_cast<int>(c.output_width);
      *height = static_cast<int>(c.output_height);
      ok = !err.warned;
      if (ok) result = pixels;
    }
  }
  jpeg_destroy_decompress(&c);
  return result;
}

}  // namespace

bool JpegAvailable() { return true; }
bool ProbeJpeg(const uint8_t* src, size_t len, int* width, int* height) { return Probe(src, len, width, height); }
const uint8_t* DecodeJpeg(const uint8_t* src, size_t len, Scratch& out, int* width, int* height) { return Decode(src, len, out, width, height); }
#else
bool JpegAvailable() { return false; }
bool ProbeJpeg(const uint8_t*, size_t, int*, int*) { return false; }
const uint8_t* DecodeJpeg(const uint8_t*, size_t, Scratch&, int*, int*) { return nullptr; }
#endif

}  // namespace mmtrain_image
