// My villages: the villages assigned to the user, with how many facilities each holds.

import { t } from '../i18n.js';
import { installCard } from '../install.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { h, icon } from './ui.js';

export async function show(app, seq) {
  const rows = await store.villages();
  const counts = await Promise.all(rows.map((v) => store.facilitiesOf(v.code).then((f) => f.length)));
  const user = app.session.user;
  const syncButton = h('button.btn', { type: 'button', onclick: () => sync.syncNow('manual') }, icon('sync'), t('sync_now'));
  const list = rows.length
    ? h('ul.list', rows.map((v, i) =>
        h('li', h('a.row', { href: `#/village/${v.code}` },
          h('div.main', h('div.name', v.name), h('div.sub', `${v.township} · ${t('facilities_n', { n: counts[i] })} · ${t('households_n', { n: v.households ?? '?' })}`)),
          h('span.chev', '›')))))
    : h('div.card', h('p', t('no_villages')), syncButton);
  const el = h('div',
    installCard(),
    h('p.muted', `${user.display_name || user.username} · ${user.role_name || ''}`),
    list,
    user.role === 'secretary' ? h('p', h('a.btn.block', { href: '#/tasks' }, icon('tasks'), t('tasks'))) : null,
  );
  app.mount(seq, el, { title: t('my_villages'), tab: 'villages' });
}
