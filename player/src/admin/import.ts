/**
 * Bulk import: a CSV or NDJSON file (or pasted text) goes to the gateway in one request, and its report
 * is shown as it came: the counts, and each bad row by line and field with the gateway's own words.
 */
import { api, ApiError, can, type FieldIssue } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { issueText } from '../lib/errors.js';
import { addStrings, formatNumber, t } from '../lib/i18n.js';
import { csvCell } from '../../../gateway/src/lib/csv.js';
import { download, errorText, field, type Section, tableHead } from './common.js';

addStrings({
  'import.title': ['Bulk import', '批量导入'],
  'import.intro': [
    'Rows are matched by id: running the same file again changes nothing. The first line of a CSV names the columns; NDJSON has one JSON object a line.',
    '按编号匹配：重复导入同一文件不会产生变化。CSV 首行为列名；NDJSON 每行一个 JSON 对象。',
  ],
  'import.file': ['File (CSV or NDJSON)', '文件（CSV 或 NDJSON）'],
  'import.paste': ['…or paste the rows', '……或粘贴数据'],
  'import.format': ['Format', '格式'],
  'import.formatAuto': ['Tell from the file', '自动识别'],
  'import.mode': ['If some rows are bad', '部分行有误时'],
  'import.keepValid': ['Keep the valid rows (keep-valid)', '保留有效行（keep-valid）'],
  'import.allOrNothing': ['Write nothing (all-or-nothing)', '全部不写入（all-or-nothing）'],
  'import.upload': ['Import', '导入'],
  'import.uploading': ['Importing…', '导入中…'],
  'import.template': ['Download a CSV template', '下载 CSV 模板'],
  'import.nothingGiven': ['Choose a file or paste rows first.', '请先选择文件或粘贴数据。'],
  'import.report': ['Import report', '导入报告'],
  'import.applied': ['Imported.', '已导入。'],
  'import.appliedWithErrors': ['Imported the valid rows; {rejected} of {rows} rows were rejected.', '已导入有效行；{rows} 行中有 {rejected} 行被拒绝。'],
  'import.notApplied': ['Nothing was written: {rejected} of {rows} rows are bad and the mode is all-or-nothing.', '未写入任何数据：{rows} 行中有 {rejected} 行有误，且模式为全部不写入。'],
  'import.count.rows': ['Rows', '总行数'],
  'import.count.created': ['Created', '新建'],
  'import.count.updated': ['Updated', '更新'],
  'import.count.unchanged': ['Unchanged', '未变化'],
  'import.count.rejected': ['Rejected', '拒绝'],
  'import.col.line': ['Line', '行号'],
  'import.col.id': ['ID', '编号'],
  'import.col.field': ['Field', '字段'],
  'import.col.message': ['Problem', '问题'],
  'import.truncated': ['The first {shown} of {total} problems are listed; download the report for all.', '仅列出前 {shown} 个问题（共 {total} 个），完整内容请下载报告。'],
  'import.downloadReport': ['Download the report (CSV)', '下载报告（CSV）'],
});

interface ImportIssue extends FieldIssue {
  line: number;
  id?: string;
}

interface ImportReport {
  mode: string;
  applied: boolean;
  rows: number;
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
  errors: ImportIssue[];
}

/** The export's columns with the write-only password after the user name (as scripts/gen-city.ts writes them). */
const TEMPLATE_COLUMNS = ['id', 'name', 'departmentId', 'level', 'address', 'url', 'subUrl', 'protocol', 'username', 'password', 'codec', 'lat', 'lon', 'tags', 'enabled'];
/** A table of tens of thousands of rows would stall the page; the download has them all. */
const MAX_LISTED = 1_000;

type Format = 'csv' | 'ndjson';
const CONTENT_TYPES: Record<Format, string> = { csv: 'text/csv', ndjson: 'application/x-ndjson' };

/** NDJSON starts with an object; anything else is taken as CSV, whose header the gateway checks. */
function guessFormat(name: string | null, text: string): Format {
  if (name && /\.(nd)?jsonl?$|\.ndjson$/i.test(name)) return 'ndjson';
  if (name && /\.csv$/i.test(name)) return 'csv';
  return text.trimStart().startsWith('{') ? 'ndjson' : 'csv';
}

function reportView(report: ImportReport): HTMLElement {
  const summary = !report.applied
    ? t('import.notApplied', { rejected: report.rejected, rows: report.rows })
    : report.rejected
      ? t('import.appliedWithErrors', { rejected: report.rejected, rows: report.rows })
      : t('import.applied');
  const counts = (['rows', 'created', 'updated', 'unchanged', 'rejected'] as const).map((k) =>
    h('div', { class: `count count-${k}`, dataset: { count: k } }, h('span', { class: 'count-value' }, formatNumber(report[k])), h('span', { class: 'count-label' }, t(`import.count.${k}`))),
  );
  const listed = report.errors.slice(0, MAX_LISTED);
  const reportCsv = () =>
    ['line,id,field,message', ...report.errors.map((e) => [e.line, e.id ?? '', e.field, e.message].map(csvCell).join(','))].join('\n') + '\n';
  return h(
    'section',
    { class: `import-report ${report.applied ? 'applied' : 'rejected'}`, 'aria-label': t('import.report') },
    h('h3', null, t('import.report')),
    h('p', { class: `import-summary ${report.applied ? 'ok' : 'bad'}`, role: 'status' }, summary),
    h('div', { class: 'counts' }, counts),
    report.errors.length
      ? [
          h(
            'div',
            { class: 'table-scroll' },
            h(
              'table',
              { class: 'data import-errors' },
              tableHead('import', ['line', 'id', 'field', 'message']),
              h(
                'tbody',
                null,
                listed.map((e) =>
                  h('tr', null, h('td', { class: 'mono' }, String(e.line)), h('td', { class: 'mono' }, e.id ?? ''), h('td', { class: 'mono' }, e.field), h('td', null, issueText(e))),
                ),
              ),
            ),
          ),
          report.errors.length > listed.length ? h('p', { class: 'muted' }, t('import.truncated', { shown: listed.length, total: report.errors.length })) : null,
          h('button', { type: 'button', onclick: () => download('import-report.csv', 'text/csv', reportCsv()) }, t('import.downloadReport')),
        ]
      : null,
  );
}

export const importSection: Section = {
  id: 'import',
  label: 'import.title',
  allowed: () => can('sources:write'),
  mount(el, ctx) {
    const formId = 'import-form';
    const file = h('input', { type: 'file', name: 'file', accept: '.csv,.ndjson,.jsonl,.json,text/csv,application/x-ndjson' });
    const paste = h('textarea', { name: 'text', rows: 8, spellcheck: 'false', placeholder: `${TEMPLATE_COLUMNS.join(',')}\ncam-001,…` });
    const format = h(
      'select',
      { name: 'format' },
      h('option', { value: '' }, t('import.formatAuto')),
      h('option', { value: 'csv' }, 'CSV'),
      h('option', { value: 'ndjson' }, 'NDJSON'),
    );
    const mode = (value: string, label: string, checked: boolean) =>
      h('label', { class: 'radio' }, h('input', { type: 'radio', name: 'mode', value, checked }), h('span', null, label));
    const modes = h('fieldset', { class: 'radios', role: 'group' }, mode('keep-valid', t('import.keepValid'), true), mode('all-or-nothing', t('import.allOrNothing'), false));
    const submit = h('button', { type: 'submit', class: 'primary' }, t('import.upload'));
    const general = h('div', { class: 'form-error', role: 'alert' });
    const result = h('div', { class: 'import-result', 'aria-live': 'polite' });
    const template = h(
      'button',
      { type: 'button', class: 'link', onclick: () => download('sources-template.csv', 'text/csv', TEMPLATE_COLUMNS.join(',') + '\n') },
      t('import.template'),
    );
    // A file and pasted text are alternatives: choosing one clears the other, so what is sent is never in doubt.
    file.addEventListener('change', () => {
      if (file.files?.length) paste.value = '';
    });
    paste.addEventListener('input', () => {
      if (paste.value) file.value = '';
    });

    const form = h(
      'form',
      { class: 'admin-form import-form', id: formId, novalidate: true },
      h('p', { class: 'muted' }, t('import.intro'), ' ', template),
      field(formId, 'file', t('import.file'), file),
      field(formId, 'text', t('import.paste'), paste),
      h('div', { class: 'form-row' }, field(formId, 'format', t('import.format'), format), field(formId, 'mode', t('import.mode'), modes)),
      general,
      h('div', { class: 'form-actions' }, submit),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      general.textContent = '';
      const chosen = file.files?.[0] ?? null;
      const text = chosen ? await chosen.text() : paste.value;
      if (!text.trim()) {
        general.textContent = t('import.nothingGiven');
        return;
      }
      const kind = (format.value as Format | '') || guessFormat(chosen?.name ?? null, text);
      const selectedMode = form.querySelector<HTMLInputElement>('input[name=mode]:checked')?.value ?? 'keep-valid';
      submit.disabled = true;
      submit.textContent = t('import.uploading');
      result.replaceChildren();
      try {
        const report = await api<ImportReport>('POST', `/api/sources/import?mode=${encodeURIComponent(selectedMode)}`, { raw: { text, type: CONTENT_TYPES[kind] } });
        result.replaceChildren(reportView(report));
        if (report.created + report.updated) ctx.forestChanged();
      } catch (err) {
        // An all-or-nothing import with bad rows answers 422 with the same report: nothing was written.
        const report = err instanceof ApiError ? (err.body.report as ImportReport | undefined) : undefined;
        if (report) result.replaceChildren(reportView(report));
        else general.textContent = errorText(err);
      } finally {
        submit.disabled = false;
        submit.textContent = t('import.upload');
      }
    });
    el.append(form, result);
  },
};
