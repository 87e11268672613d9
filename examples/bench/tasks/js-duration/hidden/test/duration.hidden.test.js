'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { parseDuration } = require('../duration');

test('hours, minutes and seconds together', () => {
  assert.strictEqual(parseDuration('1h30m15s'), 5415);
  assert.strictEqual(parseDuration('45s'), 45);
  assert.strictEqual(parseDuration('90m'), 5400);
});

test('text that is not a duration is rejected, not read as 0', () => {
  assert.throws(() => parseDuration('soon'), TypeError);
  assert.throws(() => parseDuration('10x'), TypeError);
  assert.throws(() => parseDuration(''), TypeError);
});
