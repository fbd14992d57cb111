/**
 * Preload (`node --import`) that sets this process's wall clock CLOCK_SHIFT_MS off the machine's: a
 * receiving node whose clock runs ahead of (positive) or behind (negative) its callers'. Only `Date.now`
 * moves, which is the clock deadlines are read with; `performance.now` and timers keep real time, as
 * they do on a machine whose clock is simply set wrong.
 */
const shiftMs = Number(process.env.CLOCK_SHIFT_MS ?? 0);
if (!Number.isFinite(shiftMs))
  throw new Error(`CLOCK_SHIFT_MS must be a number of ms, not "${process.env.CLOCK_SHIFT_MS}"`);
const realNow = Date.now;
Date.now = () => realNow() + shiftMs;
