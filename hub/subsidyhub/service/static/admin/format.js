// @ts-check
// How the admin page shows money and time: the rule of the service's Python formatter
// (subsidyhub.money.format_money, subsidyhub.timeutil.format_duration) and of the lab
// extension's format.ts, in plain JavaScript for a page with no build step. Amounts are
// rounded half to even to the currency's minor units with BigInt arithmetic, never floats.
// tests/unit/test_display_cases.py runs these functions on tests/data/display_cases.json,
// the cases every formatter must show alike (docs/decisions/display.md).

/** @typedef {{ code: string, symbol: string, minor_units: number }} CurrencyDisplay */

const MICRO_DIGITS = 6;
// A true minus sign (U+2212), as the service writes it.
const MINUS = "\u2212";

/** A decimal string ("412.304512") as integer micro-units. @param {string} text */
export function toMicro(text) {
  const negative = text.startsWith("-");
  const [whole, frac = ""] = text.replace(/^[-+]/, "").split(".");
  const micro = BigInt(whole || "0") * 1000000n + BigInt((frac + "000000").slice(0, MICRO_DIGITS));
  return negative ? -micro : micro;
}

/** Micro-units rounded half to even to units of 10^-minorUnits. @param {bigint} micro @param {number} minorUnits */
function toMinor(micro, minorUnits) {
  const step = 10n ** BigInt(MICRO_DIGITS - minorUnits);
  const negative = micro < 0n;
  const size = negative ? -micro : micro;
  let minor = size / step;
  const twice = 2n * (size % step);
  if (twice > step || (twice === step && minor % 2n === 1n)) minor += 1n;
  return negative ? -minor : minor;
}

/**
 * "HK$1,234.50", "−HK$3.20", "JP¥1,235"; an amount that rounds to zero has no sign.
 * @param {string | bigint} amount a decimal string or micro-units
 * @param {CurrencyDisplay} display
 */
export function money(amount, display) {
  const minor = toMinor(typeof amount === "bigint" ? amount : toMicro(amount), display.minor_units);
  const size = minor < 0n ? -minor : minor;
  const scale = 10n ** BigInt(display.minor_units);
  const whole = (size / scale).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const fraction = display.minor_units > 0 ? "." + (size % scale).toString().padStart(display.minor_units, "0") : "";
  return `${minor < 0n ? MINUS : ""}${display.symbol}${whole}${fraction}`;
}

/**
 * "< 1 m", "4 m", "3 h 12 m" (under two days), "21 d 6 h"; cut down to the whole minute, so a
 * time left never promises more than there is.
 * @param {number} seconds
 */
export function duration(seconds) {
  const minutes = Math.floor(Math.max(0, seconds) / 60);
  if (minutes < 1) return "< 1 m";
  const hours = Math.floor(minutes / 60);
  if (hours < 1) return `${minutes} m`;
  if (hours < 48) return `${hours} h ${minutes % 60} m`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}
