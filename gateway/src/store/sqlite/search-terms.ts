/**
 * Text search for the SQLite store. A contentless FTS5 table (detail=none, so it holds no
 * positions and stays small) indexes, per source, the trigrams of its normalised id, name and
 * address, the last two characters of each (so two-character queries find a match at the end),
 * and one token per ancestor department (so a scoped search intersects in the index instead of
 * filtering rows afterwards). The index only narrows: every hit is checked against `search_key`,
 * so results are exact substring matches. Chinese needs no word segmentation this way.
 */

/** Lower case, letters and digits only: "东城区 解放路-1号" and "解放路1号" meet. */
export function normalise(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
}

/**
 * Department tokens are longer than any gram, so they never equal one; the odd prefix keeps a
 * two-character query (a prefix match) from reaching them in practice.
 */
function departmentToken(id: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `zqx${(h >>> 0).toString(36)}`;
}

export function departmentTokens(deptPath: string): string {
  return deptPath
    .split('/')
    .filter(Boolean)
    .map(departmentToken)
    .join(' ');
}

/** The normalised fields joined by a character a query can never contain, so no match spans two fields. */
export function searchKey(id: string, name: string, address: string): string {
  return `${normalise(id)}\u0001${normalise(name)}\u0001${normalise(address)}`;
}

/** The document indexed for one source. */
export function searchDocument(key: string, deptPath: string): string {
  let out = '';
  for (const field of key.split('\u0001')) {
    if (field.length < 3) {
      if (field) out += field + ' ';
      continue;
    }
    for (let i = 0; i + 2 < field.length; i++) out += field.substr(i, 3) + ' ';
    out += field.substr(field.length - 2) + ' ';
  }
  return out + departmentTokens(deptPath);
}

/**
 * The FTS5 query for a normalised needle of two or more characters: up to three of its trigrams
 * (first, middle, last: enough to be selective; the key check does the rest), or for two characters
 * a prefix of the trigrams that start with them (or the tail bigram itself). Subtree paths, when
 * given, restrict the hits to those departments' subtrees inside the index.
 */
export function matchExpression(needle: string, subtreePaths: string[]): string {
  let text: string;
  if (needle.length === 2) {
    text = `"${needle}"*`;
  } else {
    const grams: string[] = [];
    for (let i = 0; i + 2 < needle.length; i++) grams.push(needle.substr(i, 3));
    // Spread toward the end: ids and addresses share their leading codes and words, so the tail is more selective.
    const last = grams.length - 1;
    const picked = grams.length <= 3 ? grams : [grams[Math.floor(last / 3)]!, grams[Math.floor((2 * last) / 3)]!, grams[last]!];
    text = [...new Set(picked)].map((g) => `"${g}"`).join(' AND ');
  }
  if (!subtreePaths.length) return text;
  const tops = subtreePaths.map((p) => departmentToken(p.split('/').filter(Boolean).pop()!));
  return `(${text}) AND (${[...new Set(tops)].join(' OR ')})`;
}
