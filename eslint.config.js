import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'certs/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', setImmediate: 'readonly', queueMicrotask: 'readonly', structuredClone: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', performance: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'error',
    },
  },
  {
    // undici is the proxy's business: everything else goes through src/proxy (STYLE.md rule 10)
    files: ['src/**/*.ts', 'plugins/**/*.ts'],
    ignores: ['src/proxy/**', 'src/http-client/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [{ name: 'undici', message: 'only src/proxy and src/http-client import undici' }, { name: 'http-proxy', message: 'only src/proxy may import http-proxy' }] }] },
  },
  {
    // a plugin sees the core through src/plugin-api.ts only (Kong's PDK), every plugin, no exception
    files: ['plugins/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'undici', message: 'only src/proxy and src/http-client import undici' }, { name: 'http-proxy', message: 'only src/proxy may import http-proxy' }],
        patterns: [{ group: ['**/src/**', '!**/src/plugin-api.js'], message: 'plugins import the core through src/plugin-api.js only' }],
      }],
    },
  },
  {
    files: ['src/cli.ts', 'bench/**', 'test/**', 'scripts/**', 'bin/**'],
    rules: { 'no-console': 'off' },
  },
)
