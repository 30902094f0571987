// LibTorch's own optimizer and gradient clipping (torch::optim::AdamW, torch::nn::utils::clip_grad_norm_), so the
// optimizer math is LibTorch's and one native call steps every parameter.
#include "handles.h"
#include "torch_compat.h"

#include <torch/optim/adamw.h>
#include <torch/types.h>
// clip_grad.h relies on names from torch/types.h being in scope before it.
#include <torch/nn/utils/clip_grad.h>

#include <memory>

namespace mm {

namespace {
struct OptimState {
  std::vector<std::unique_ptr<torch::optim::AdamW>> adamw;
};
// Keyed by environment: the State in instance data owns the table through this side map.
OptimState& optimState(Napi::Env env) {
  State& s = state(env);
  if (!s.optim) s.optim = std::make_shared<OptimState>();
  return *std::static_pointer_cast<OptimState>(s.optim);
}
torch::optim::AdamW& getAdamW(Napi::Env env, const Napi::Value& id) {
  OptimState& os = optimState(env);
  int64_t i = id.As<Napi::Number>().Int64Value();
  if (i < 0 || i >= static_cast<int64_t>(os.adamw.size()) || !os.adamw[i]) throw std::invalid_argument("optimizer was disposed");
  return *os.adamw[i];
}
}  // namespace

// adamwCreate(groups: [{ params: handle[], lr, beta1, beta2, eps, weightDecay, amsgrad }]) -> id
MM_FN(AdamWCreate) {
  return guarded(info, "AdamW", [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Array groups = info[0].As<Napi::Array>();
    std::vector<torch::optim::OptimizerParamGroup> pgs;
    for (uint32_t g = 0; g < groups.Length(); g++) {
      Napi::Object o = groups.Get(g).As<Napi::Object>();
      std::vector<at::Tensor> params = unwrapList(env, o.Get("params"));
      auto opts = std::make_unique<torch::optim::AdamWOptions>(o.Get("lr").As<Napi::Number>().DoubleValue());
      opts->betas(std::make_tuple(o.Get("beta1").As<Napi::Number>().DoubleValue(), o.Get("beta2").As<Napi::Number>().DoubleValue()));
      opts->eps(o.Get("eps").As<Napi::Number>().DoubleValue());
      opts->weight_decay(o.Get("weightDecay").As<Napi::Number>().DoubleValue());
      opts->amsgrad(o.Get("amsgrad").ToBoolean().Value());
      pgs.emplace_back(params, std::move(opts));
    }
    OptimState& os = optimState(env);
    os.adamw.push_back(std::make_unique<torch::optim::AdamW>(pgs, torch::optim::AdamWOptions()));
    return Napi::Number::New(env, static_cast<double>(os.adamw.size() - 1));
  });
}

MM_FN(AdamWStep) {
  return guarded(info, "AdamW.step", [&]() -> Napi::Value {
    getAdamW(info.Env(), info[0]).step();
    return info.Env().Undefined();
  });
}

// adamwSetLr(id, group, lr)
MM_FN(AdamWSetLr) {
  return guarded(info, "AdamW.setLr", [&]() -> Napi::Value {
    auto& opt = getAdamW(info.Env(), info[0]);
    auto& group = opt.param_groups().at(info[1].As<Napi::Number>().Uint32Value());
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(info[2].As<Napi::Number>().DoubleValue());
    return info.Env().Undefined();
  });
}

// adamwGetState(id, group, index) -> [step, expAvg, expAvgSq, maxExpAvgSq] handles (-1 when absent), or null
MM_FN(AdamWGetState) {
  return guarded(info, "AdamW.getState", [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto& opt = getAdamW(env, info[0]);
    auto& group = opt.param_groups().at(info[1].As<Napi::Number>().Uint32Value());
    const at::Tensor& p = group.params().at(info[2].As<Napi::Number>().Uint32Value());
    auto it = opt.state().find(compat::paramStateKey(opt, p));
    if (it == opt.state().end()) return env.Null();
    auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
    Napi::Array out = Napi::Array::New(env, 4);
    out.Set(0u, Napi::Number::New(env, static_cast<double>(st.step())));
    out.Set(1u, wrapOptional(env, st.exp_avg()));
    out.Set(2u, wrapOptional(env, st.exp_avg_sq()));
    out.Set(3u, wrapOptional(env, st.max_exp_avg_sq()));
    return out;
  });
}

// adamwSetState(id, group, index, step, expAvg, expAvgSq, maxExpAvgSq|-1): copies into fresh state tensors.
MM_FN(AdamWSetState) {
  return guarded(info, "AdamW.setState", [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto& opt = getAdamW(env, info[0]);
    auto& group = opt.param_groups().at(info[1].As<Napi::Number>().Uint32Value());
    const at::Tensor& p = group.params().at(info[2].As<Napi::Number>().Uint32Value());
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(info[3].As<Napi::Number>().Int64Value());
    st->exp_avg(unwrap(env, info[4], 4).detach().clone());
    st->exp_avg_sq(unwrap(env, info[5], 5).detach().clone());
    c10::optional<at::Tensor> mx = unwrapOptional(env, info[6], 6);
    if (mx) st->max_exp_avg_sq(mx->detach().clone());
    opt.state()[compat::paramStateKey(opt, p)] = std::move(st);
    return env.Undefined();
  });
}

MM_FN(AdamWFree) {
  Napi::Env env = info.Env();
  OptimState& os = optimState(env);
  int64_t i = info[0].As<Napi::Number>().Int64Value();
  if (i >= 0 && i < static_cast<int64_t>(os.adamw.size())) os.adamw[i].reset();
  return env.Undefined();
}

// clipGradNorm(params[], maxNorm, normType) -> total norm before clipping (LibTorch's clip_grad_norm_)
MM_FN(ClipGradNorm) {
  return guarded(info, "clipGradNorm", [&]() -> Napi::Value {
    std::vector<at::Tensor> params = unwrapList(info.Env(), info[0]);
    double total = torch::nn::utils::clip_grad_norm_(params, info[1].As<Napi::Number>().DoubleValue(), info[2].As<Napi::Number>().DoubleValue());
    return Napi::Number::New(info.Env(), total);
  });
}

void registerOptim(Napi::Env env, Napi::Object exports) {
  MM_EXPORT(exports, "adamwCreate", AdamWCreate);
  MM_EXPORT(exports, "adamwStep", AdamWStep);
  MM_EXPORT(exports, "adamwSetLr", AdamWSetLr);
  MM_EXPORT(exports, "adamwGetState", AdamWGetState);
  MM_EXPORT(exports, "adamwSetState", AdamWSetState);
  MM_EXPORT(exports, "adamwFree", AdamWFree);
  MM_EXPORT(exports, "clipGradNorm", ClipGradNorm);
}

}  // namespace mm
