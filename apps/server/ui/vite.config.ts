// The browser UI of stowage-server: built into ../dist/ui, served by the server at /ui/.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  // `npx vite` in this directory: the page on :5173/ui/, its API from a running server
  server: {
    proxy: Object.fromEntries(
      ['/v2', '/ui/api'].map((path) => [path, process.env['STOWAGE_URL'] ?? 'http://127.0.0.1:5000']),
    ),
  },
  // no public/ directory: everything the page needs is imported from index.html
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    // one script and one stylesheet, both from index.html: nothing to preload
    modulePreload: { polyfill: false },
  },
});
