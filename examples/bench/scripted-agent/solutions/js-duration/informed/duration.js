'use strict';

/** Seconds in a duration written like "1h30m", "45s" or "2h". */
function parseDuration(text) {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(String(text).trim());
  if (!m || !(m[1] || m[2] || m[3])) {
    throw new TypeError(`not a duration: ${JSON.stringify(text)}`);
  }
  return Number(m[1] || 0) * 3600 + Number(m[2] || 0) * 60 + Number(m[3] || 0);
}

module.exports = { parseDuration };
