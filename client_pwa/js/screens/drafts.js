// Drafts: inspections started on this phone and not yet submitted (saved on every change).

import { formatTime, pick, t } from '../i18n.js';
import * as store from '../store.js';
import { badge, h, icon } from './ui.js';

export async function show(app, seq) {
  const rows = await store.drafts();
  const list = rows.length
    ? h('ul.list', { id: 'drafts' }, rows.map((d) =>
        h('li', h('a.row', { href: `#/inspect/${d.id}`, dataset: { id: d.id } },
          h('div.main',
            h('div.name', d.name || ''),
            h('div.sub', `${pick(d.title)} · ${t('updated_at', { t: formatTime(d.updatedAt) })}`),
            d.serverErrors ? h('div.badges', badge(t('state_invalid'), 'invalid')) : null),
          h('div.side', badge(t('state_draft'), 'draft'), d.photos && d.photos.length ? h('div', icon('camera'), ` ${d.photos.length}`) : null)))))
    : h('p.empty', t('no_drafts'));
  app.mount(seq, h('div', list), { title: t('drafts'), tab: 'drafts' });
}
