// Builds src/ into dist/eddy.js: one minified IIFE for es2017, no source map.
// Eddy embeds dist/ (embed.go) and serves it after `window.__eddyConfig=…;`.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const outfile = new URL('./dist/eddy.js', import.meta.url).pathname;

await build({
  entryPoints: [new URL('./src/index.ts', import.meta.url).pathname],
  outfile,
  bundle: true,
  format: 'iife',
  target: 'es2017',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  define: { __VERSION__: JSON.stringify(version) },
  logLevel: 'warning',
});

const code = readFileSync(outfile);
console.log(`dist/eddy.js: ${code.length} bytes, ${gzipSync(code).length} gzipped`);
