{
  "targets": [
    {
      "target_name": "mmtrain_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/handles.cc",
        "native/src/ops_create.cc",
        "native/src/ops_math.cc",
        "native/src/ops_nn.cc",
        "native/src/ops_train.cc",
        "native/src/optim.cc",
        "native/src/distributed.cc",
        "native/src/device.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node native/libtorch.cjs include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "<!@(node native/libtorch.cjs defines)"
      ],
      "cflags_cc!": ["-fno-rtti", "-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["<!@(node native/libtorch.cjs ldflags)"],
      "libraries": ["<!@(node native/libtorch.cjs ldflags)"]
    },
    {
      "target_name": "mmtrain_image",
      "sources": ["native/image/addon.cc", "native/image/resample.cc", "native/image/jpeg.cc", "native/image/snappy.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "<!@(node native/image-libs.cjs defines)"],
      "libraries": ["<!@(node native/image-libs.cjs libs)"],
      "cflags_cc!": ["-fno-rtti", "-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-Wno-unused-parameter"]
    }
  ]
}
