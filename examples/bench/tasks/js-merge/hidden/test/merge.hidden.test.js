'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { mergeSettings } = require('../merge');

test('nested objects are merged key by key', () => {
  const merged = mergeSettings({ db: { host: 'a', port: 1 } }, { db: { port: 2 } });
  assert.deepStrictEqual(merged, { db: { host: 'a', port: 2 } });
});

test('the arguments are left as they were', () => {
  const base = { db: { host: 'a', port: 1 }, tags: ['x'] };
  const override = { db: { port: 2 }, tags: ['y'] };
  const merged = mergeSettings(base, override);
  assert.deepStrictEqual(base, { db: { host: 'a', port: 1 }, tags: ['x'] });
  assert.deepStrictEqual(override, { db: { port: 2 }, tags: ['y'] });
  assert.deepStrictEqual(merged.tags, ['y']);
  merged.db.port = 99;
  assert.strictEqual(override.db.port, 2);
});
