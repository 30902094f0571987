// Per-thread scratch memory for the image pool threads. A decoded photo (~1 MB at 640 x 480) and the resize's
// intermediate rows were taken from malloc for every image: memory that glibc often hands back to the kernel between
// images, so each image paid for fresh pages (zeroed by the kernel on first touch) and for the vector's own zeroing.
// A thread keeps one buffer per use and grows it as needed, without zeroing; one over kKeepBytes (a decoded image
// over ~5 megapixels) is given back after use, so that large photos do not pin their memory on every pool thread:
// what stays is at most ~2 x 16 MB per pool thread (4 by default), and ~2 MB for 640x480 photos.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace mmtrain_image {

class Scratch {
 public:
  static constexpr size_t kKeepBytes = size_t{16} << 20;

  /** At least n bytes, uninitialised; valid until the next Get or Release on this object. */
  uint8_t* Get(size_t n) {
    if (n > capacity_) {
      data_.reset(new uint8_t[n]);  // default-initialised: not zeroed
      capacity_ = n;
    }
    return data_.get();
  }

  /** Gives the memory back when it is over kKeepBytes. */
  void Release() {
    if (capacity_ > kKeepBytes) {
      data_.reset();
      capacity_ = 0;
    }
  }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
};

}  // namespace mmtrain_image
