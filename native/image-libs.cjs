#!/usr/bin/env node
// The optional libraries of the mmtrain_image addon, for binding.gyp: `node native/image-libs.cjs defines|libs`.
// Each is used when its headers are here, and the addon builds without it otherwise:
//   libjpeg (Debian: libjpeg-dev)        JPEGs decoded by the addon directly (image/jpeg.cc); else by sharp, slower
//   snappy  (Debian: libsnappy-dev)      Parquet's snappy pages decompressed natively (image/snappy.cc); else by
//                                        hysnappy (WebAssembly), slower on large pages
'use strict';
const { spawnSync } = require('node:child_process');

const LIBS = [
  { name: 'libjpeg', header: '#include <cstdio>\n#include <jpeglib.h>\n', define: 'MMTRAIN_JPEG', lib: '-ljpeg', pkg: 'libjpeg-dev', without: 'JPEGs will be decoded by sharp, which is slower' },
  { name: 'snappy', header: '#include <snappy-c.h>\n', define: 'MMTRAIN_SNAPPY', lib: '-lsnappy', pkg: 'libsnappy-dev', without: 'Parquet pages will be decompressed in WebAssembly, which is slower' },
];

const cxx = process.env.CXX || 'c++';
const found = LIBS.filter((l) => spawnSync(cxx, ['-E', '-x', 'c++', '-'], { input: l.header, encoding: 'utf8' }).status === 0);
const what = process.argv[2];
if (what === 'defines') {
  process.stdout.write(found.map((l) => l.define).join(' '));
  for (const l of LIBS.filter((x) => !found.includes(x))) process.stderr.write(`mmtrain: ${l.name} headers not found (apt-get install ${l.pkg}); ${l.without}.\n`);
} else if (what === 'libs') {
  process.stdout.write(found.map((l) => l.lib).join(' '));
} else {
  process.stderr.write('usage: node native/image-libs.cjs defines|libs\n');
  process.exit(1);
}
