// CUDA devices as LibTorch sees them: their properties (for `mmtrain info`), the caching allocator's counters and
// cache, synchronisation, the current device, and the two pieces of asynchronous host-to-device copies: pinned
// host memory and moving a parameter's data in place (set_data, as PyTorch's Module.to does). In a CPU build of
// LibTorch the device list is empty and the CUDA-only calls say that this build has no CUDA.
#include "handles.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#ifdef MMTRAIN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace mm {

static void needCuda() {
#ifndef MMTRAIN_WITH_CUDA
  throw std::invalid_argument("this build of mmtrain has no CUDA (the addon was compiled against a CPU LibTorch)");
#else
  if (!at::hasCUDA()) throw std::invalid_argument("no CUDA device is visible to LibTorch");
#endif
}

// cudaDevices() -> [{ index, name, totalMemory, major, minor, multiProcessors }]
MM_FN(CudaDevices) {
  return guarded(info, "cudaDevices", [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
#ifdef MMTRAIN_WITH_CUDA
    if (at::hasCUDA()) {
      const int n = static_cast<int>(at::cuda::device_count());
      for (int i = 0; i < n; i++) {
        const auto* p = at::cuda::getDeviceProperties(i);
        Napi::Object d = Napi::Object::New(env);
        d.Set("index", i);
        d.Set("name", std::string(p->name));
        d.Set("totalMemory", static_cast<double>(p->totalGlobalMem));
        d.Set("major", p->major);
        d.Set("minor", p->minor);
        d.Set("multiProcessors", p->multiProcessorCount);
        out.Set(static_cast<uint32_t>(i), d);
      }
    }
#endif
    return out;
  });
}

// cudaMemory(index) -> { allocated, reserved, peakAllocated } in bytes, from the caching allocator
MM_FN(CudaMemory) {
  return guarded(info, "cudaMemory", [&]() -> Napi::Value {
    needCuda();
    Napi::Object o = Napi::Object::New(info.Env());
#ifdef MMTRAIN_WITH_CUDA
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(info[0].As<Napi::Number>().Int32Value()));
    // index 0 of each statistic is the aggregate over the small and large pools (StatType::AGGREGATE)
    o.Set("allocated", static_cast<double>(stats.allocated_bytes[0].current));
    o.Set("reserved", static_cast<double>(stats.reserved_bytes[0].current));
    o.Set("peakAllocated", static_cast<double>(stats.allocated_bytes[0].peak));
#endif
    return o;
  });
}

// cudaEmptyCache(): hands the caching allocator's unused blocks back to the driver
MM_FN(CudaEmptyCache) {
  return guarded(info, "cudaEmptyCache", [&]() -> Napi::Value {
#ifdef MMTRAIN_WITH_CUDA
    if (at::hasCUDA()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
    return info.Env().Undefined();
  });
}

// cudaSynchronize(): waits for every queued kernel and copy of the current device
MM_FN(CudaSynchronize) {
  return guarded(info, "cudaSynchronize", [&]() -> Napi::Value {
    needCuda();
#ifdef MMTRAIN_WITH_CUDA
    c10::cuda::device_synchronize();
#endif
    return info.Env().Undefined();
  });
}

// cudaSetDevice(index): the current device of this thread (a data-parallel rank's own GPU)
MM_FN(CudaSetDevice) {
  return guarded(info, "cudaSetDevice", [&]() -> Napi::Value {
    needCuda();
#ifdef MMTRAIN_WITH_CUDA
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(info[0].As<Napi::Number>().Int32Value()));
#endif
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
