'use strict';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Settings from `base` with `override` laid over them, nested objects merged too. */
function mergeSettings(base, override) {
  for (const key of Object.keys(override)) {
    if (isObject(base[key]) && isObject(override[key])) {
      mergeSettings(base[key], override[key]);
    } else {
      base[key] = override[key];
    }
  }
  return base;
}

module.exports = { mergeSettings };
