// CUDA devices as LibTorch sees them: their properties (for `mmtrain info`), the caching allocator's counters and
// cache, synchronisation, the current device, and the two pieces of asynchronous host-to-device copies: pinned
// host memory and moving a parameter's data in place (set_data, as PyTorch's Module.to does). In a CPU build of
// LibTorch the device list is empty and the CUDA-only calls say that this build has no CUDA.
//
// Device properties and the caching allocator's API need the CUDA runtime's headers (cuda_runtime_api.h), which a
// CUDA LibTorch does not always bring (Debian's libtorch-cuda-dev without nvidia-cuda-dev, a pip wheel without
// the CUDA toolkit). Without them the device list has indices only, memory counters are unknown and the cache is
// not emptied; everything else goes through LibTorch's header-free CUDA hooks and device guards.
#include "handles.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#if defined(MMTRAIN_WITH_CUDA) && __has_include(<cuda_runtime_api.h>)
#define MMTRAIN_CUDA_RUNTIME 1
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace mm {

static void needCuda() {
#ifndef MMTRAIN_WITH_CUDA
  throw std::invalid_argument("this build of mmtrain has no CUDA (the addon was compiled against a CPU LibTorch)");
#else
  if (!at::hasCUDA()) throw std::invalid_argument("no CUDA device is visible to LibTorch");
#endif
}

// cudaDevices() -> [{ index, name, totalMemory, major, minor, multiProcessors }] (without the CUDA runtime headers
// at build time: index only, name "", numbers 0)
MM_FN(CudaDevices) {
  return guarded(info, "cudaDevices", [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
#ifdef MMTRAIN_WITH_CUDA
    if (at::hasCUDA()) {
      const int n = at::detail::getCUDAHooks().getNumGPUs();
      for (int i = 0; i < n; i++) {
        Napi::Object d = Napi::Object::New(env);
        d.Set("index", i);
#ifdef MMTRAIN_CUDA_RUNTIME
        const auto* p = at::cuda::getDeviceProperties(i);
        d.Set("name", std::string(p->name));
        d.Set("totalMemory", static_cast<double>(p->totalGlobalMem));
        d.Set("major", p->major);
        d.Set("minor", p->minor);
        d.Set("multiProcessors", p->multiProcessorCount);
#else
        d.Set("name", std::string());
        d.Set("totalMemory", 0);
        d.Set("major", 0);
        d.Set("minor", 0);
        d.Set("multiProcessors", 0);
#endif
        out.Set(static_cast<uint32_t>(i), d);
      }
    }
#endif
    return out;
  });
}

// cudaMemory(index) -> { allocated, reserved, peakAllocated } in bytes from the caching allocator, or null where
// this build cannot read them (no CUDA runtime headers at build time)
MM_FN(CudaMemory) {
  return guarded(info, "cudaMemory", [&]() -> Napi::Value {
    needCuda();
#ifdef MMTRAIN_CUDA_RUNTIME
    Napi::Object o = Napi::Object::New(info.Env());
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(info[0].As<Napi::Number>().Int32Value()));
    // index 0 of each statistic is the aggregate over the small and large pools (StatType::AGGREGATE)
    o.Set("allocated", static_cast<double>(stats.allocated_bytes[0].current));
    o.Set("reserved", static_cast<double>(stats.reserved_bytes[0].current));
    o.Set("peakAllocated", static_cast<double>(stats.allocated_bytes[0].peak));
    return o;
#else
    return info.Env().Null();
#endif
  });
}

// cudaEmptyCache(): hands the caching allocator's unused blocks back to the driver
MM_FN(CudaEmptyCache) {
  return guarded(info, "cudaEmptyCache", [&]() -> Napi::Value {
#ifdef MMTRAIN_CUDA_RUNTIME
    if (at::hasCUDA()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
    return info.Env().Undefined();
  });
}

// cudaSynchronize(index): waits for every kernel and copy queued on that GPU
MM_FN(CudaSynchronize) {
  return guarded(info, "cudaSynchronize", [&]() -> Napi::Value {
    needCuda();
    at::detail::getCUDAHooks().deviceSynchronize(static_cast<c10::DeviceIndex>(info[0].As<Napi::Number>().Int32Value()));
    return info.Env().Undefined();
  });
}

// cudaSetDevice(index): the current device of this thread (a data-parallel rank's own GPU)
MM_FN(CudaSetDevice) {
  return guarded(info, "cudaSetDevice", [&]() -> Napi::Value {
    needCuda();
    const auto index = static_cast<c10::DeviceIndex>(info[0].As<Napi::Number>().Int32Value());
    c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->setDevice(c10::Device(c10::DeviceType::CUDA, index));
    return info.Env().Undefined();
  });
}

// pinMemory(t) -> a copy of t in page-locked host memory, from which copies to a GPU can be asynchronous
MM_FN(PinMemory) {
  return guarded(info, "pinMemory", [&]() -> Napi::Value {
    needCuda();
    return out(info, T(info, 0).pin_memory());
  });
}

// setData(dst, src): dst's data becomes src's (device and dtype included); dst stays the same tensor object, so
// the modules and optimizer holding it see the move (PyTorch's `param.data = param.data.to(device)`)
MM_FN(SetData) {
  return guarded(info, "setData", [&]() -> Napi::Value {
    at::Tensor dst = T(info, 0);
    dst.set_data(T(info, 1));
    return info.Env().Undefined();
  });
}

// setAllowTF32(on): TF32 tensor cores for fp32 matmuls (cuBLAS) and convolutions (cuDNN) on Ampere and later
MM_FN(SetAllowTF32) {
  return guarded(info, "setAllowTF32", [&]() -> Napi::Value {
    const bool on = B(info, 0);
    at::globalContext().setAllowTF32CuBLAS(on);
    at::globalContext().setAllowTF32CuDNN(on);
    return info.Env().Undefined();
  });
}

void registerDevice(Napi::Env env, Napi::Object exports) {
  MM_EXPORT(exports, "setAllowTF32", SetAllowTF32);
  MM_EXPORT(exports, "cudaDevices", CudaDevices);
  MM_EXPORT(exports, "cudaMemory", CudaMemory);
  MM_EXPORT(exports, "cudaEmptyCache", CudaEmptyCache);
  MM_EXPORT(exports, "cudaSynchronize", CudaSynchronize);
  MM_EXPORT(exports, "cudaSetDevice", CudaSetDevice);
  MM_EXPORT(exports, "pinMemory", PinMemory);
  MM_EXPORT(exports, "setData", SetData);
}

}  // namespace mm
