// The built script: small, self-contained, no source map.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const code = readFileSync(new URL('../dist/eddy.js', import.meta.url), 'utf8');

test('dist/eddy.js is at most 8 KB gzipped', () => {
  const size = gzipSync(code).length;
  assert.ok(size <= 8192, `${size} bytes gzipped`);
});

test('dist/eddy.js is one IIFE with no imports and no source map', () => {
  assert.match(code, /^"use strict";\(\(\)=>\{/);
  assert.doesNotMatch(code, /sourceMappingURL|\brequire\(|\bimport\s*[({"']/);
});
