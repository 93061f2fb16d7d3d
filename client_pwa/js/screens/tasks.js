// The first secretary's monthly tasks (主题党日, 三会一课 …): each opens the monthly_task form
// with task_kind preset from the task's template.

import { pick, t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { badge, h, stateBadge } from './ui.js';

const STATUS_CLASS = { done: 'good', overdue: 'bad', in_progress: 'pending', not_started: 'draft' };

export async function show(app, seq) {
  const villages = await store.villages();
  const drafts = new Map((await store.drafts()).map((d) => [d.record, d]));
  const local = new Map();
  for (const e of await store.outbox()) if (e.recordType === 'task') local.set(e.record, e);
  const sections = [];
  const today = store.localDate();
  for (const v of villages) {
    const all = await store.tasksOf(v.code);
    if (!all.length) continue;
    const month = all.map((x) => x.month).sort().at(-1); // the newest month pulled
    const rows = all.filter((x) => x.month === month).sort((a, b) => a.due_on.localeCompare(b.due_on) || a.id.localeCompare(b.id));
    sections.push(h('h2', `${v.name} · ${month}`));
    sections.push(h('ul.list', rows.map((task) => {
      const status = task.fields && task.fields.status;
      const side = [];
      if (drafts.has(task.id)) side.push(badge(t('state_draft'), 'draft'));
      else if (local.has(task.id) && sync.isUnsynced(local.get(task.id))) side.push(stateBadge(local.get(task.id)));
      if (status) side.push(badge(t(`task_status_${status}`), STATUS_CLASS[status] || ''));
      if (status !== 'done' && status !== 'overdue' && task.due_on < today) side.push(badge(t('task_past_due'), 'bad'));
      const target = drafts.has(task.id) ? `#/inspect/${drafts.get(task.id).id}` : `#/new/task/${encodeURIComponent(task.id)}`;
      return h('li', h('a.row', { href: target, dataset: { id: task.id } },
        h('div.main', h('div.name', pick(task.title)), h('div.sub', t('due_on', { d: task.due_on }))),
        h('div.side.badges', { style: 'flex-direction:column;align-items:flex-end' }, side),
        h('span.chev', '›')));
    })));
  }
  const el = h('div', sections.length ? sections : h('p.empty', t('no_tasks')));
  app.mount(seq, el, { title: t('tasks'), tab: 'tasks' });
}
