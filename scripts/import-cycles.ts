// Lists import cycles among the TypeScript files under a folder (default src/): `npm run cycles`. Exits 1 when there
// is one. Imports are read with the TypeScript compiler's own pre-processor (static imports, `export ... from` and
// dynamic `import()` alike) and resolved as relative paths; package imports are not followed.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The project's own .ts files under `root`, each with the files it imports. */
export function importGraph(root: string): Map<string, string[]> {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) files.push(p);
    }
  };
  walk(root);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const info = ts.preProcessFile(readFileSync(f, 'utf8'), true, true);
    const deps = info.importedFiles.map((i) => i.fileName).filter((n) => n.startsWith('.'))
      .map((n) => resolve(dirname(f), n.replace(/\.js$/, '.ts')))
      .filter((p) => existsSync(p));
    graph.set(f, [...new Set(deps)]);
  }
  return graph;
}

/** Every elementary cycle's files, found by a depth-first search from each file (each cycle reported once). */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') {
        const cycle = stack.slice(stack.indexOf(d));
        const key = [...cycle].sort().join('|');
        if (!seen.has(key)) { seen.add(key); cycles.push(cycle); }
      } else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return cycles;
}

const main = resolve(fileURLToPath(import.meta.url)) === resolve(process.argv[1] ?? '');
if (main) {
  const here = dirname(fileURLToPath(import.meta.url));
  const projectRoot = resolve(here, existsSync(join(here, '..', 'package.json')) ? '..' : '../..');
  const root = resolve(projectRoot, process.argv[2] ?? 'src');
  const cycles = findCycles(importGraph(root));
  for (const c of cycles) console.log(`cycle: ${[...c, c[0]!].map((f) => relative(projectRoot, f)).join(' -> ')}`);
  console.log(`${cycles.length} import cycle(s) under ${relative(projectRoot, root) || '.'}`);
  process.exit(cycles.length ? 1 : 0);
}
