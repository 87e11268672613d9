'use strict';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const copy = (v) => (Array.isArray(v) ? v.map(copy) : isObject(v) ? mergeSettings({}, v) : v);

/** Settings from `base` with `override` laid over them, nested objects merged too. */
function mergeSettings(base, override) {
  const out = {};
  for (const [key, value] of Object.entries(base)) out[key] = copy(value);
  for (const [key, value] of Object.entries(override)) {
    out[key] = isObject(out[key]) && isObject(value) ? mergeSettings(out[key], value) : copy(value);
  }
  return out;
}

module.exports = { mergeSettings };
