// Veterinary measurements from annotation points in world coordinates (mm when the image has a pixel
// spacing): length, angle, vertebral heart score (VHS) and the Norberg angle. Pure functions.

// Buchanan & Bücheler 1995 (dogs, 9.7 ± 0.5 v) and Litster & Buchanan 2000 (cats, 7.5 ± 0.3 v):
// the reference ranges a report quotes.
export const VHS_RANGES = {
  dog: { low: 8.7, high: 10.7, zh: "犬", en: "dog" },
  cat: { low: 6.9, high: 8.1, zh: "猫", en: "cat" },
};
// Norberg angle: 105° or more is taken as a normal, congruent hip (FCI / OFA practice).
export const NORBERG_NORMAL_MIN = 105;
export const DEFAULT_VERTEBRAE = 4;

export function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** The angle at vertex between the arms to a and b, in degrees (0-180). */
export function angleAt(a, vertex, b) {
  const u = [a[0] - vertex[0], a[1] - vertex[1], a[2] - vertex[2]];
  const v = [b[0] - vertex[0], b[1] - vertex[1], b[2] - vertex[2]];
  const nu = Math.hypot(...u), nv = Math.hypot(...v);
  if (!nu || !nv) return NaN;
  const cos = Math.max(-1, Math.min(1, (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (nu * nv)));
  return (Math.acos(cos) * 180) / Math.PI;
}

/** "canine", "Feline", "犬", "猫" ... -> "dog" | "cat" | null. */
export function speciesKind(text) {
  const s = String(text || "").toLowerCase();
  if (/canine|canis|dog|犬|狗/.test(s)) return "dog";
  if (/feline|felis|cat|猫/.test(s)) return "cat";
  return null;
}

/**
 * VHS from three lines: the long axis, the short axis, and a reference line drawn along `vertebrae`
 * vertebral bodies from the cranial edge of T4. Units cancel, so no pixel spacing is needed.
 */
export function vhs({ longAxis, shortAxis, reference, vertebrae = DEFAULT_VERTEBRAE, species = null }) {
  if (!(longAxis > 0 && shortAxis > 0 && reference > 0 && vertebrae > 0)) return null;
  const vertebra = reference / vertebrae;
  const long = longAxis / vertebra;
  const short = shortAxis / vertebra;
  const score = long + short;
  const range = species ? VHS_RANGES[species] : null;
  let verdict = null;
  if (range) verdict = score < range.low ? "low" : score > range.high ? "high" : "normal";
  return { long, short, score, vertebra, verdict, range };
}

export function norbergVerdict(angle) {
  if (!Number.isFinite(angle)) return null;
  return angle >= NORBERG_NORMAL_MIN ? "normal" : "low";
}
