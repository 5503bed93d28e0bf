/**
 * Administration: one page, a section per hash (#sources, #import, #departments, #gb28181, #jt808, #users,
 * #audit, #sessions, #health, #cluster). Only the sections the user's permissions allow are offered; the gateway checks
 * every request anyway, and scopes what each returns to the user's departments.
 */
import { auditSection } from '../admin/audit.js';
import { clusterSection } from '../admin/cluster.js';
import type { AdminContext, Section } from '../admin/common.js';
import { departmentsSection } from '../admin/departments.js';
import { gb28181Section } from '../admin/gb28181.js';
import { healthSection } from '../admin/health.js';
import { jt808Section } from '../admin/jt808.js';
import { importSection } from '../admin/import.js';
import { sessionsSection } from '../admin/sessions.js';
import { sourcesSection } from '../admin/sources.js';
import { usersSection } from '../admin/users.js';
import { departmentForest, type DepartmentNode } from '../lib/departments.js';
import { h } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import { onPageLeave, startPage } from '../lib/shell.js';
import '../styles/app.css';
import '../styles/admin.css';

addStrings({
  'admin.title': ['Administration', '系统管理'],
  'admin.sections': ['Sections', '功能'],
  'admin.nothing': ['Your account has no administration rights.', '您的账号没有管理权限。'],
  'admin.notAllowed': ['This section is not available to your account.', '您的账号无权使用此功能。'],
});

const SECTIONS: Section[] = [sourcesSection, importSection, departmentsSection, gb28181Section, jt808Section, healthSection, usersSection, sessionsSection, auditSection, clusterSection];

async function main() {
  const { session, main } = await startPage({ title: 'admin.title', page: 'admin' });
  const allowed = SECTIONS.filter((s) => s.allowed());
  if (!allowed.length) return main.replaceChildren(h('p', { class: 'refused' }, t('admin.nothing')));

  let forest: Promise<DepartmentNode[]> | null = null;
  const ctx: AdminContext = {
    session,
    forest: () => {
      if (!forest) {
        const asked = departmentForest();
        forest = asked;
        // A failed fetch is not kept: the next section to ask tries again.
        asked.catch(() => {
          if (forest === asked) forest = null;
        });
      }
      return forest;
    },
    forestChanged: () => {
      forest = null;
    },
  };

  const links = new Map(allowed.map((s) => [s.id, h('a', { href: `#${s.id}`, dataset: { section: s.id } }, t(s.label))]));
  const heading = h('h1', { class: 'section-title', tabindex: '-1' });
  const body = h('div', { class: 'section-body' });
  main.replaceChildren(
    h(
      'div',
      { class: 'admin-layout' },
      h('nav', { class: 'admin-nav', 'aria-label': t('admin.sections') }, [...links.values()]),
      h('section', { class: 'admin-section' }, heading, body),
    ),
  );

  let leave: (() => void) | void;
  const show = () => {
    const wanted = location.hash.slice(1);
    const section = wanted ? SECTIONS.find((s) => s.id === wanted) : allowed[0];
    leave?.();
    leave = undefined;
    for (const [id, link] of links) {
      link.classList.toggle('active', id === section?.id);
      if (id === section?.id) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    body.replaceChildren();
    body.dataset.section = section?.id ?? '';
    if (!section || !allowed.includes(section)) {
      // A bookmarked section this user may not use: say so instead of showing an empty or failing page.
      heading.textContent = t('admin.title');
      body.append(h('p', { class: 'refused' }, t('admin.notAllowed')));
      return;
    }
    heading.textContent = t(section.label);
    document.title = `${t(section.label)} · ${t('admin.title')} · wallgate`;
    leave = section.mount(body, ctx);
  };
  window.addEventListener('hashchange', () => {
    show();
    // A keyboard or screen-reader user who picked a section lands at its heading, not back in the navigation.
    heading.focus({ preventScroll: true });
  });
  onPageLeave(() => leave?.());
  show();
}

void main();
