'use strict';

/** Seconds in a duration written like "1h30m", "45s" or "2h". */
function parseDuration(text) {
  const part = (unit) => {
    const m = new RegExp('(\\d+)' + unit).exec(text);
    return m ? Number(m[1]) : 0;
  };
  return part('h') * 3600 + part('m') * 60 + part('s');
}

module.exports = { parseDuration };
