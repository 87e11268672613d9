'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { mergeSettings } = require('../merge');

test('top-level keys are overridden', () => {
  assert.deepStrictEqual(mergeSettings({ a: 1, b: 2 }, { b: 3 }), { a: 1, b: 3 });
});
