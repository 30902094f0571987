#!/usr/bin/env node
// Whether libjpeg's headers are here, for binding.gyp's mmtrain_image target: `node native/jpeg.cjs defines|libs`.
// With them (Debian: libjpeg-dev, i.e. libjpeg62-turbo-dev) JPEGs are decoded by the addon directly (jpeg.cc);
// without them the addon builds anyway and every image goes through sharp, slower for small JPEGs.
'use strict';
const { spawnSync } = require('node:child_process');

const cxx = process.env.CXX || 'c++';
const probe = spawnSync(cxx, ['-E', '-x', 'c++', '-'], { input: '#include <cstdio>\n#include <jpeglib.h>\n', encoding: 'utf8' });
const found = probe.status === 0;
const what = process.argv[2];
if (what === 'defines') process.stdout.write(found ? 'MMTRAIN_JPEG' : '');
else if (what === 'libs') process.stdout.write(found ? '-ljpeg' : '');
else {
  process.stderr.write('usage: node native/jpeg.cjs defines|libs\n');
  process.exit(1);
}
if (!found && what === 'defines') {
  process.stderr.write('mmtrain: libjpeg headers not found (apt-get install libjpeg-dev); JPEGs will be decoded by sharp, which is slower.\n');
}
