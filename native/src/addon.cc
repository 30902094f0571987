// Module entry: per-environment state and the registration of each op unit.
#include "handles.h"

namespace mm {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Process-global tensors are leaked on purpose at exit (static-destructor order, pytorch#46171); the
  // per-environment table is freed with the environment.
  env.SetInstanceData<State>(new State());
  registerCreate(env, exports);
  registerMath(env, exports);
  registerNN(env, exports);
  registerTrain(env, exports);
  registerOptim(env, exports);
  registerDistributed(env, exports);
  return exports;
}

}  // namespace mm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mm::Init(env, exports); }

NODE_API_MODULE(mmtrain_native, InitModule)
