// Data-parallel primitives from LibTorch's own distributed engine (c10d): TCPStore rendezvous and the Gloo process
// group on CPU. One process group per process. Gradients and parameters travel in flat buckets (one collective
// per bucket instead of one per tensor).
#include "handles.h"
#include "torch_compat.h"

// Built with distributed support when c10d's Gloo headers are there (Debian: libgloo-dev).
#if __has_include(<gloo/algorithm.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#define MMTRAIN_WITH_GLOO 1
#define USE_C10D_GLOO 1

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// c10d's Reducer (gradient sync overlapping backward) where its header's includes are installed: Debian 12's
// libtorch-dev 1.13 lacks torch/csrc/distributed/autograd, and there gradients are averaged after backward.
#if __has_include(<torch/csrc/distributed/autograd/context/context.h>)
#define MMTRAIN_WITH_REDUCER 1
#include <torch/csrc/distributed/c10d/reducer.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#endif  // MMTRAIN_WITH_GLOO (includes)

namespace mm {

#ifdef MMTRAIN_WITH_GLOO

namespace {
struct Dist {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0;
  int world = 1;
};
// Process-global on purpose: a process group belongs to the process, not to a JS environment.
Dist& dist() {
  static Dist* d = new Dist();  // leaked at exit: no collective may run during static destruction
  return *d;
}
c10d::ProcessGroupGloo& pg() {
  if (!dist().pg) throw std::invalid_argument("no process group: call distInit first");
  return *dist().pg;
}

// Groups tensors into buckets of at most `bucketBytes` (same dtype per bucket) and runs fn on each flat bucket,
// copying the results back when `writeBack`.
template <typename Fn>
void forBuckets(std::vector<at::Tensor>& ts, int64_t bucketBytes, bool writeBack, Fn fn) {
  size_t i = 0;
  while (i < ts.size()) {
    size_t j = i;
    int64_t bytes = 0;
    while (j < ts.size() && ts[j].scalar_type() == ts[i].scalar_type() && (j == i || bytes + ts[j].nbytes() <= static_cast<uint64_t>(bucketBytes))) {
      bytes += ts[j].nbytes();
      j++;
    }
    std::vector<at::Tensor> flat;
    for (size_t k = i; k < j; k++) flat.push_back(ts[k].reshape({-1}));
    at::Tensor bucket = at::cat(flat);
    fn(bucket);
    if (writeBack) {
      int64_t off = 0;
      for (size_t k = i; k < j; k++) {
        int64_t n = ts[k].numel();
        ts[k].copy_(bucket.narrow(0, off, n).view(ts[k].sizes()));
        off += n;
      }
    }
    i = j;
  }
}

std::vector<uint8_t> bytesOf(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

#ifdef MMTRAIN_WITH_REDUCER
// c10d Reducers by id (the JS side holds the id), process-global like the process group they use.
struct Reducers {
  std::unordered_map<int, std::unique_ptr<c10d::Reducer>> byId;
  int next = 0;
};
Reducers& reducers() {
  static Reducers* r = new Reducers();  // leaked at exit, as the process group is
  return *r;
}
c10d::Reducer& reducer(int id) {
  auto it = reducers().byId.find(id);
  if (it == reducers().byId.end()) throw std::invalid_argument("this gradient reducer was disposed");
  return *it->second;
}
#endif
}  // namespace

// distInit(rank, world, masterAddr, masterPort, timeoutMs, ifname, storeFile) — rank 0 hosts the TCPStore, or, with
// storeFile (processes of one machine), the ranks meet in a FileStore and nothing listens on a network port but
// Gloo's own pairs on the loopback address.
MM_FN(DistInit) {
  return guarded(info, "distInit", [&]() -> Napi::Value {
    Dist& d = dist();
    if (d.pg) throw std::invalid_argument("a process group already exists in this process");
    int rank = static_cast<int>(I(info, 0));
    int world = static_cast<int>(I(info, 1));
    std::string addr = info[2].As<Napi::String>().Utf8Value();
    auto port = static_cast<uint16_t>(I(info, 3));
    std::chrono::milliseconds timeout(I(info, 4));
    std::string ifname = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "";
    std::string storeFile = info[6].IsString() ? info[6].As<Napi::String>().Utf8Value() : "";
    if (!storeFile.empty()) {
      d.store = c10::make_intrusive<c10d::FileStore>(storeFile, world);
      d.store->setTimeout(timeout);
    } else {
      c10d::TCPStoreOptions so;
      so.port = port;
      so.isServer = rank == 0;
      so.numWorkers = world;
      so.waitWorkers = true;
      so.timeout = timeout;
      d.store = compat::makeTcpStore<c10d::TCPStore>(addr, so);
    }
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    if (!ifname.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (addr == "127.0.0.1" || addr == "localhost") opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    d.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(d.store, rank, world, opts);
    d.rank = rank;
    d.world = world;
    return info.Env().Undefined();
  });
}

// distAllreduceGrads(params[], bucketBytes, scale): sums the gradients of every parameter across ranks, then
// multiplies them by scale (1/world for a mean of means, 1/N for a mean over N samples); a parameter without a
// gradient contributes zeros (and gets them).
MM_FN(DistAllreduceGrads) {
  return guarded(info, "allreduce", [&]() -> Napi::Value {
    std::vector<at::Tensor> params = unwrapList(info.Env(), info[0]);
    int64_t bucketBytes = I(info, 1);
    const double scale = D(info, 2);
    at::NoGradGuard ng;
    // which parameters have a gradient on some rank: one with none anywhere stays without (the optimizer skips it,
    // as it would in a single process, instead of applying weight decay to a zero gradient)
    at::Tensor has = at::zeros({static_cast<int64_t>(params.size())}, at::kFloat);
    auto hp = has.accessor<float, 1>();
    std::vector<at::Tensor> grads;
    for (size_t i = 0; i < params.size(); i++) {
      auto& p = params[i];
      if (p.grad().defined()) hp[i] = 1.0f;
      else p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    std::vector<at::Tensor> hv{has};
    pg().allreduce(hv)->wait();
    forBuckets(grads, bucketBytes, true, [&](at::Tensor& b) {
      std::vector<at::Tensor> v{b};
      pg().allreduce(v)->wait();
      if (scale != 1.0) b.mul_(scale);
    });
    for (size_t i = 0; i < params.size(); i++) if (hp[i] == 0.0f) params[i].mutable_grad().reset();
    return info.Env().Undefined();
  });
}

#ifdef MMTRAIN_WITH_REDUCER
// distReducerNew(params[], bucketBytes, firstBucketBytes, findUnused) -> id: LibTorch's c10d Reducer, the engine of
// PyTorch's DistributedDataParallel, over these parameters. It hooks their gradient accumulators; during a backward
// that follows distReducerPrepare, each bucket (assigned by size as DDP assigns them, in reverse parameter order,
// the first one small) is averaged across ranks as soon as all its gradients are ready, so communication overlaps
// the rest of the backward; at its end every gradient holds the mean over ranks. A parameter that no rank used
// keeps no gradient.
MM_FN(DistReducerNew) {
  return guarded(info, "reducer", [&]() -> Napi::Value {
    std::vector<at::Tensor> params = unwrapList(info.Env(), info[0]);
    const int64_t bucketBytes = I(info, 1);
    const int64_t firstBucketBytes = I(info, 2);
    const bool findUnused = B(info, 3);
    std::vector<bool> sparse(params.size(), false);
    auto assignment = c10d::compute_bucket_assignment_by_size(params, {static_cast<size_t>(firstBucketBytes), static_cast<size_t>(bucketBytes)}, sparse);
    auto buckets = std::get<0>(assignment);
    auto limits = std::get<1>(assignment);
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(limits.begin(), limits.end());
    if (!dist().pg) throw std::invalid_argument("no process group: call distInit first");
    auto group = compat::asProcessGroup<c10d::ProcessGroup>(dist().store, dist().rank, dist().world, dist().pg);
    auto r = std::make_unique<c10d::Reducer>(params, buckets, limits, group, sparse, bucketBytes, findUnused,
                                             /*gradient_as_bucket_view=*/false, std::unordered_map<size_t, std::string>{}, firstBucketBytes);
    const int id = reducers().next++;
    reducers().byId[id] = std::move(r);
    return Napi::Number::New(info.Env(), id);
  });
}

// distReducerPrepare(id, outputs[]): the next backward (from these outputs) synchronises the gradients
MM_FN(DistReducerPrepare) {
  return guarded(info, "reducer", [&]() -> Napi::Value {
    reducer(static_cast<int>(I(info, 0))).prepare_for_backward(unwrapList(info.Env(), info[1]));
    return info.Env().Undefined();
  });
}

MM_FN(DistReducerFree) {
  return guarded(info, "reducer", [&]() -> Napi::Value {
    reducers().byId.erase(static_cast<int>(I(info, 0)));
    return info.Env().Undefined();
  });
}
#define MM_REDUCER_FNS 1
#endif

// distBroadcast(tensors[], root, bucketBytes): every rank's tensors become root's (in place).
MM_FN(DistBroadcast) {
  return guarded(info, "broadcast", [&]() -> Napi::Value {
    std::vector<at::Tensor> ts = unwrapList(info.Env(), info[0]);
    int root = static_cast<int>(I(info, 1));
    at::NoGradGuard ng;
    forBuckets(ts, I(info, 2), true, [&](at::Tensor& b) {
      std::vector<at::Tensor> v{b};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      pg().broadcast(v, o)->wait();
    });
    return info.Env().Undefined();
  });
}

// distAllreduce(tensor): in-place sum across ranks (small tensors: losses, flags, scores).
MM_FN(DistAllreduce) {
  return guarded(info, "allreduce", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0);
    std::vector<at::Tensor> v{t};
    pg().allreduce(v)->wait();
    return info.Env().Undefined();
  });
}

// distAllgather(tensor) -> (world, ...) tensor of every rank's tensor (same shape on every rank).
MM_FN(DistAllgather) {
  return guarded(info, "allgather", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0).contiguous();
    std::vector<at::Tensor> outs;
    for (int r = 0; r < dist().world; r++) outs.push_back(at::empty_like(t));
    std::vector<std::vector<at::Tensor>> o{outs};
    std::vector<at::Tensor> in{t};
    pg().allgather(o, in)->wait();
    return out(info, at::stack(o[0]));
  });
}

MM_FN(DistBarrier) {
  return guarded(info, "barrier", [&]() -> Napi::Value {
    pg().barrier()->wait();
    return info.Env().Undefined();
  });
}

// distStoreSet(key, value) / distStoreGet(key) -> value (waits up to the store timeout)
MM_FN(DistStoreSet) {
  return guarded(info, "store.set", [&]() -> Napi::Value {
    if (!dist().store) throw std::invalid_argument("no process group: call distInit first");
    dist().store->set(info[0].As<Napi::String>().Utf8Value(), bytesOf(info[1].As<Napi::String>().Utf8Value()));
    return info.Env().Undefined();
  });
}

MM_FN(DistStoreGet) {
  return guarded(info, "store.get", [&]() -> Napi::Value {
    if (!dist().store) throw std::invalid_argument("no process group: call distInit first");
    std::vector<uint8_t> v = dist().store->get(info[0].As<Napi::String>().Utf8Value());
    return Napi::String::New(info.Env(), std::string(v.begin(), v.end()));
  });
}

MM_FN(DistDestroy) {
  return guarded(info, "distDestroy", [&]() -> Napi::Value {
#ifdef MMTRAIN_WITH_REDUCER
    reducers().byId.clear();
#endif
    dist().pg.reset();
    dist().store.reset();
    dist().rank = 0;
    dist().world = 1;
    return info.Env().Undefined();
  });
}

#define MM_DIST_FNS 1
#endif  // MMTRAIN_WITH_GLOO

#ifndef MM_DIST_FNS
// Built without c10d's Gloo headers: every distributed call says what is missing.
MM_FN(DistMissing) {
  Napi::Error::New(info.Env(), "distributed training is not in this build: LibTorch's c10d Gloo headers were not found when the addon was built "
    "(on Debian: apt-get install libgloo-dev, then npm run build:native)").ThrowAsJavaScriptException();
  return info.Env().Undefined();
}
#define DistInit DistMissing
#define DistAllreduceGrads DistMissing
#define DistBroadcast DistMissing
#define DistAllreduce DistMissing
#define DistAllgather DistMissing
#define DistBarrier DistMissing
#define DistStoreSet DistMissing
#define DistStoreGet DistMissing
#define DistDestroy DistMissing

#endif

#ifndef MM_REDUCER_FNS
// Built without the headers c10d's reducer.hpp includes: the TypeScript side averages gradients after backward.
MM_FN(ReducerMissing) {
  Napi::Error::New(info.Env(), "gradient sync during backward is not in this build: the LibTorch headers lack "
    "torch/csrc/distributed/autograd (Debian 12's libtorch-dev); set distributed.overlap false").ThrowAsJavaScriptException();
  return info.Env().Undefined();
}
#define DistReducerNew ReducerMissing
#define DistReducerPrepare ReducerMissing
#define DistReducerFree ReducerMissing
#endif

void registerDistributed(Napi::Env env, Napi::Object exports) {
  exports.Set("distOverlapAvailable", Napi::Boolean::New(env,
#ifdef MM_REDUCER_FNS
    true
#else
    false
#endif
  ));
  exports.Set("distAvailable", Napi::Boolean::New(env,
#ifdef MM_DIST_FNS
    true
#else
    false
#endif
  ));
  MM_EXPORT(exports, "distInit", DistInit);
  MM_EXPORT(exports, "distAllreduceGrads", DistAllreduceGrads);
  MM_EXPORT(exports, "distBroadcast", DistBroadcast);
  MM_EXPORT(exports, "distAllreduce", DistAllreduce);
  MM_EXPORT(exports, "distAllgather", DistAllgather);
  MM_EXPORT(exports, "distBarrier", DistBarrier);
  MM_EXPORT(exports, "distStoreSet", DistStoreSet);
  MM_EXPORT(exports, "distStoreGet", DistStoreGet);
  MM_EXPORT(exports, "distDestroy", DistDestroy);
  MM_EXPORT(exports, "distReducerNew", DistReducerNew);
  MM_EXPORT(exports, "distReducerPrepare", DistReducerPrepare);
  MM_EXPORT(exports, "distReducerFree", DistReducerFree);
}

}  // namespace mm
