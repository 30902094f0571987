// Every difference between the LibTorch versions mmtrain supports lives here: Debian 12's 1.13, Debian 13's 2.6,
// and current pip wheels and official zips (2.x). The op units call these helpers and never test versions
// themselves. Where a difference can be told from a type rather than from a version number, the type decides
// (see the optimizer state below), so a version in between needs no new guard.
#pragma once

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#define MM_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace mm {
namespace compat {

// ---- autocast: 2.4 replaced the per-device functions (is_cpu_enabled, get_autocast_gpu_dtype, ...) by ones
// taking the device type.
inline bool autocastEnabled(bool cuda) {
#if MM_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline at::ScalarType autocastDtype(bool cuda) {
#if MM_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void setAutocast(bool cuda, bool enabled, at::ScalarType dtype) {
#if MM_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, enabled);
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
#else
  if (cuda) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

// ---- scaled dot-product attention: public (with fused kernels) from 2.0, with a `scale` argument from 2.1;
// 1.13 has only the composite _scaled_dot_product_attention. `scale` replaces 1/sqrt(hs) when given.
inline at::Tensor scaledDotProductAttention(at::Tensor q, const at::Tensor& k, const at::Tensor& v,
                                            const c10::optional<at::Tensor>& mask, double dropoutP, bool causal,
                                            c10::optional<double> scale) {
#if MM_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, mask, dropoutP, causal, scale);
#else
  if (scale) q = q * (*scale * std::sqrt(static_cast<double>(q.size(-1))));
#if MM_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, mask, dropoutP, causal);
#else
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, mask, dropoutP, /*need_attn_weights=*/false, causal));
#endif
#endif
}

// ---- optimizer state: torch::optim keeps each parameter's state in a map whose key the public API does not name.
// 1.13 keys it by the parameter's TensorImpl address written to a string (c10::guts::to_string, an ostream `<<`),
// 2.x by the address itself. The key type of the map in hand decides which, so this follows the library that is compiled against
// instead of a version number.
template <typename Optimizer>
auto paramStateKey(Optimizer& opt, const at::Tensor& p) {
  using Key = typename std::remove_reference_t<decltype(opt.state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << static_cast<void*>(p.unsafeGetTensorImpl());
    return os.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

// ---- c10d TCPStore: from 2.4 it runs on libuv unless told otherwise (TCPStoreOptions::useLibUV defaults to true),
// and a LibTorch built without libuv (Debian 13's 2.6) refuses to make such a store, server or client ("use_libuv
// was requested but PyTorch was build without libuv support"); the function that would tell beforehand is not
// exported. 1.13 has no such option. So: the library's default first, and where that is refused for want of libuv,
// the classic backend. Whether the option exists is read from the type.
template <typename T, typename = void>
struct HasUseLibUV : std::false_type {};
template <typename T>
struct HasUseLibUV<T, std::void_t<decltype(std::declval<T&>().useLibUV)>> : std::true_type {};

template <typename Store, typename StoreOptions>
c10::intrusive_ptr<Store> makeTcpStore(const std::string& addr, StoreOptions opts) {
  try {
    return c10::make_intrusive<Store>(addr, opts);
  } catch (const std::exception& e) {
    if constexpr (HasUseLibUV<StoreOptions>::value) {
      if (opts.useLibUV && std::string(e.what()).find("libuv") != std::string::npos) {
        opts.useLibUV = false;
        return c10::make_intrusive<Store>(addr, opts);
      }
    }
    throw;
  }
}

// ---- c10d Reducer: it takes a ProcessGroup. Up to 1.x the Gloo process group is one; from 2.0 Gloo is a Backend,
// which a ProcessGroup made for the same store, rank and size dispatches to for CPU tensors. Which of the two is
// read from the class hierarchy, not from a version number.
template <typename ProcessGroupT, typename StoreT, typename GlooT>
c10::intrusive_ptr<ProcessGroupT> asProcessGroup(const c10::intrusive_ptr<StoreT>& store, int rank, int world, const c10::intrusive_ptr<GlooT>& gloo) {
  if constexpr (std::is_base_of_v<ProcessGroupT, GlooT>) {
    return c10::intrusive_ptr<ProcessGroupT>(gloo);
  } else {
    auto group = c10::make_intrusive<ProcessGroupT>(store, rank, world);
    group->setBackend(c10::DeviceType::CPU, ProcessGroupT::BackendType::GLOO, gloo);
    group->setDefaultBackend(ProcessGroupT::BackendType::GLOO);
    return group;
  }
}

}  // namespace compat
}  // namespace mm
