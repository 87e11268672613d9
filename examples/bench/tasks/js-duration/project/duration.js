'use strict';

/** Seconds in a duration written like "1h30m", "45s" or "2h". */
function parseDuration(text) {
  const m = /(\d+)h/.exec(text);
  return m ? Number(m[1]) * 3600 : 0;
}

module.exports = { parseDuration };
