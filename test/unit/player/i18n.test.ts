import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import ts from 'typescript';
import { errorCodes, errorReasons, issueRules } from '../../../gateway/src/errors.js';

/**
 * Every message the player shows reads in Chinese and in English: each GW_ERR_* code of docs/errors.md
 * (with each reason and rule the gateway names), and each key the player's sources pass to t().
 */

// i18n.ts keeps the language in localStorage and on <html lang>; outside a browser these stand in.
const stored = new Map<string, string>();
Object.assign(globalThis, {
  localStorage: { getItem: (k: string) => stored.get(k) ?? null, setItem: (k: string, v: string) => void stored.set(k, v) },
  document: { documentElement: {} },
});
const { chooseLanguage, translationOf } = await import('../../../player/src/lib/i18n.js');
const { codeText, issueText, errorText, healthReason, statusReason } = await import('../../../player/src/lib/errors.js');
const { ApiError } = await import('../../../player/src/lib/api.js');
const { ControlError } = await import('../../../player/src/lib/control.js');

const root = new URL('../../../', import.meta.url);
const doc = readFileSync(new URL('docs/errors.md', root), 'utf8');
const section = (title: string) => doc.split(/^## /m).find((s) => s.startsWith(title)) ?? '';
const paramList = (cell: string) => (cell.trim() === '—' ? [] : [...cell.matchAll(/`(\w+)`/g)].map((m) => m[1]!));

const documentedCodes = [...doc.matchAll(/^\| `(GW_ERR_[A-Z_]+)` \| \d{3} \|/gm)].map((m) => m[1]!);
const documentedReasons: Record<string, Record<string, string[]>> = {};
for (const m of section('Parameters').matchAll(/^\| `(GW_ERR_[A-Z_]+)` \| `(\w+)` \| ([^|]*) \|/gm)) {
  (documentedReasons[m[1]!] ??= {})[m[2]!] = paramList(m[3]!);
}
const documentedRules: Record<string, string[]> = {};
for (const m of section('Refused fields').matchAll(/^\| `(\w+)` \| ([^|]*) \|/gm)) documentedRules[m[1]!] = paramList(m[2]!);

const HAN = /\p{Script=Han}/u;
const PLACEHOLDER = /\{(\w+)\}/g;
const placeholders = (text: string) => [...text.matchAll(PLACEHOLDER)].map((m) => m[1]!);

/** Both texts of a key: present, not empty, and using the same placeholders. */
function checkPair(t: Test, key: string, pair = translationOf(key)): void {
  if (!pair) return void t.fail(`${key} has no translation`);
  const [en, zh] = pair;
  t.ok(en.trim() && zh.trim(), `${key} has English and Chinese`);
  t.same(placeholders(zh).sort(), placeholders(en).sort(), `${key}: both languages fill in the same parameters`);
}

/** An error's or a rule's Chinese is Chinese (a player string may be a code name, a unit or a language's own name). */
function checkChinese(t: Test, key: string): void {
  const zh = translationOf(key)?.[1] ?? '';
  t.ok(HAN.test(zh), `${key}: the Chinese text is Chinese ("${zh}")`);
}

/** A value for each parameter, recognisable in the sentence. */
const sample = (names: readonly string[]) => Object.fromEntries(names.map((n, i) => [n, `‹${n}${i}›`]));

t.test('docs/errors.md documents each reason and rule as gateway/src/errors.ts declares it', async (t) => {
  t.same(documentedCodes.sort(), Object.keys(errorCodes).sort(), 'the codes');
  t.same(documentedReasons, JSON.parse(JSON.stringify(errorReasons)), 'each code’s reasons and their parameters');
  t.same(documentedRules, JSON.parse(JSON.stringify(issueRules)), 'each rule of a refused field and its parameters');
});

t.test('every code of docs/errors.md, each of its reasons and each field rule has English and Chinese', async (t) => {
  const keys = [
    ...documentedCodes.map((code) => `err.${code}`),
    ...Object.entries(documentedReasons).flatMap(([code, reasons]) => Object.keys(reasons).map((reason) => `err.${code}.${reason}`)),
    ...Object.keys(documentedRules).map((rule) => `rule.${rule}`),
  ];
  for (const key of keys) {
    checkPair(t, key);
    checkChinese(t, key);
  }
});

t.test('each code renders in both languages with its parameters, none left unfilled', async (t) => {
  for (const lang of ['en', 'zh'] as const) {
    chooseLanguage(lang);
    for (const code of documentedCodes) {
      const text = codeText({ code, message: 'the English message', params: null });
      t.notMatch(text, PLACEHOLDER, `${lang} ${code}: "${text}"`);
      t.equal(HAN.test(text), lang === 'zh', `${lang} ${code} is in ${lang}`);
    }
    for (const [code, reasons] of Object.entries(documentedReasons)) {
      for (const [reason, names] of Object.entries(reasons)) {
        const params = { reason, ...sample(names) };
        const text = codeText({ code, message: 'the English message', params });
        t.notMatch(text, PLACEHOLDER, `${lang} ${code}.${reason}: "${text}"`);
        for (const name of placeholders(translationOf(`err.${code}.${reason}`)![0])) t.match(text, params[name as keyof typeof params]!, `${lang} ${code}.${reason} says its ${name}`);
        t.equal(HAN.test(text), lang === 'zh', `${lang} ${code}.${reason} is in ${lang}`);
        const detailed = codeText({ code, message: 'm', params: { ...params, detail: 'Connection refused' } });
        t.match(detailed, /Connection refused/, `${lang} ${code}.${reason} keeps ffmpeg's detail`);
      }
    }
    for (const [rule, names] of Object.entries(documentedRules)) {
      // An English page shows the gateway's own message for a field; the rule's sentence stands in without one.
      const text = issueText({ field: 'name', message: '', rule, params: sample(names) });
      t.notMatch(text, PLACEHOLDER, `${lang} rule ${rule}: "${text}"`);
      t.equal(HAN.test(text), lang === 'zh', `${lang} rule ${rule} is in ${lang}`);
    }
  }
});

t.test('the errors a page meets read in its language, from the code and parameters the gateway sent', async (t) => {
  chooseLanguage('zh');
  const capacity = new ApiError(503, 'GW_ERR_CAPACITY', 'the gateway is pulling its maximum of 2 cameras (streams.limits.sessions)', [], {
    code: 'GW_ERR_CAPACITY',
    message: 'the gateway is pulling its maximum of 2 cameras (streams.limits.sessions)',
    params: { reason: 'sessions', limit: 2 },
  });
  t.equal(errorText(capacity), '网关拉流路数已达上限（2 路）。', 'which cap, in Chinese');
  const locked = new ControlError('GW_ERR_LOCKED', 'tile s1-2 is locked by op1', { code: 'GW_ERR_LOCKED', params: { reason: 'tile', tile: 's1-2', user: 'op1' } });
  t.equal(errorText(locked), '窗口 s1-2 已被 op1 锁定。', 'who holds the lock');
  const refused = new ApiError(400, 'GW_ERR_VALIDATION', 'name: is required', [{ field: 'name', message: 'is required', rule: 'required' }, { field: 'x', message: 'odd' }]);
  t.equal(errorText(refused), 'name：为必填项；x：不符合要求：odd', 'each refused field by its rule, an unknown one by its message');
  const tile = { reason: 'the camera is unreachable: Connection refused', code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'unreachable', detail: 'Connection refused' } };
  t.equal(statusReason(tile), '无法连接摄像机（Connection refused）', "a tile's failure from its code, ffmpeg's words as the detail, ready to go inside the badge");
  t.equal(statusReason({ reason: 'an old gateway', code: null, params: null }), 'an old gateway', 'a state without a code: its reason as sent');
  t.equal(errorText(new ApiError(418, 'GW_ERR_NEW_ONE', 'something new', [], { code: 'GW_ERR_NEW_ONE', message: 'something new' })), 'something new', 'a code the page does not know: the message');
  chooseLanguage('en');
  t.equal(errorText(capacity), 'The gateway is already pulling its maximum of 2 cameras.', 'and in English');
  t.equal(errorText(locked), 'Tile s1-2 is locked by op1.');
  t.equal(statusReason(tile), 'The camera cannot be reached (Connection refused)');
  t.equal(errorText(refused), 'name: is required; x: odd', 'an English page shows the gateway’s own words for each field');
});

t.test("a camera's stored health reason reads in the page's language from its code, or as stored when it has none", async (t) => {
  const stored = { error: 'the camera is unreachable: Connection refused', code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'unreachable', detail: 'Connection refused' } };
  const stalled = { error: 'no video for 3000 ms', code: 'GW_ERR_CAMERA_UNREACHABLE', params: { reason: 'stalled', ms: 3000 } };
  const beforeCodes = { error: 'the camera is unreachable: Connection refused', code: null, params: null };
  chooseLanguage('zh');
  t.equal(healthReason(stored), '无法连接摄像机（Connection refused）。', "in Chinese, ffmpeg's words as the detail");
  t.equal(healthReason(stalled), '摄像机 3000 毫秒内未发送视频。', 'filled from its parameters');
  t.equal(healthReason(beforeCodes), beforeCodes.error, 'a row stored before codes were kept: its English message');
  t.equal(healthReason({ error: null, code: null, params: null }), null, 'online: no reason');
  chooseLanguage('en');
  t.equal(healthReason(stored), 'The camera cannot be reached (Connection refused).');
  t.equal(healthReason(stalled), 'The camera sent no video for 3000 ms.');
});

/** Every .ts file under player/src. */
function sources(dir: URL): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir.pathname, name);
    if (statSync(path).isDirectory()) out.push(...sources(new URL(`${name}/`, dir)));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/**
 * Keys built at run time, each with the values it takes: a new value of one of these (a new role, a
 * new column) must be listed here, and then needs its translation.
 */
const DYNAMIC_KEYS: Record<string, () => Promise<string[]>> = {
  'audit.outcome.${}': async () => ['ok', 'denied', 'failed'],
  'admin.level.${}': async () => [...(await import('../../../gateway/src/store/types.js')).LEVELS],
  'health.${}': async () => [...(await import('../../../gateway/src/store/types.js')).HEALTH],
  'sessions.${}': async () => ['main', 'sub'],
  'sessions.col.${}': async () => ['camera', 'profile', 'state', 'readers', 'uptime', 'bitrate', 'video', 'error', 'actions'],
  'health.col.${}': async () => ['department', 'bar', 'counts'],
  'import.count.${}': async () => ['rows', 'created', 'updated', 'unchanged', 'rejected'],
  'sessions.state.${}': async () => ['idle', 'starting', 'ready', 'retrying', 'lingering', 'closed'],
  'role.${}': async () => [...(await import('../../../gateway/src/store/types.js')).ROLES],
  // The wall changes the activity list names (a delta's cause; a cleared tile is told apart).
  'cause.${}': async () => ['tile.assign', 'tile.clear', 'layout.set', 'lock', 'unlock', 'lock.break', 'tour.start', 'tour.stop', 'tour.rotate', 'tour.resume', 'preset.recall', 'plan.activate', 'plan.revert', 'popup.show', 'popup.clear', 'popup.dismiss', 'wall.rename'],
  'vehicle.${}': async () => ['online', 'offline'],
  'mini.status.${}': async () => ['idle', 'starting', 'live', 'retrying', 'offline'],
  'popout.${}': async () => ['main', 'sub'],
  'category.${}': async () => [...(await import('../../../gateway/src/vehicles/model.js')).VEHICLE_CATEGORIES],
  'category.short.${}': async () => [...(await import('../../../gateway/src/vehicles/model.js')).VEHICLE_CATEGORIES],
  'alarmType.${}': async () => [...(await import('../../../gateway/src/vehicles/model.js')).ALARM_TYPES],
  'severity.${}': async () => [...(await import('../../../gateway/src/vehicles/model.js')).SEVERITIES],
  'alarmState.${}': async () => ['raised', 'acknowledged', 'closed'],
  'plateColor.${}': async () => [...(await import('../../../gateway/src/vehicles/model.js')).PLATE_COLORS],
  'gb.mode.${}': async () => [...(await import('../../../gateway/src/store/types.js')).GB_STREAM_MODES],
  'gb.reason.${}': async () => [...(await import('../../../gateway/src/store/types.js')).GB_REFUSAL_REASONS],
  'jt.reason.${}': async () => [...(await import('../../../gateway/src/store/types.js')).JT_REFUSAL_REASONS],
};

t.test('every key the player passes to t() has English and Chinese', async (t) => {
  const literal: Array<{ key: string; at: string }> = [];
  const templates: Array<{ key: string; at: string }> = [];
  const registered = new Map<string, [string, string] | null>();
  // Helpers that take a key and hand it to t(): their call sites' literal arguments are keys too.
  const keyTakers = new Set(['f', 'th', 'field', 'row', 'tableHead']);
  for (const file of sources(new URL('player/src/', root))) {
    const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const at = (n: ts.Node) => `${file.replace(root.pathname, '')}:${src.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
    const visit = (n: ts.Node) => {
      if (ts.isCallExpression(n) && ts.isIdentifier(n.expression)) {
        const name = n.expression.text;
        const [arg] = n.arguments;
        if (name === 'addStrings' && arg && ts.isObjectLiteralExpression(arg)) {
          for (const p of arg.properties) {
            if (!ts.isPropertyAssignment(p) || !(ts.isStringLiteral(p.name) || ts.isIdentifier(p.name))) continue;
            const texts = ts.isArrayLiteralExpression(p.initializer) ? p.initializer.elements.map((e) => (ts.isStringLiteralLike(e) ? e.text : '')) : [];
            const [en = '', zh = ''] = texts;
            registered.set(p.name.text, texts.length === 2 ? [en, zh] : null);
          }
        } else if (name === 't' && arg) {
          if (ts.isStringLiteral(arg) || ts.isNoSubstitutionTemplateLiteral(arg)) literal.push({ key: arg.text, at: at(n) });
          else if (ts.isTemplateExpression(arg)) templates.push({ key: arg.head.text + arg.templateSpans.map((s) => '${}' + s.literal.text).join(''), at: at(n) });
        } else if (name === 'tableHead' && arg && ts.isStringLiteral(arg) && n.arguments[1] && ts.isArrayLiteralExpression(n.arguments[1])) {
          for (const c of n.arguments[1].elements) if (ts.isStringLiteral(c)) literal.push({ key: `${arg.text}.col.${c.text}`, at: at(n) });
        } else if (keyTakers.has(name)) {
          for (const a of n.arguments) if (ts.isStringLiteral(a) && /^[a-z][A-Za-z]*\.[\w.]+$/.test(a.text)) literal.push({ key: a.text, at: at(n) });
        }
      }
      // Keys kept in tables for later: `label: 'nav.console'`, `title: 'console.title'`.
      if (ts.isPropertyAssignment(n) && ts.isIdentifier(n.name) && ['label', 'title'].includes(n.name.text) && ts.isStringLiteral(n.initializer)) {
        if (/^[a-z][A-Za-z]*\.[\w.]+$/.test(n.initializer.text)) literal.push({ key: n.initializer.text, at: at(n) });
      }
      ts.forEachChild(n, visit);
    };
    visit(src);
  }
  t.ok(literal.length > 300, `the scan finds the player's keys (${literal.length})`);
  const check = (key: string, at: string) => {
    if (!registered.has(key)) t.fail(`${key} (${at}) has no translation`);
    else checkPair(t, key, registered.get(key) ?? undefined);
  };
  for (const { key, at } of literal) check(key, at);
  for (const { key, at } of templates) {
    if (key === 'err.${}.${}' || key === 'err.${}' || key === 'rule.${}' || key === '${}.col.${}') continue; // checked above, and by tableHead's callers
    const values = DYNAMIC_KEYS[key];
    if (!values) {
      t.fail(`${at}: t(\`${key}\`) builds its key at run time; list the values it takes in DYNAMIC_KEYS`);
      continue;
    }
    for (const v of await values()) {
      check(key.replace('${}', v), at);
    }
  }
});

t.test("a vehicle offline since a time reads it on the viewer's clock, with the date when not today", async (t) => {
  const today = new Date();
  today.setHours(14, 2, 0, 0);
  const params = { reason: 'vehicleOffline', vehicle: 'v1', since: today.getTime() };
  chooseLanguage('en');
  t.equal(codeText({ code: 'GW_ERR_CAMERA_UNREACHABLE', message: 'm', params }), 'Vehicle offline since 14:02.');
  chooseLanguage('zh');
  t.equal(codeText({ code: 'GW_ERR_CAMERA_UNREACHABLE', message: 'm', params }), '车辆自 14:02 起离线。');
  const earlier = new Date(2026, 0, 5, 9, 30).getTime();
  chooseLanguage('en');
  t.equal(codeText({ code: 'GW_ERR_CAMERA_UNREACHABLE', message: 'm', params: { ...params, since: earlier } }), 'Vehicle offline since 05/01/2026 09:30.');
});
