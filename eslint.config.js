// ESLint (flat config): `npm run lint`, run first by `npm test`. ESLint's and typescript-eslint's recommended rules
// (no type information: linting stays fast and needs no build) on the TypeScript and on the addon's build scripts.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'runs/', 'bench/.data/', 'bench/results/', 'artifacts/', '.scratch/'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    rules: {
      // `any` is how this code types parsed JSON read by field name (metrics records, tokenizer.json, bench results,
      // fixtures); tsc's strict mode checks everything else
      '@typescript-eslint/no-explicit-any': 'off',
      // unused names are tsc's job (noUnusedLocals in tsconfig.json): one check, one place to silence it
      '@typescript-eslint/no-unused-vars': 'off',
    },
  },
  {
    files: ['**/*.cjs'],
    extends: [js.configs.recommended],
    // the globals these CommonJS scripts use
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly' },
    },
  },
  {
    files: ['**/*.js'],
    extends: [js.configs.recommended],
  },
);
