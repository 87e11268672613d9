'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { parseDuration } = require('../duration');

test('hours', () => {
  assert.strictEqual(parseDuration('2h'), 7200);
});
