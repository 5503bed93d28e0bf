/**
 * Chinese licence plates (GA 36-2018): a province character, the issuing city's letter, then five
 * letters or digits; new-energy plates have six; trailers, learner cars, police, Hong Kong and Macao
 * vehicles end in a character. The letters I and O are never used, to keep them apart from 1 and 0.
 */
export const PROVINCES = '京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼';

const LETTER = 'A-HJ-NP-Z';
const PLATE_FORMS: RegExp[] = [
  new RegExp(`^[${PROVINCES}][${LETTER}][${LETTER}0-9]{5}$`),
  new RegExp(`^[${PROVINCES}][${LETTER}][${LETTER}0-9]{4}[挂学警港澳]$`),
  // New energy: small vehicles start with D/F (and, since 2022, other letters A–K), large ones end with it.
  new RegExp(`^[${PROVINCES}][${LETTER}][A-HJK][${LETTER}0-9][0-9]{4}$`),
  new RegExp(`^[${PROVINCES}][${LETTER}][0-9]{5}[A-HJK]$`),
];

/** Spaces, the separator dot and full-width forms are how plates are typed; none of them is part of the plate. */
export function normalisePlate(input: string): string {
  return input.normalize('NFKC').replace(/[\s·•.\-_]/g, '').toUpperCase();
}

/** The reason a normalised plate is not valid, or null. */
export function plateProblem(plate: string): string | null {
  if (!plate) return 'is required';
  const chars = [...plate];
  if (!PROVINCES.includes(chars[0]!)) return `"${chars[0]}" is not a province abbreviation (京, 沪, 粤, ...)`;
  if (/[IO]/.test(plate)) return 'letters I and O are not used on plates';
  if (chars.length < 7 || chars.length > 8) return `expected 7 characters (8 for new-energy vehicles), got ${chars.length}`;
  if (PLATE_FORMS.some((re) => re.test(plate))) return null;
  return 'expected a province, a city letter and five letters or digits (粤A12345), six for new-energy vehicles (粤AD12345), or four and 挂/学/警/港/澳';
}
